"""How much of the LM's training loss each task carries: labelled tokens (answer + ``<eos>``) per text sample, by task.

    PYTHONPATH=. .venv/bin/python benchmarks/lm_loss_shares.py --checkpoint assets/avllm-tiny \\
        --data data/test-standard --limit 200

Training draws one text sample per clip, uniformly among the clip's texts, so a task's share of the samples is its
share of the texts. Under ``LMConfig.loss_norm = "token"`` a task's share of the loss is its share of the labelled
tokens; under ``"sample"`` it is its share of the samples. Prints a markdown table of both.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="assets/avllm-tiny", help="its tokenizer and grounding codec are used")
    p.add_argument("--data", default="data/test-standard")
    p.add_argument("--limit", type=int, default=200)
    a = p.parse_args(argv)

    from avllm.checkpoint import load
    from avllm.data import read_manifest
    from avllm.llm import IGNORE_INDEX

    model = load(a.checkpoint)
    samples, tokens = Counter(), Counter()
    for rec in read_manifest(Path(a.data) / "manifest.jsonl")[: a.limit]:
        for t in rec.texts:
            enc = model.lm.build_inputs([t.prompt], [model.text_codec.encode_text(t.answer)], num_av_tokens=1)
            samples[t.task] += 1
            tokens[t.task] += int((enc["labels"][0, 1:] != IGNORE_INDEX).sum())
    n_s, n_t = sum(samples.values()), sum(tokens.values())
    print(f"| task ({a.limit} clips) | samples | labelled tokens per sample | share of the loss, token | share, sample |")
    print("|---|---:|---:|---:|---:|")
    for task in samples:
        print(f"| {task} | {samples[task]} | {tokens[task] / samples[task]:.2f} | {tokens[task] / n_t:.3f} | "
              f"{samples[task] / n_s:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
