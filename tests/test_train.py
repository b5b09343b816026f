"""Training: the schedule, exact resume (k + resume + k == 2k steps on CPU), the NaN stop with the last good
checkpoint intact, and both launch paths (plain and a 2-process ``accelerate launch --cpu``)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from avllm import checkpoint
from avllm.config import TrainConfig
from avllm.train import Trainer, TrainingError, lr_at

REPO = Path(__file__).resolve().parents[1]


def _cfg(out: Path, steps: int, **kw) -> TrainConfig:
    base = dict(steps=steps, batch_size=2, warmup_steps=1, ckpt_every=2, log_every=1, tokenizer_clips=20,
                out_dir=str(out), lr=1e-3)
    base.update(kw)
    return TrainConfig(**base)


@settings(max_examples=60, deadline=None)
@given(steps=st.integers(2, 500), warmup=st.integers(1, 50), step=st.integers(0, 600))
def test_lr_schedule(steps, warmup, step):
    cfg = TrainConfig(steps=steps, warmup_steps=warmup, lr=1e-3, min_lr_ratio=0.1)
    lr = lr_at(step, cfg)
    assert 1e-4 - 1e-12 <= lr <= 1e-3 + 1e-12 or step < warmup
    if step < min(warmup, steps):  # past the schedule's end the floor holds, even inside a warmup longer than it
        assert lr == pytest.approx(1e-3 * (step + 1) / warmup)
    if step >= steps:
        assert lr == pytest.approx(1e-4)
    if warmup <= step < steps - 1:
        assert lr_at(step + 1, cfg) <= lr + 1e-15  # cosine only goes down after the warmup


def test_resume_is_exact(tmp_path):
    straight = Trainer(_cfg(tmp_path / "a", 4), progress=False)
    straight.fit()
    first = Trainer(_cfg(tmp_path / "b", 2), progress=False)
    first.fit()
    resumed = Trainer(_cfg(tmp_path / "b", 4), resume=True, progress=False)
    assert resumed.step == 2
    resumed.fit()
    a, b = straight.raw_model.state_dict(), resumed.raw_model.state_dict()
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, f"{len(diff)} tensors differ, e.g. {diff[:3]}"
    log = (tmp_path / "b" / "log.jsonl").read_text().splitlines()
    assert len(log) == 4 and '"lm"' in log[0] and '"lr"' in log[0]
    rows = [json.loads(line) for line in log]
    per_task = {k: v for row in rows for k, v in row.items() if k.startswith("lm.")}
    assert per_task, "no line has the LM loss of a task"
    assert {k.removeprefix("lm.") for k in per_task} <= {"ground", "temporal", "factcheck", "avqa", "caption"}
    assert all(math.isfinite(v) and v > 0 for v in per_task.values())
    for row in rows:  # with one labelled task in the step, its per-token loss is the step's lm term
        tasks = [k for k in row if k.startswith("lm.")]
        if len(tasks) == 1:
            assert abs(row[tasks[0]] - row["lm"]) < 1e-3 * max(1.0, row["lm"])


def test_stop_after_cuts_the_same_schedule(tmp_path):
    # An ablation stopped at step k of an n-step schedule is the n-step run's step k: same lr at every step.
    straight = Trainer(_cfg(tmp_path / "a", 4), progress=False)
    straight.fit()
    cut = Trainer(_cfg(tmp_path / "b", 4, stop_after=2), progress=False)
    last = cut.fit()
    assert cut.step == 2 and last.name == "step_0000002"
    resumed = Trainer(_cfg(tmp_path / "b", 4), resume=True, progress=False)
    resumed.fit()
    a, b = straight.raw_model.state_dict(), resumed.raw_model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert lrs == [json.loads(line)["lr"] for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]


def test_nan_stops_with_names_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    tr = Trainer(_cfg(tmp_path, 6, ckpt_every=1), progress=False)
    tr.train_step()
    good = tr.save()
    real_forward = type(tr.raw_model).forward

    def poisoned(self, batch, **kw):
        out = real_forward(self, batch, **kw)
        out.losses["box"] = out.losses["box"] * float("nan")
        return out

    monkeypatch.setattr(type(tr.raw_model), "forward", poisoned)
    with pytest.raises(TrainingError, match=r"non-finite loss at step 1 \(terms box\)"):
        tr.fit()
    monkeypatch.undo()
    assert (tmp_path / "latest").read_text().strip() == good.name
    checkpoint.load(good)  # intact and loadable


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return env


@pytest.mark.slow
def test_cli_single_process(tmp_path):
    cmd = [sys.executable, "-m", "avllm.train", "--steps", "2", "--batch-size", "2", "--tokenizer-clips", "20",
           "--log-every", "1", "--ckpt-every", "2", "--out-dir", str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "checkpoints" / "step_0000002" / checkpoint.WEIGHTS).is_file()
    assert "done: step 2" in r.stdout


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes(tmp_path):
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
           "--cpu", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "avllm.train", "--steps", "2",
           "--batch-size", "2", "--tokenizer-clips", "20", "--log-every", "1", "--ckpt-every", "2",
           "--out-dir", str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert r.returncode == 0, (r.stdout[-1500:], r.stderr[-3000:])
    ckpt = tmp_path / "checkpoints" / "step_0000002"
    assert (ckpt / checkpoint.WEIGHTS).is_file()
    assert r.stdout.count("done: step 2") == 1  # only the main process reports and writes
