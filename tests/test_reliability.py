"""Reliability: the demo server under concurrent clients, and training killed with SIGKILL then resumed.

    HF_HUB_OFFLINE=1 .venv/bin/pytest tests/test_reliability.py -s     # -s prints the measured summaries

- load: 4 gradio_client clients send ``/analyze`` at once to ``app.py`` in a subprocess (the same code as
  benchmarks/bench_load.py); none is lost, none fails, and the server answers afterwards;
- training faults: ``python -m avllm.train`` killed with SIGKILL between two durable checkpoints (the steps after
  the last one done, the next one half-written), then ``--resume`` to the end: no partial checkpoint is visible,
  ``latest`` names a complete one, and the final weights, optimiser state and logged losses equal those of the same
  command run without interruption, exactly (CPU).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from avllm import checkpoint

REPO = Path(__file__).resolve().parents[1]
ASSET = REPO / "assets" / "avllm-tiny"
sys.path.insert(0, str(REPO / "benchmarks"))

pytestmark = pytest.mark.slow


# ----------------------------------------------------------------------------------------------------------------
# Load


@pytest.mark.timeout(420)
@pytest.mark.skipif(not (ASSET / checkpoint.WEIGHTS).is_file(), reason="no shipped checkpoint")
def test_concurrent_clients_none_lost_or_failed():
    from bench_load import AppServer, one_request, percentile, run_load
    from gradio_client import Client

    clients = 4
    with AppServer(env={"AVLLM_CHECKPOINT": str(ASSET)}) as server:
        # no warm-up: the first requests also race to load the model (loaded once, behind a lock)
        outcomes, wall = run_load(server.url, clients, 1, str(ASSET), timeout=300.0)
        failed = [o.error for o in outcomes if o.error is not None]
        lost = [o.client for o in outcomes if o.lost]
        assert len(outcomes) == clients and not failed and not lost, (failed, lost, server.log()[-3000:])
        after = one_request(Client(server.url, verbose=False), str(ASSET), 120.0)
        assert server.alive()
    lat = [o.latency for o in outcomes]
    print(f"\nload: {clients} clients x 1 request: all ok; p50 {percentile(lat, 50):.1f} s, max {max(lat):.1f} s, "
          f"wall {wall:.1f} s; a request afterwards: {after:.1f} s")  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# Training faults

STEPS, CKPT_EVERY, KILL_AT = 6, 2, 4  # killed while writing checkpoint 4; 2 is the last complete one
COMPLETE = (checkpoint.CONFIG, checkpoint.WEIGHTS, checkpoint.META, "train_state.pt")


def _train_cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "avllm.train", "--steps", str(STEPS), "--batch-size", "2", "--tokenizer-clips",
            "20", "--warmup-steps", "1", "--log-every", "1", "--ckpt-every", str(CKPT_EVERY), "--lr", "1e-3",
            "--out-dir", str(out)]  # fmt: skip


def _env() -> dict[str, str]:
    return dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")


def _start(cmd: list[str], log: Path) -> subprocess.Popen:
    """``cmd`` in its own process group (so that a kill reaches it whole), its output to ``log``."""
    with log.open("wb") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=_env(), start_new_session=True)


def _finish(proc: subprocess.Popen, log: Path, timeout: float = 240.0) -> str:
    """Wait for ``proc`` (killed at ``timeout``); assert it succeeded; its output."""
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this test started, nothing else
            proc.wait(timeout=30)
    text = log.read_text(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    return text


def _kill_when(cmd: list[str], log: Path, ready: Callable[[], bool], timeout: float = 240.0) -> None:
    """Start ``cmd``; the moment ``ready()`` holds (polled every 2 ms), SIGKILL it (its whole process group)."""
    proc = _start(cmd, log)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, f"exited ({proc.returncode}) before the kill:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "the kill point never came"
            time.sleep(0.002)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this test started, nothing else
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _logged_steps(out: Path) -> list[int]:
    f = out / "log.jsonl"
    if not f.is_file():
        return []
    rows = []
    for line in f.read_text().splitlines():
        try:
            rows.append(json.loads(line)["step"])
        except (ValueError, KeyError):  # the line being written when polled
            pass
    return rows


def _hidden(out: Path) -> set[str]:
    d = out / "checkpoints"
    return {p.name for p in d.iterdir() if p.name.startswith(".")} if d.is_dir() else set()


def _check_no_partial(out: Path) -> int:
    """Every visible checkpoint is complete and ``latest`` names one; returns the step ``latest`` names."""
    visible = [p for p in (out / "checkpoints").iterdir() if not p.name.startswith(".")]
    for p in visible:
        missing = [f for f in COMPLETE if not (p / f).is_file()]
        assert not missing, f"visible checkpoint {p.name} lacks {missing}"
        assert checkpoint.read_meta(p)["step"] == int(p.name.removeprefix("step_"))
    name = (out / "latest").read_text().strip()
    assert name in {p.name for p in visible}, f"latest names {name!r}, not a complete checkpoint"
    checkpoint.load_state(out / "checkpoints" / name)  # the weights read back
    return int(name.removeprefix("step_"))


def _last_rows(out: Path) -> dict[int, dict]:
    """step -> the last logged row of that step, without its timing."""
    rows = {}
    for line in (out / "log.jsonl").read_text().splitlines():
        row = json.loads(line)
        row.pop("sec_per_step", None)
        rows[row["step"]] = row
    return rows


def _kill_and_resume(run: Path, tmp: Path) -> dict:
    """The interrupted training: killed while it writes checkpoint KILL_AT (the steps since the previous checkpoint
    computed, a temporary folder of the new one on disk, not yet renamed), checked, resumed to the end, checked.
    Returns what happened."""
    cmd, resume = _train_cmd(run), [*_train_cmd(run), "--resume"]
    prefix = f".step_{KILL_AT:07d}."
    _kill_when(cmd, tmp / "killed.log", lambda: any(n.startswith(prefix) for n in _hidden(run)))
    finished = max(_logged_steps(run))
    latest = _check_no_partial(run)
    leftovers = sorted(_hidden(run))
    text = _finish(_start(resume, tmp / "resume.log"), tmp / "resume.log")
    assert f"done: step {STEPS}" in text
    assert _check_no_partial(run) == STEPS
    # the resumed run rewrote checkpoint KILL_AT and cleared what the killed write of that name left behind
    assert not [n for n in _hidden(run) if n.startswith(prefix)], sorted(_hidden(run))
    return {"finished": finished, "latest": latest, "leftovers": leftovers}


@pytest.mark.timeout(600)
def test_sigkill_while_writing_a_checkpoint_then_resume_is_exact(tmp_path):
    ref, run = tmp_path / "uninterrupted", tmp_path / "killed"
    t0 = time.monotonic()
    uninterrupted = _start(_train_cmd(ref), tmp_path / "ref.log")  # alongside: one thread each, two cores
    try:
        what = _kill_and_resume(run, tmp_path)
    finally:
        _finish(uninterrupted, tmp_path / "ref.log")
    # the checkpoint being written stays invisible (unless its rename beat the kill: then it is complete)
    assert what["latest"] in (KILL_AT - CKPT_EVERY, KILL_AT)
    assert what["finished"] == KILL_AT

    final = f"step_{STEPS:07d}"
    a = load_file(str(ref / "checkpoints" / final / checkpoint.WEIGHTS))
    b = load_file(str(run / "checkpoints" / final / checkpoint.WEIGHTS))
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{len(differ)} of {len(a)} tensors differ, e.g. {differ[:3]}"
    sa = torch.load(ref / "checkpoints" / final / "train_state.pt", weights_only=True)["optimizer"]["state"]
    sb = torch.load(run / "checkpoints" / final / "train_state.pt", weights_only=True)["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i]), "optimiser state differs"
    assert _last_rows(ref) == _last_rows(run)  # every step's logged losses and learning rate, as uninterrupted
    print(f"\ntraining faults: {STEPS} steps, checkpoint every {CKPT_EVERY}; killed while writing checkpoint "
          f"{KILL_AT} with {what['finished']} steps finished -> latest names step {what['latest']} "
          f"({what['finished'] - what['latest']} finished steps lost); hidden leftovers {what['leftovers']}; after "
          f"--resume the final {len(a)} tensors and the optimiser state equal the uninterrupted run's; whole test "
          f"{time.monotonic() - t0:.0f} s")  # fmt: skip
