"""Box and time-segment metrics for the grounding tasks (audio-referred image grounding, temporal localization).

Boxes are normalised ``[x0, y0, x1, y1]``; segments are ``[start, end]`` in seconds (see ``avllm.record``). The
predictions come from ``avllm.textformat`` parsing, so "no box" / "no segment" is an empty list.

Conventions:
- ``box_iou`` / ``segment_iou``: a degenerate box or segment (zero area / length, or reversed) has area 0;
  IoU with an empty union is 0.
- Grounding accuracy (MEERKAT's box accuracy): a sample is correct when its FIRST predicted box has
  IoU >= ``thr`` with any GT box; no predicted box is wrong.
- Temporal mIoU: per sample, the IoU of the union of the predicted segments with the union of the GT segments
  (1-D interval unions). A missing prediction scores 0; when the GT is empty, an empty prediction scores 1 (it
  correctly says "never") and a non-empty one 0. Temporal R@1 (tIoU >= 0.5): the FIRST predicted segment has
  tIoU >= 0.5 with some GT segment.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "box_iou",
    "grounding_accuracy",
    "segment_iou",
    "interval_union",
    "union_iou",
    "temporal_metrics",
]

Box = Sequence[float]
Seg = Sequence[float]


def box_iou(a: Box, b: Box) -> float:
    """IoU of two ``[x0, y0, x1, y1]`` boxes. Symmetric, in [0, 1]; 1 iff equal non-degenerate boxes."""
    ax0, ay0, ax1, ay1 = (float(v) for v in a)
    bx0, by0, bx1, by1 = (float(v) for v in b)
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = max(0.0, ax1 - ax0) * max(0.0, ay1 - ay0) + max(0.0, bx1 - bx0) * max(0.0, by1 - by0) - inter
    return inter / union if union > 0 else 0.0


def grounding_accuracy(preds: Sequence[Sequence[Box]], gts: Sequence[Sequence[Box]], thr: float = 0.5) -> float:
    """Fraction of samples whose first predicted box has IoU >= ``thr`` with any of their GT boxes.

    preds, gts: per sample a list of boxes (possibly empty). Range [0, 1]; nan for no samples.
    """
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} samples")
    if not preds:
        return float("nan")
    hits = [bool(p) and any(box_iou(p[0], g) >= thr for g in gt) for p, gt in zip(preds, gts)]
    return float(np.mean(hits))


def segment_iou(a: Seg, b: Seg) -> float:
    """Temporal IoU of two ``[start, end]`` segments. Symmetric, in [0, 1]."""
    a0, a1 = float(a[0]), float(a[1])
    b0, b1 = float(b[0]), float(b[1])
    inter = max(0.0, min(a1, b1) - max(a0, b0))
    union = max(0.0, a1 - a0) + max(0.0, b1 - b0) - inter
    return inter / union if union > 0 else 0.0


def interval_union(segs: Sequence[Seg]) -> list[tuple[float, float]]:
    """Disjoint, sorted intervals covering the union of ``segs`` (empty and reversed segments dropped)."""
    out: list[tuple[float, float]] = []
    for s, e in sorted((float(s[0]), float(s[1])) for s in segs if float(s[1]) > float(s[0])):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _length(ivs: Sequence[tuple[float, float]]) -> float:
    return sum(e - s for s, e in ivs)


def union_iou(pred: Sequence[Seg], gt: Sequence[Seg]) -> float:
    """IoU of the union of ``pred`` with the union of ``gt`` (1-D). Both empty: 1; one empty: 0."""
    p, g = interval_union(pred), interval_union(gt)
    if not p and not g:
        return 1.0
    inter, i, j = 0.0, 0, 0
    while i < len(p) and j < len(g):  # sweep two sorted disjoint lists
        inter += max(0.0, min(p[i][1], g[j][1]) - max(p[i][0], g[j][0]))
        if p[i][1] < g[j][1]:
            i += 1
        else:
            j += 1
    union = _length(p) + _length(g) - inter
    return inter / union if union > 0 else 0.0


def temporal_metrics(preds: Sequence[Sequence[Seg]], gts: Sequence[Sequence[Seg]]) -> dict[str, float]:
    """Temporal localization metrics.

    preds, gts: per sample a list of ``[start, end]`` segments (seconds). Returns ``miou`` (mean union IoU) and
    ``r1_50`` (first predicted segment has tIoU >= 0.5 with some GT segment), both in [0, 1] (nan for none).
    """
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} samples")
    if not preds:
        return {"miou": float("nan"), "r1_50": float("nan")}
    ious = [union_iou(p, g) for p, g in zip(preds, gts)]
    r1 = [bool(p) and any(segment_iou(p[0], s) >= 0.5 for s in g) for p, g in zip(preds, gts)]
    return {"miou": float(np.mean(ious)), "r1_50": float(np.mean(r1))}
