"""Reads the evidence of fact-check answers: is it the clip's truth, and does the LM's verdict follow from it?

    python -m avllm.evaluate --checkpoint CKPT --data data/test-standard --no-baselines --out m.json \
        --answers answers.jsonl
    PYTHONPATH=. python benchmarks/factcheck_evidence.py answers.jsonl [--out figures.json]

For the position, time and order claims of a model trained with ``--factcheck-evidence true`` (answers such as "The
bell sounds [1.00, 2.50], so false."), per claim kind: ``verdict_acc`` (the LM's verdict, as ``factcheck.acc``),
``evidence_acc`` (the verdict that the answer's own evidence implies, compared with the truth: what a step that
only compares the evidence with the claim would score), ``follows`` (the LM's verdict agrees with its evidence),
``said_true`` (share of "true" verdicts), ``names_class`` (the evidence names the claim's class). Answers whose
evidence does not parse count as wrong for ``evidence_acc`` and ``follows``. Not a speed benchmark: it lives here
beside the other scripts that make the docs' figures.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

from avllm.textformat import parse_segments, truth_of

_SIDE = re.compile(r"\b(left|right|top|bottom) (?:side|half)\b")
_SAYS_SIDE = re.compile(r"^The (\w+) is on the (left|right|top|bottom) side\b")
_TIME = re.compile(r"([0-9]+(?:\.[0-9]+)?) seconds")
_CLASS_TIME = re.compile(r"\b(?:the|The) (\w+) (?:can be heard|is making sound)|hear the (\w+)")
_SAYS_CLASS = re.compile(r"^The (\w+) (?:sounds|starts)")
_ORDER = re.compile(r"The (\w+) (?:starts sounding|is heard) before the (\w+)")


def implied(kind: str, prompt: str, answer: str) -> tuple[bool | None, bool]:
    """(the verdict the answer's evidence implies for the claim in ``prompt``, or None; whether the evidence names
    the claim's class)."""
    if kind == "position":
        claim, said = _SIDE.search(prompt), _SAYS_SIDE.match(answer)
        cls = re.search(r"The (\w+) (?:is on|appears in)", prompt)
        if not (claim and said):
            return None, False
        return said.group(2) == claim.group(1), bool(cls) and cls.group(1) == said.group(1)
    segs = parse_segments(answer)
    if kind == "time":
        t, cls, said = _TIME.search(prompt), _CLASS_TIME.search(prompt), _SAYS_CLASS.match(answer)
        if not (t and segs):
            return None, False
        name = next((g for g in cls.groups() if g), None) if cls else None
        return any(a <= float(t.group(1)) <= b for a, b in segs), bool(said) and said.group(1) == name
    if kind == "order":
        claim = _ORDER.search(prompt)
        said = re.match(r"^The (\w+) starts .* and the (\w+) ", answer)
        if len(segs) != 2:
            return None, False
        return segs[0][0] < segs[1][0], bool(claim and said) and claim.groups() == said.groups()
    raise ValueError(kind)


def figures(rows: list[dict]) -> dict[str, dict[str, float]]:
    acc: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in rows:
        if r["task"] != "factcheck" or r["kind"] not in ("position", "time", "order"):
            continue
        c = acc[r["kind"]]
        verdict = truth_of(r["answer"])
        ev, named = implied(r["kind"], r["prompt"], r["answer"])
        c["n"] += 1
        c["verdict_acc"] += verdict == r["label"]
        c["evidence_acc"] += ev is not None and ev == r["label"]
        c["follows"] += ev is not None and ev == verdict
        c["said_true"] += verdict is True
        c["names_class"] += named
    return {k: {"n": c["n"], **{m: round(v / c["n"], 3) for m, v in c.items() if m != "n"}} for k, c in acc.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("answers", help="JSONL written by python -m avllm.evaluate --answers")
    p.add_argument("--out", default="")
    a = p.parse_args()
    rows = [json.loads(line) for line in Path(a.answers).read_text().splitlines() if line.strip()]
    got = figures(rows)
    for kind, f in sorted(got.items()):
        print(kind, " ".join(f"{k}={v}" for k, v in f.items()))
    if a.out:
        Path(a.out).write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
