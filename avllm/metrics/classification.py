"""Accuracy for fact-checking and AVQA (overall and per question kind).

Answers are compared after :func:`normalize_answer` when they are strings (case, surrounding spaces and a
final full stop do not count: ``"Yes."`` equals ``"yes"``); other values (bools, ints) are compared as they are.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

__all__ = ["normalize_answer", "accuracy", "per_kind_accuracy"]


def normalize_answer(a: object) -> object:
    """Lower-case, strip spaces and one trailing full stop of a string; other values unchanged."""
    if isinstance(a, str):
        s = a.strip().lower()
        return s[:-1].rstrip() if s.endswith(".") else s
    return a


def accuracy(preds: Sequence[object], gts: Sequence[object]) -> float:
    """Fraction of ``preds[i] == gts[i]`` (after normalisation). Range [0, 1]; nan for no samples."""
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} answers")
    if not preds:
        return float("nan")
    return float(np.mean([normalize_answer(p) == normalize_answer(g) for p, g in zip(preds, gts)]))


def per_kind_accuracy(
    preds: Sequence[object], gts: Sequence[object], kinds: Sequence[Hashable]
) -> dict[Hashable, float]:
    """Accuracy within each kind (e.g. AVQA's existential / counting / location / temporal / comparative).

    Returns ``{kind: accuracy}`` in first-seen order of the kinds.
    """
    if not len(preds) == len(gts) == len(kinds):
        raise ValueError(f"{len(preds)} predictions, {len(gts)} answers, {len(kinds)} kinds")
    out: dict[Hashable, float] = {}
    for k in dict.fromkeys(kinds):
        idx = [i for i, kk in enumerate(kinds) if kk == k]
        out[k] = accuracy([preds[i] for i in idx], [gts[i] for i in idx])
    return out
