"""Ablations at an equal budget: each variant is the default training command with one part removed (or changed),
cut at the same step of the same schedule, and evaluated on the same clips as the default run's checkpoint at that
step.

    PYTHONPATH=. .venv/bin/python benchmarks/ablations.py --reference runs/tiny --stop-after 150 \\
        --data data/test-standard --limit 100

Variants (model configs in avllm/presets/ablations/): JSA without attention matching, DenseAV without the
disentanglement term, the Q-Former with full instead of causal window attention, CAD without the contextual block,
the LM without its copy head over the proposals (``LMConfig.copy``), the model without class maps
(avllm/heads/classmap.py); and, changed from the default, the LM loss averaged per sample (``LMConfig.loss_norm``).
Every run uses the same seed, so the same initial weights and the same batches: the one difference is the part
removed. ``--stop-after`` cuts the run at that step of the ``--steps`` schedule (the default run's), so the learning
rate agrees at every step with the reference checkpoint's. Finished runs and evaluations are reused.
Writes docs/metrics/ablations/<variant>.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VARIANTS = {
    "default": "all parts (the default run's own checkpoint)",
    "tiny-no-slot-match": "JSA without attention matching",
    "tiny-no-disentangle": "DenseAV without disentanglement",
    "tiny-qformer-full": "Q-Former full attention (not causal)",
    "tiny-no-context": "CAD without the contextual block",
    "tiny-no-class-maps": "without class maps (where / when of each class)",
    "tiny-sample-loss": "LM loss averaged per sample, not per token",
    "tiny-no-copy": "without the LM's copy head over the box / segment proposals",
}
COLUMNS = (
    "ssl.ciou50", "ssl.auc", "ssl.pointing", "seg.sound.miou", "ground.acc50", "temporal.miou", "avqa.acc",
    "avqa.acc.temporal", "factcheck.acc", "retrieval.a2i.r1",
)
TRAIN_FLAGS = ["--batch-size", "16", "--extra-texts", "2", "--lr", "5e-4", "--warmup-steps", "50", "--ckpt-every", "50",
               "--log-every", "10"]


def _run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    subprocess.run(cmd, check=True, cwd=REPO, env=env)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference", default="runs/tiny",
                   help="the default run's output folder (docs/TRAINING.md's command writes runs/tiny)")
    p.add_argument("--reference-checkpoint", default=None,
                   help="the default run's checkpoint at --stop-after itself, in place of --reference (e.g. "
                        "assets/avllm-tiny, the shipped export of the default run's step-950 checkpoint)")
    p.add_argument("--columns", nargs="*", default=None, help="the metric keys of the table (default: COLUMNS)")
    p.add_argument("--steps", type=int, default=950, help="the schedule's length (the default run's --steps)")
    p.add_argument("--stop-after", type=int, default=150)
    p.add_argument("--data", default="data/test-standard")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--runs", default="runs/ablations")
    p.add_argument("--out", default="docs/metrics/ablations")
    p.add_argument("--only", nargs="*", default=None, help="a subset of the variants")
    a = p.parse_args(argv)
    out = REPO / a.out
    out.mkdir(parents=True, exist_ok=True)
    step = f"step_{a.stop_after:07d}"
    rows = {}
    for name in a.only or list(VARIANTS):
        if name == "default":
            ckpt = REPO / (a.reference_checkpoint or Path(a.reference) / "checkpoints" / step)
            if not ckpt.is_dir():
                raise SystemExit(f"the reference run has no checkpoint {ckpt}")
        else:
            run_dir = REPO / a.runs / name
            ckpt = run_dir / "checkpoints" / step
            if not ckpt.is_dir():
                _run([sys.executable, "-m", "avllm.train", "--model-config", f"avllm/presets/ablations/{name}.json",
                      "--steps", str(a.steps), "--stop-after", str(a.stop_after), *TRAIN_FLAGS,
                      "--out-dir", str(run_dir)])  # fmt: skip
        metrics = out / f"{name}.json"
        if not metrics.is_file():
            _run([sys.executable, "-m", "avllm.evaluate", "--checkpoint", str(ckpt), "--data", a.data,
                  "--limit", str(a.limit), "--no-baselines", "--out", str(metrics)])  # fmt: skip
        rows[name] = json.loads(metrics.read_text())
    columns = tuple(a.columns or COLUMNS)
    print(f"\n| variant (step {a.stop_after} of {a.steps}, {a.limit} clips) | " + " | ".join(f"`{c}`" for c in columns)
          + " |")  # fmt: skip
    print("|---|" + "---:|" * len(columns))
    for name, m in rows.items():
        cells = [f"{m[c]:.3f}" if c in m else "–" for c in columns]
        print(f"| {VARIANTS[name]} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
