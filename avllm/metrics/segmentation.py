"""Segmentation metrics: AVSBench's mIoU and F-score, and DenseAV's per-class pixel AP and best IoU.

AVSBench (``utility.py`` of the reference code):
- mIoU: ``P = sigmoid(logits) > 0.5``; per frame ``IoU = |P & G| / (|P | G| + 1e-7)``; a frame whose GT is empty
  is scored on the complements, ``|~P & ~G| / N`` = the fraction of pixels predicted background; mean over frames.
  (The reference averages per batch and then over batches; we average over all frames, the same for equal
  batches.)
- F-score: probabilities ``sigmoid(logits)``; thresholds ``linspace(0, 1 - 1e-10, 255)`` (float32, as torch's
  default dtype, so the last one rounds to 1.0); per frame and threshold ``T = prob >= t``,
  ``precision = |T & G| / (|T| + 1e-20)``, ``recall = |T & G| / (|G| + 1e-20)``,
  ``F = (1 + b2) P R / (b2 P + R)`` with nan set to 0; frames with an empty GT are skipped; F is averaged over
  frames per threshold (the F of each frame, not the F of averaged P and R), and the max over thresholds is
  reported. No frame with a GT gives 0, as the reference.

DenseAV (``eval_utils`` of the reference): for each prompt class, the heatmaps and masks of all its images are
pooled (flattened) into one pixel set; AP is the binary average precision of the scores against ``G > 0.5``
(``sum over distinct thresholds of (R_k - R_{k-1}) * P_k``, ties grouped, as torchmetrics and sklearn compute
it); best IoU is the max over ``k = 20`` thresholds ``linspace(min, max, k)`` of ``IoU(score > t, G > 0.5)``
(an empty union counts as IoU 0). Metrics are averaged over classes by :func:`dense_seg_metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["linspace_f32", "avsbench_miou", "avsbench_fscore", "pixel_ap", "best_iou", "dense_seg_metrics"]


def _fma_f32(a: float, step: np.ndarray, k: np.ndarray) -> np.ndarray:
    """float32 ``a + step * k`` rounded once, as a fused multiply-add: float32 inputs, integer k < 2**24."""
    a64, p = np.float64(a), step * k  # p is exact in float64 (24-bit step times a small integer)
    hi = a64 + p
    bb = hi - a64
    lo = (a64 - (hi - bb)) + (p - bb)  # two-sum: hi + lo == a + p exactly
    r = hi.astype(np.float32)
    # float64 -> float32 can round twice wrongly only when hi sits exactly half way between two float32s
    side = np.where(hi > r.astype(np.float64), np.float32(np.inf), np.float32(-np.inf))
    nb = np.nextafter(r, side.astype(np.float32))
    mid = (r.astype(np.float64) + nb.astype(np.float64)) / 2 == hi
    fix = mid & (lo != 0)
    move = fix & ((lo > 0) == (nb > r))  # the exact value lies on the neighbour's side of the midpoint
    r[move] = nb[move]
    return r


def linspace_f32(start: float, end: float, n: int) -> np.ndarray:
    """``torch.linspace(start, end, n)`` in float32, bit for bit: the step is rounded to float32, the first half
    counts up from ``start`` and the second half down from ``end``, each point rounded once (a fused
    multiply-add). The reference thresholds are made this way, and a score equal to a threshold must fall on the
    same side as in the reference."""
    a, b = np.float32(start), np.float32(end)
    if n == 1:
        return np.array([a], dtype=np.float32)
    step = np.float64(np.float32((b - a) / np.float32(n - 1)))
    i = np.arange(n, dtype=np.float64)
    up = _fma_f32(float(a), step, i)
    down = _fma_f32(float(b), -step, n - 1 - i)
    return np.where(np.arange(n) < n // 2, up, down)


def _probs(pred: np.ndarray, is_logits: bool) -> np.ndarray:
    x = np.asarray(pred, dtype=np.float32)
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32) if is_logits else x


def _check(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.ndim != 3 or pred.shape != gt.shape:
        raise ValueError(f"prediction and GT must both be (N, H, W); got {pred.shape} and {gt.shape}")


def avsbench_miou(pred: np.ndarray, gt: np.ndarray, *, is_logits: bool, eps: float = 1e-7) -> float:
    """AVSBench mIoU.

    pred: (N, H, W) logits (``is_logits=True``) or probabilities in [0, 1]. gt: (N, H, W) bool or {0, 1}.
    Returns the mean over frames of the per-frame IoU (empty-GT frames on the complement), in [0, 1].
    """
    p = _probs(pred, is_logits) > 0.5  # (N, H, W) bool
    g = np.asarray(gt) > 0.5
    _check(p, g)
    n_pix = p.shape[1] * p.shape[2]
    inter = (p & g).sum(axis=(1, 2)).astype(np.float64)  # (N,)
    union = (p | g).sum(axis=(1, 2)).astype(np.float64)
    empty = g.sum(axis=(1, 2)) == 0
    inter[empty] = (~p & ~g).sum(axis=(1, 2))[empty]
    union[empty] = n_pix
    return float(np.mean(inter / (union + eps))) if len(p) else float("nan")


def avsbench_fscore(
    pred: np.ndarray, gt: np.ndarray, *, is_logits: bool, beta2: float = 0.3, n_thresholds: int = 255
) -> float:
    """AVSBench F-measure: max over ``n_thresholds`` thresholds of the frame-averaged F_beta (beta^2 = ``beta2``).

    pred: (N, H, W) logits (``is_logits=True``) or probabilities. gt: (N, H, W) bool or {0, 1}. Range [0, 1].
    """
    prob = _probs(pred, is_logits)
    g = np.asarray(gt) > 0.5
    _check(prob, g)
    ths = linspace_f32(0.0, 1.0 - 1e-10, n_thresholds)  # (T,) float32; the last one rounds to 1.0
    f_sum, n = np.zeros(n_thresholds, dtype=np.float64), 0
    for p_i, g_i in zip(prob, g):
        if not g_i.any():
            continue  # frames with a totally black GT are out of consideration
        all_sorted = np.sort(p_i.ravel())
        pos_sorted = np.sort(p_i[g_i])
        n_pred = all_sorted.size - np.searchsorted(all_sorted, ths, side="left")  # |prob >= t|, (T,)
        tp = pos_sorted.size - np.searchsorted(pos_sorted, ths, side="left")  # |(prob >= t) & G|
        prec = tp / (n_pred + 1e-20)
        rec = tp / (pos_sorted.size + 1e-20)
        with np.errstate(invalid="ignore", divide="ignore"):
            f = (1 + beta2) * prec * rec / (beta2 * prec + rec)
        f_sum += np.nan_to_num(f, nan=0.0)
        n += 1
    return float((f_sum / n).max()) if n else 0.0


def pixel_ap(scores: np.ndarray, gt: np.ndarray) -> float:
    """Binary average precision of pixel scores against ``gt > 0.5`` (any shapes, flattened together).

    ``AP = sum_k (R_k - R_{k-1}) P_k`` over distinct score thresholds, descending, ties grouped. Range [0, 1];
    nan when there is no positive pixel.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(gt).ravel() > 0.5
    if s.size != y.size:
        raise ValueError(f"{s.size} scores for {y.size} labels")
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    tps = np.cumsum(y)  # true positives among the top i+1
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]  # last index of each group of tied scores
    tp = tps[last].astype(np.float64)
    precision = tp / (last + 1)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def best_iou(scores: np.ndarray, gt: np.ndarray, n: int = 20) -> float:
    """Best IoU of ``scores > t`` against ``gt > 0.5`` over ``n`` thresholds ``linspace(min, max, n)``.

    scores, gt: any equal sizes (flattened together); scores and thresholds are compared in float32, as the
    reference. Range [0, 1].
    """
    s = np.asarray(scores, dtype=np.float32).ravel()  # float32 heatmaps and thresholds, as the reference
    y = np.asarray(gt).ravel() > 0.5
    if s.size != y.size:
        raise ValueError(f"{s.size} scores for {y.size} labels")
    if s.size == 0:
        return float("nan")
    best = 0.0
    for t in linspace_f32(float(s.min()), float(s.max()), n):
        p = s > t
        union = int((p | y).sum())
        best = max(best, float((p & y).sum() / union) if union else 0.0)
    return best


def dense_seg_metrics(
    scores: np.ndarray, gts: np.ndarray, classes: Sequence[object], n: int = 20
) -> dict[str, float]:
    """DenseAV-style prompted segmentation: pixel AP and best IoU per prompt class, averaged over classes.

    scores: (N, H, W) heatmaps (one per prompt). gts: (N, H, W) masks of the prompted class. classes: (N,) the
    prompt class of each heatmap. Returns ``ap`` (nan-mean over classes), ``iou`` and ``n_classes``; the caller
    names them ``seg.<head>.ap`` / ``seg.<head>.iou``.
    """
    scores, gts = np.asarray(scores), np.asarray(gts)
    if len(scores) != len(gts) or len(scores) != len(classes):
        raise ValueError(f"{len(scores)} heatmaps, {len(gts)} masks, {len(classes)} classes")
    aps, ious = [], []
    labels = list(classes)
    for c in dict.fromkeys(labels):  # first-seen order
        idx = [i for i, k in enumerate(labels) if k == c]
        aps.append(pixel_ap(scores[idx], gts[idx]))
        ious.append(best_iou(scores[idx], gts[idx], n=n))
    nan = float("nan")
    ap_ok = [a for a in aps if not np.isnan(a)]
    return {
        "ap": float(np.mean(ap_ok)) if ap_ok else nan,
        "iou": float(np.mean(ious)) if ious else nan,
        "n_classes": float(len(ious)),
    }
