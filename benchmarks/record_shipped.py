"""The figures the shipped checkpoint is held to: assets/avllm-tiny/recorded_metrics.json.

    PYTHONPATH=. .venv/bin/python benchmarks/record_shipped.py --checkpoint assets/avllm-tiny

Reads the 200-clip evaluations of docs/RESULTS.md (``--standard``, ``--speech``: ``python -m avllm.evaluate``
outputs of the same checkpoint), evaluates the checkpoint on the 32-clip split that tests/test_shipped.py
regenerates (seed 1, 32 retrieval candidates) and writes all three into one file: the standard figures at the top
level, ``_ci_split`` (what the CI test compares with), ``_speech_split`` (DenseAV's heads on spoken phrases, which
the demo reads to name them). Not a speed benchmark: it lives here beside the scripts that make the docs' figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from avllm.checkpoint import load
from avllm.data import read_manifest
from avllm.evaluate import evaluate
from avllm.synth.writer import write_dataset

CI_KEYS = ("ssl.ciou50", "ssl.pointing", "ssl.classmap.ciou50", "ground.acc50", "temporal.miou", "factcheck.acc",
           "avqa.acc", "retrieval.a2i.r1", "caption.fact_recall")
STANDARD_DATA = "python -m avllm.synth --out data/test-standard --split test --num 200 --seed 0 --difficulty standard"
SPEECH_DATA = STANDARD_DATA.replace("test-standard", "test-speech") + " --speech"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="assets/avllm-tiny")
    p.add_argument("--standard", default="docs/metrics/standard.json")
    p.add_argument("--speech", default="docs/metrics/speech/shipped.json")
    a = p.parse_args()
    ckpt = Path(a.checkpoint)
    out = json.loads(Path(a.standard).read_text())
    out["_meta"] = {"clips": int(out["n.clips"]), "data": STANDARD_DATA,
                    "command": f"python -m avllm.evaluate --checkpoint {a.checkpoint} --data data/test-standard "
                               f"--out {a.standard}"}
    speech = json.loads(Path(a.speech).read_text())
    out["_speech_split"] = {k: v for k, v in speech.items() if k.startswith(("seg.", "n."))}
    out["_speech_split"]["_meta"] = {
        "clips": int(speech["n.clips"]), "data": SPEECH_DATA,
        "command": f"python -m avllm.evaluate --checkpoint {a.checkpoint} --data data/test-speech --out {a.speech} "
                   "--no-baselines"}
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(tmp, split="test", num=32, seed=1, difficulty="standard", progress=False)
        ci = evaluate(load(ckpt), read_manifest(Path(tmp) / "manifest.jsonl"), Path(tmp), batch_size=16,
                      candidates=32, baselines=False, progress=False)
    out["_ci_split"] = {k: ci[k] for k in CI_KEYS}
    out["_ci_split"]["_meta"] = {"clips": 32, "candidates": 32,
                                 "data": "write_dataset(split='test', num=32, seed=1, difficulty='standard')"}
    dest = ckpt / "recorded_metrics.json"
    dest.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    print(f"wrote {dest}: " + ", ".join(f"{k} {out['_ci_split'][k]:.3f}" for k in CI_KEYS))


if __name__ == "__main__":
    main()
