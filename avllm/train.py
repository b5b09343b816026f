"""Training: ``python -m avllm.train [--config train.json] [--steps N] [--out-dir DIR] [--resume] ...``

One process on CPU, one GPU, or many through ``accelerate launch`` (DDP; see docs/TRAINING.md for FSDP and
DeepSpeed). Mixed precision on GPU, gradient accumulation, warmup + cosine schedule, gradient clipping. Logs every
loss term, the learning rate and the LM loss of each task (``lm.<task>``, observed over the steps since the last
log line) to TensorBoard and to ``DIR/log.jsonl``; checkpoints every ``ckpt_every`` steps
atomically under ``DIR/checkpoints/step_N`` (+ ``DIR/latest``); ``--resume`` continues exactly from the latest one.
A NaN/inf loss stops the run, naming the step and the loss terms; the last good checkpoint stays intact.

Stages (``TrainConfig.stage``):
- ``align``: encoders and the grounding heads with the alignment losses (JSA, DenseAV, OT, AVACE, CAD temporal
  pre-training); the language model is off.
- ``instruct``: the LM, projector, Q-Former and proposal heads with the LM loss and the auxiliary losses; encoders
  frozen.
- ``joint``: everything at once (what the tiny model trains from scratch with).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avllm import checkpoint
from avllm.config import ModelConfig, TrainConfig, get_preset
from avllm.model import ALIGN_LOSSES, INSTRUCT_LOSSES, AVLLM, build_model
from avllm.trainutil import TrainingData, build_tokenizer_for

__all__ = ["TrainingError", "Trainer", "main", "stage_losses"]


class TrainingError(RuntimeError):
    """Training cannot go on (NaN loss, a bad resume); the message names the step and the loss terms."""


def stage_losses(stage: str) -> tuple[str, ...]:
    if stage == "align":
        return ALIGN_LOSSES
    if stage == "instruct":
        return INSTRUCT_LOSSES
    return tuple(dict.fromkeys(ALIGN_LOSSES + INSTRUCT_LOSSES))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to cfg.lr, then cosine down to cfg.lr * cfg.min_lr_ratio at cfg.steps."""
    if step >= cfg.steps:
        return cfg.lr * cfg.min_lr_ratio
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _set_trainable(model: AVLLM, stage: str) -> None:
    cfg = model.cfg
    lm_params = {id(p) for p in model.lm.lm.parameters()}  # the causal LM itself (not the copy head beside it)
    for p in model.parameters():
        if id(p) not in lm_params or not cfg.lm.lora:  # peft decides what trains inside a LoRA-wrapped LM
            p.requires_grad_(True)
    frozen: list[torch.nn.Module] = []
    if cfg.image.freeze:
        frozen.append(model.image_encoder)
    if cfg.audio.freeze:
        frozen.append(model.audio_encoder)
    if stage == "align":
        frozen.append(model.lm)
    elif cfg.lm.freeze:
        frozen.append(model.lm.lm)
    if stage == "instruct":
        frozen += [model.image_encoder, model.audio_encoder]
    for m in frozen:
        for p in m.parameters():
            p.requires_grad_(False)
    model.lm_enabled = stage != "align"


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "norm" in n.lower() or n.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class Trainer:
    """Owns the model, the optimiser, the data stream and the run directory."""

    def __init__(self, cfg: TrainConfig, model_cfg: ModelConfig | None = None, *, resume: bool = False,
                 progress: bool = True):
        from accelerate import Accelerator, DistributedDataParallelKwargs

        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.accel = Accelerator(
            mixed_precision=cfg.mixed_precision if torch.cuda.is_available() else "no",
            gradient_accumulation_steps=cfg.grad_accum,
            cpu=not torch.cuda.is_available(),
            # a batch without, say, AVQA questions leaves the answer chain without gradient
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        self.progress = progress and self.accel.is_main_process
        self.step = 0
        latest = self._latest() if resume else None
        if resume and latest is None:
            print(f"no checkpoint under {self.out}; starting from step 0", file=sys.stderr)
        if latest is not None:
            model = checkpoint.load(latest, device="cpu")
            self.step = int(checkpoint.read_meta(latest).get("step", 0))
        else:
            mcfg = model_cfg or get_preset(cfg.preset)
            torch.manual_seed(cfg.seed)
            model = build_model(mcfg, build_tokenizer_for(mcfg, num_clips=cfg.tokenizer_clips, evidence=cfg.factcheck_evidence))
        _set_trainable(model, cfg.stage)
        model.train()
        self.terms = stage_losses(cfg.stage)
        opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98))
        self.model, self.opt = self.accel.prepare(model, opt)
        if latest is not None:
            self._load_state(latest)
        self.data = TrainingData(cfg, model.cfg, rank=self.accel.process_index, world=self.accel.num_processes)
        self.log_file = self.out / "log.jsonl"
        self._diag: dict[str, tuple[float, int]] = {}  # "lm.<task>" -> (summed loss, tokens) since the last log
        self.tb = None
        if self.accel.is_main_process:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.out / "tb"))
            except ImportError:  # tensorboard is optional at run time
                self.tb = None

    # ------------------------------------------------------------------------------------------------------------
    @property
    def raw_model(self) -> AVLLM:
        return self.accel.unwrap_model(self.model)

    def _latest(self) -> Path | None:
        pointer = self.out / "latest"
        if not pointer.is_file():
            return None
        path = self.out / "checkpoints" / pointer.read_text().strip()
        return path if path.is_dir() else None

    def _state_path(self, ckpt: Path) -> Path:
        return ckpt / "train_state.pt"

    def _load_state(self, ckpt: Path) -> None:
        f = self._state_path(ckpt)
        if not f.is_file():
            raise TrainingError(f"{ckpt} has no train_state.pt; cannot resume exactly")
        state = torch.load(f, weights_only=True, map_location="cpu")
        self.opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(tuple(state["numpy_rng"]))  # type: ignore[arg-type]
        random.setstate((state["py_rng"][0], tuple(state["py_rng"][1]), state["py_rng"][2]))

    def save(self) -> Path:
        """Checkpoint + exact training state, atomically; then move the ``latest`` pointer."""
        self.accel.wait_for_everyone()
        name = f"step_{self.step:07d}"
        path = self.out / "checkpoints" / name
        if self.accel.is_main_process:
            np_state = np.random.get_state()
            py_state = random.getstate()
            state = {
                "optimizer": self.opt.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "numpy_rng": [np_state[0], torch.from_numpy(np_state[1].copy()), np_state[2], np_state[3], np_state[4]],
                "py_rng": [py_state[0], list(py_state[1]), py_state[2]],
            }

            def write_state(tmp: Path) -> None:
                torch.save(state, tmp / "train_state.pt")

            checkpoint.save(
                self.raw_model, path, meta={"step": self.step, "train_config": self.cfg.to_dict()},
                extra_writer=write_state,
            )
            tmp = self.out / ".latest.tmp"
            tmp.write_text(name + "\n")
            os.replace(tmp, self.out / "latest")
        self.accel.wait_for_everyone()
        return path

    # ------------------------------------------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.step, cfg)
        logged: dict[str, float] = {}
        for micro in range(cfg.grad_accum):
            batch = self.data.batch(self.step, micro)
            with self.accel.accumulate(self.model), self.accel.autocast():
                out = self.model(batch)
                terms = {k: v for k, v in out.losses.items() if k in self.terms}
                weights = self.raw_model.cfg.losses
                loss = sum(getattr(weights, k) * v for k, v in terms.items())
                bad = [k for k, v in terms.items() if not torch.isfinite(v.detach()).all()]
                if bad or not torch.isfinite(loss.detach()):
                    values = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in terms.items())
                    raise TrainingError(
                        f"non-finite loss at step {self.step} (terms {', '.join(bad) or 'sum'}): {values}; "
                        f"the last good checkpoint is {self._latest() or 'none'}"
                    )
                self.accel.backward(loss / 1.0)
                if self.accel.sync_gradients and cfg.grad_clip > 0:
                    self.accel.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                self.opt.step()
                self.opt.zero_grad(set_to_none=True)
            for k, v in terms.items():
                logged[k] = logged.get(k, 0.0) + float(v.detach()) / cfg.grad_accum
            for k, (total, n) in out.diagnostics.items():
                t0, n0 = self._diag.get(k, (0.0, 0))
                self._diag[k] = (t0 + total, n0 + n)
            logged["loss"] = logged.get("loss", 0.0) + float(loss.detach()) / cfg.grad_accum
        logged["lr"] = self.opt.param_groups[0]["lr"]
        self.step += 1
        return logged

    def _log(self, row: dict[str, float]) -> None:
        if not self.accel.is_main_process:
            return
        with self.log_file.open("a") as fh:
            fh.write(json.dumps({"step": self.step, **{k: round(v, 6) for k, v in row.items()}}) + "\n")
        if self.tb is not None:
            for k, v in row.items():
                self.tb.add_scalar(f"train/{k}", v, self.step)

    def fit(self) -> Path:
        cfg = self.cfg
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=self.step, disable=not self.progress, dynamic_ncols=True)
        last = None
        t0 = time.time()
        started = time.time()
        end = min(cfg.steps, cfg.stop_after) if cfg.stop_after > 0 else cfg.steps
        while self.step < end:
            if cfg.max_minutes and time.time() - started > cfg.max_minutes * 60:
                print(f"time budget of {cfg.max_minutes} min reached at step {self.step}", file=sys.stderr)
                break
            row = self.train_step()
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                row["sec_per_step"] = (time.time() - t0) / max(1, cfg.log_every)
                t0 = time.time()
                bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k not in ("lr", "sec_per_step")})
                # the LM loss of each task, per token, over every step since the last log line
                row.update({k: total / n for k, (total, n) in sorted(self._diag.items())})
                self._diag = {}
                self._log(row)
            if self.step % cfg.ckpt_every == 0 or self.step == cfg.steps:
                last = self.save()
        bar.close()
        if self.tb is not None:
            self.tb.close()
        if last is None or last.name != f"step_{self.step:07d}":
            last = self.save()
        return last


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, ModelConfig | None, bool]:
    p = argparse.ArgumentParser(prog="python -m avllm.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="TrainConfig JSON; the flags below override its fields")
    p.add_argument("--model-config", help="ModelConfig JSON or preset name (default: the TrainConfig's preset)")
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/latest")
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, dest=f.name, type=lambda s: s.lower() in ("1", "true", "yes"), default=None,
                           metavar="BOOL")
        else:
            kind = {"int": int, "float": float}.get(str(f.type), str)
            p.add_argument(flag, dest=f.name, type=kind, default=None)
    a = p.parse_args(argv)
    base = TrainConfig.load(a.config).to_dict() if a.config else TrainConfig().to_dict()
    for f in fields(TrainConfig):
        v = getattr(a, f.name)
        if v is not None:
            base[f.name] = v
    cfg = TrainConfig.from_dict(base)
    mcfg = get_preset(a.model_config) if a.model_config else None
    return cfg, mcfg, a.resume


def main(argv: list[str] | None = None) -> int:
    cfg, mcfg, resume = parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    try:
        trainer = Trainer(cfg, mcfg, resume=resume)
        path = trainer.fit()
    except (TrainingError, checkpoint.CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if trainer.accel.is_main_process:
        print(f"done: step {trainer.step}, checkpoint {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
