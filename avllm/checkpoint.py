"""Checkpoints as a directory: ``config.json`` (ModelConfig) + ``model.safetensors`` + tokenizer files + ``meta.json``.

    save(model, "runs/tiny/step_1000", meta={"step": 1000})
    model = load("runs/tiny/step_1000", device="cpu")

Writing is atomic: files go to a sibling temporary directory that replaces the target in one rename, so a killed
run never leaves a half-written checkpoint. Loading reads safetensors only (no pickle), rejects unknown config
keys, and says which tensor has the wrong shape.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from avllm.config import ConfigError, ModelConfig

__all__ = ["CONFIG", "META", "WEIGHTS", "CheckpointError", "load", "load_state", "read_meta", "save"]

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
META = "meta.json"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged or does not fit the model; the message says which and where."""


def _state_to_save(
    model: torch.nn.Module, include_frozen: bool, dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    state = {}
    seen: dict[int, str] = {}
    for name, t in model.state_dict().items():
        if not include_frozen and name in frozen:
            continue
        ptr = t.data_ptr()
        if ptr in seen and t.numel() > 0:  # tied weights: safetensors stores each storage once
            continue
        seen[ptr] = name
        t = t.detach().to("cpu")
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        state[name] = t.contiguous()
    return state


def save(
    model: torch.nn.Module,
    path: str | Path,
    *,
    meta: dict[str, Any] | None = None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
    include_frozen: bool = True,
    extra_writer: Callable[[Path], None] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write ``model`` (an ``AVLLM``) to the directory ``path`` atomically. ``extra_tensors`` (optimizer-free
    training state such as RNG states) go to ``extra.safetensors``; ``extra_writer(tmp_dir)`` may add files that must
    land in the same atomic rename (the trainer's optimiser state). ``dtype`` (e.g. ``torch.float16``) stores the
    floating-point tensors in that type (a smaller file to ship; loading casts back to the model's dtype)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        model.cfg.save(tmp / CONFIG)  # type: ignore[union-attr]
        save_file(_state_to_save(model, include_frozen, dtype), str(tmp / WEIGHTS), metadata={"format": "pt"})
        model.lm.tokenizer.save_pretrained(str(tmp))  # type: ignore[union-attr]
        if extra_tensors:
            save_file({k: v.detach().cpu().contiguous() for k, v in extra_tensors.items()}, str(tmp / "extra.safetensors"))
        (tmp / META).write_text(json.dumps(meta or {}, indent=2) + "\n")
        if extra_writer is not None:
            extra_writer(tmp)
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.old"
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        # Leftovers of earlier writes of this name that were killed before their rename (kill -9 mid-save).
        for stale in path.parent.glob(f".{glob.escape(path.name)}.*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _check_dir(path: Path) -> None:
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_file():
        if path.suffix in {".pt", ".pth", ".bin", ".pkl", ".ckpt"}:
            raise CheckpointError(
                f"{path} is a pickle file; avllm checkpoints are directories with {CONFIG} and {WEIGHTS} "
                "(pickles are not loaded: they can run code)"
            )
        raise CheckpointError(f"{path} is a file; an avllm checkpoint is a directory with {CONFIG} and {WEIGHTS}")
    for name in (CONFIG, WEIGHTS):
        if not (path / name).is_file():
            raise CheckpointError(f"{path} is not an avllm checkpoint: {name} is missing")


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of ``path/model.safetensors``; a damaged file gives CheckpointError."""
    f = Path(path) / WEIGHTS
    try:
        return load_file(str(f))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{f} is damaged or not a safetensors file ({e})") from None


def read_meta(path: str | Path) -> dict[str, Any]:
    f = Path(path) / META
    return json.loads(f.read_text()) if f.is_file() else {}


def load(path: str | Path, device: str | torch.device = "cpu", *, strict: bool = True):
    """Build the model of ``path/config.json`` and load its weights. Returns an ``AVLLM`` in eval mode."""
    from avllm.model import build_model  # here, so that importing checkpoint stays light
    from avllm.tokenizer import load_tokenizer

    path = Path(path)
    _check_dir(path)
    try:
        cfg = ModelConfig.load(path / CONFIG)
    except ConfigError as e:
        raise CheckpointError(f"{path / CONFIG}: {e}") from None
    try:
        tokenizer = load_tokenizer(path)
    except Exception as e:  # noqa: BLE001 — tokenizers raise many types
        raise CheckpointError(f"{path}: tokenizer files are missing or damaged ({e})") from None
    state = load_state(path)
    model = build_model(cfg, tokenizer)
    own = model.state_dict()
    unexpected = sorted(set(state) - set(own))
    if unexpected:
        raise CheckpointError(f"{path / WEIGHTS} has tensors the model does not: {', '.join(unexpected[:5])}")
    for name, t in state.items():
        if own[name].shape != t.shape:
            raise CheckpointError(
                f"{path / WEIGHTS}: {name} has shape {tuple(t.shape)}, the model expects {tuple(own[name].shape)}"
            )
    missing = set(own) - set(state)
    # Tied weights are stored once; frozen pretrained parts may be left out on purpose.
    tied = {n for n in missing if any(own[n].data_ptr() == own[m].data_ptr() for m in state)}
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    really_missing = sorted(missing - tied - frozen)
    if strict and really_missing:
        raise CheckpointError(f"{path / WEIGHTS} lacks tensors: {', '.join(really_missing[:5])}")
    model.load_state_dict(state, strict=False)
    return model.to(device).eval()


def export(src: str | Path, dst: str | Path, *, half: bool = True, name: str | None = None) -> Path:
    """A checkpoint to ship: the model of ``src`` without training state, in float16 when ``half``; ``name``
    renames its config (a run trained from an ablation preset shipped as the preset it equals)."""
    model = load(src, device="cpu")
    if name is not None:
        model.cfg = model.cfg.replace(name=name)
    meta = read_meta(src)
    meta = {"step": meta.get("step"), "exported_from": str(src), "dtype": "float16" if half else "float32"}
    return save(model, dst, meta=meta, dtype=torch.float16 if half else None)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m avllm.checkpoint", description="Export a checkpoint to ship.")
    p.add_argument("src", help="a training checkpoint directory")
    p.add_argument("dst", help="where to write the exported checkpoint")
    p.add_argument("--fp32", action="store_true", help="keep float32 weights (default: float16)")
    p.add_argument("--name", default=None, help="the exported config's name (default: the run's)")
    a = p.parse_args(argv)
    try:
        out = export(a.src, a.dst, half=not a.fp32, name=a.name)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    size = sum(f.stat().st_size for f in out.iterdir()) / 2**20
    print(f"wrote {out} ({size:.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
