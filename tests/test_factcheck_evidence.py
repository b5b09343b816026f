"""The fact-check evidence reader of benchmarks/factcheck_evidence.py, on hand-written answers."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from factcheck_evidence import figures, implied  # noqa: E402


def test_implied_verdicts_by_hand():
    p = "True or false: The bell is on the left side of the frame."
    assert implied("position", p, "The bell is on the left side, so false.") == (True, True)
    assert implied("position", p, "The drum is on the top side, so false.") == (False, False)
    t = "Is this claim true or false? At 2.50 seconds the bell can be heard."
    assert implied("time", t, "The bell sounds [1.00, 3.00], so false.") == (True, True)
    assert implied("time", t, "The bell sounds [0.00, 1.00], [2.75, 3.00], so true.") == (False, True)
    assert implied("time", "You can hear the fan 1.50 seconds into the clip.", "The fan sounds [1.00, 2.00].")[1]
    o = "Claim: The bell is heard before the drum. Is it true or false?"
    assert implied("order", o, "The bell starts [0.50, 1.00] and the drum [1.50, 2.00], so false.") == (True, True)
    assert implied("order", o, "The drum starts [0.50, 1.00] and the drum [0.50, 1.00], so false.") == (False, False)
    assert implied("time", t, "false") == (None, False)  # no evidence: nothing implied


def test_figures_count_each_kind():
    rows = [
        {"task": "factcheck", "kind": "time", "label": True, "prompt": "At 2.50 seconds the bell can be heard.",
         "answer": "The bell sounds [1.00, 3.00], so false."},
        {"task": "factcheck", "kind": "time", "label": False, "prompt": "At 0.50 seconds the bell can be heard.",
         "answer": "The bell sounds [1.00, 3.00], so false."},
        {"task": "factcheck", "kind": "heard", "label": True, "prompt": "You can hear a bell.", "answer": "true"},
        {"task": "avqa", "kind": "counting", "label": None, "prompt": "How many?", "answer": "two"},
    ]
    got = figures(rows)
    assert set(got) == {"time"}
    assert got["time"] == {"n": 2, "verdict_acc": 0.5, "evidence_acc": 1.0, "follows": 0.5, "said_true": 0.0,
                           "names_class": 1.0}
