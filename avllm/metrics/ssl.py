"""Sound source localization metrics, computed as EZ-VSL's (and LVS's) evaluation code computes them.

The reference pipeline, for one image:

1. the model's map ``(h, w)`` is upsampled bilinearly to the GT size (224 x 224) — EZ-VSL uses
   ``F.interpolate(..., mode="bilinear", align_corners=True)``, which is our default (LVS's ``cv2.resize``
   corresponds to ``align_corners=False``);
2. it is min-max normalised to [0, 1] (a constant map is left as it is);
3. threshold = ``np.sort(map.ravel())[int(N * 0.5)]`` (N pixels), and ``P = map >= threshold``. With no ties
   exactly N/2 pixels are positive; ties at the threshold are all positive, so a map that is constant outside the
   object (e.g. a binary mask covering less than half the frame) makes the *whole* frame positive;
4. ``cIoU = sum(P * G) / (sum(G) + sum(P * (G == 0)))`` with the GT map G in {0, 0.5, 1};
5. over images: ``cIoU@0.5 = mean(cIoU_i >= 0.5)``; ``AUC`` = trapezoidal area (``sklearn.metrics.auc``) under
   ``y(x) = mean(cIoU_i >= x)`` for ``x = 0.05 * i``, i = 0..20. Note ``y(0) = 1`` always, so a set of images
   that all score cIoU = 0 has AUC = 0.05 * (1 + 0) / 2 = 0.025, not 0.

Because half the frame is positive, a map that ranks the object's pixels first scores ``cIoU = 2 f`` for an
object covering a fraction ``f < 1/2`` of the frame; :func:`ssl_ceiling` reports that best achievable score.
Beside the median threshold we report a fixed threshold on the normalised map (``P = map >= 0.6``, the variant
used for small objects) and pointing accuracy (the map's peak falls on a GT pixel).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Literal

import numpy as np

__all__ = [
    "SSL_SIZE",
    "AUC_XS",
    "upsample_map",
    "normalize_map",
    "median_threshold",
    "gt_map_from_boxes",
    "ciou",
    "ssl_auc",
    "pointing_hit",
    "perfect_map",
    "ssl_metrics",
    "ssl_ceiling",
]

SSL_SIZE = 224  # the evaluation resolution of VGG-SS / Flickr-SoundNet
AUC_XS: tuple[float, ...] = tuple(0.05 * i for i in range(21))  # the reference's x grid, float for float


def _interp_matrix(n_in: int, n_out: int, align_corners: bool) -> np.ndarray:
    """(n_out, n_in) matrix of 1-D linear interpolation weights, as torch's bilinear upsampling computes them."""
    dst = np.arange(n_out, dtype=np.float64)
    if align_corners:
        src = dst * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros_like(dst)
    else:
        src = np.maximum((dst + 0.5) * (n_in / n_out) - 0.5, 0.0)  # half-pixel centres, clamped as torch does
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = src - i0
    w = np.zeros((n_out, n_in), dtype=np.float64)
    np.add.at(w, (np.arange(n_out), i0), 1.0 - lam)
    np.add.at(w, (np.arange(n_out), i1), lam)
    return w


def upsample_map(m: np.ndarray, size: int | tuple[int, int] = SSL_SIZE, align_corners: bool = True) -> np.ndarray:
    """Bilinear resize of a map.

    m: (h, w) float. size: output side (square) or (H, W). Returns (H, W) float64. ``align_corners=True``
    matches EZ-VSL's ``F.interpolate(..., align_corners=True)``; ``False`` matches torch's default (half-pixel).
    """
    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"a map is (h, w); got shape {m.shape}")
    H, W = (size, size) if isinstance(size, int) else size
    ry = _interp_matrix(m.shape[0], H, align_corners)  # (H, h)
    rx = _interp_matrix(m.shape[1], W, align_corners)  # (W, w)
    return ry @ m @ rx.T  # (H, W)


def normalize_map(m: np.ndarray) -> np.ndarray:
    """Min-max normalisation to [0, 1]; a constant map is returned unchanged (as the reference does)."""
    m = np.asarray(m, dtype=np.float64)
    lo, hi = m.min(), m.max()
    return (m - lo) / (hi - lo) if hi > lo else m.copy()


def median_threshold(m: np.ndarray) -> float:
    """The reference's median threshold: ``sort(m)[int(N * 0.5)]``; pixels ``>=`` it are positive."""
    flat = np.sort(np.asarray(m, dtype=np.float64).ravel())
    return float(flat[int(flat.size * 0.5)])


def gt_map_from_boxes(
    boxes_norm: Sequence[Sequence[float]],
    size: int = SSL_SIZE,
    mode: Literal["vggss", "flickr"] = "vggss",
    annotators: Sequence[Hashable] | None = None,
) -> np.ndarray:
    """GT map (size, size) float64 from normalised ``[x0, y0, x1, y1]`` boxes.

    Pixel bounds are ``int(size * clip(v, 0, 1))`` and a box covers rows ``y0:y1``, columns ``x0:x1``.
    - ``"vggss"``: union of the boxes (1 inside any box, else 0).
    - ``"flickr"``: annotator consensus: votes summed, ``/ 2``, clipped to 1, so a pixel marked by two or more
      annotators is 1 and by one annotator 0.5. With ``annotators=None`` every box is one vote (the reference
      sums all boxes of the file); with ``annotators`` (one id per box) an annotator's own boxes are merged first,
      so an annotator votes at most once per pixel.
    """
    if mode not in ("vggss", "flickr"):
        raise ValueError(f"mode must be 'vggss' or 'flickr'; got {mode!r}")
    if annotators is not None and len(annotators) != len(boxes_norm):
        raise ValueError(f"{len(annotators)} annotator ids for {len(boxes_norm)} boxes")
    groups: dict[Hashable, np.ndarray] = {}
    for i, box in enumerate(boxes_norm):
        x0, y0, x1, y1 = (int(size * min(max(float(v), 0.0), 1.0)) for v in box)
        key = i if annotators is None else annotators[i]
        layer = groups.setdefault(key, np.zeros((size, size), dtype=np.float64))
        layer[y0:y1, x0:x1] = 1.0
    votes = sum(groups.values(), np.zeros((size, size), dtype=np.float64))
    if mode == "vggss":
        return (votes > 0).astype(np.float64)
    return np.minimum(votes / 2.0, 1.0)


def ciou(pred_bin: np.ndarray, gt: np.ndarray) -> float:
    """Consensus IoU ``sum(P * G) / (sum(G) + sum(P * (G == 0)))`` for a binary map P and a GT map G in [0, 1].

    Both (H, W). Range [0, 1]. 0 / 0 (empty GT and empty P, where the reference yields nan) is scored 0.
    """
    p = np.asarray(pred_bin, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and GT {g.shape} differ in shape")
    den = g.sum() + (p * (g == 0)).sum()
    return float((p * g).sum() / den) if den > 0 else 0.0


def ssl_auc(cious: Sequence[float]) -> float:
    """Area under ``y(x) = mean(cIoU_i >= x)``, x = 0, 0.05, ..., 1, by the trapezoid rule. Range [0.025, 1]."""
    c = np.asarray(cious, dtype=np.float64)
    if c.size == 0:
        return float("nan")
    ys = np.array([np.mean(c >= x) for x in AUC_XS])
    xs = np.asarray(AUC_XS)
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2.0))


def pointing_hit(m: np.ndarray, gt: np.ndarray) -> bool:
    """Does the map's peak (first argmax, in raster order) fall on a GT pixel (G > 0)? m and gt: (H, W)."""
    m = np.asarray(m)
    return bool(np.asarray(gt).ravel()[int(np.argmax(m))] > 0)


def perfect_map(gt: np.ndarray) -> np.ndarray:
    """The best map for a GT under the median threshold: G kept where G > 0 (ties kept, so a whole GT level
    passes when the threshold falls in it), the background strictly ordered just below 0 (values in [-1e-3, 0))
    so that it fills the positive half without ties. Its median-threshold cIoU is ``2 f`` for a binary GT covering
    ``f < 1/2`` of the frame and 1 when ``f >= 1/2``."""
    g = np.asarray(gt, dtype=np.float64)
    out = g.copy()
    bg = g <= 0
    n_bg = int(bg.sum())
    out[bg] = -1e-3 * (np.arange(n_bg, dtype=np.float64) + 1.0) / max(n_bg, 1)
    return out


def ssl_metrics(
    maps: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    fixed_threshold: float = 0.6,
    align_corners: bool = True,
) -> dict[str, float]:
    """SSL metrics over a set of images.

    maps: per image (h, w) float, any scale (the model's raw map). gts: per image (H, W) GT map in {0, 0.5, 1}
    (from :func:`gt_map_from_boxes`); each map is upsampled to its GT's size.
    Returns ``ciou50``, ``auc``, ``ciou_mean`` (median threshold), ``ciou50_fixed``, ``auc_fixed``,
    ``ciou_mean_fixed`` (``normalised map >= fixed_threshold``), ``pointing`` (fraction of peaks on the GT) and
    ``n``. Empty input gives nan values and ``n = 0``.
    """
    if len(maps) != len(gts):
        raise ValueError(f"{len(maps)} maps for {len(gts)} GT maps")
    med, fix, hits = [], [], []
    for m, g in zip(maps, gts):
        g = np.asarray(g, dtype=np.float64)
        up = normalize_map(upsample_map(m, g.shape, align_corners=align_corners))  # (H, W) in [0, 1]
        med.append(ciou(up >= median_threshold(up), g))
        fix.append(ciou(up >= fixed_threshold, g))
        hits.append(pointing_hit(up, g))
    nan = float("nan")
    return {
        "ciou50": float(np.mean(np.asarray(med) >= 0.5)) if med else nan,
        "auc": ssl_auc(med),
        "ciou_mean": float(np.mean(med)) if med else nan,
        "ciou50_fixed": float(np.mean(np.asarray(fix) >= 0.5)) if fix else nan,
        "auc_fixed": ssl_auc(fix),
        "ciou_mean_fixed": float(np.mean(fix)) if fix else nan,
        "pointing": float(np.mean(hits)) if hits else nan,
        "n": float(len(med)),
    }


def ssl_ceiling(gts: Sequence[np.ndarray], fixed_threshold: float = 0.6) -> dict[str, float]:
    """The SSL metrics of the ground truth itself (through :func:`perfect_map`): the best a model can score on
    these images. Print it beside the model's :func:`ssl_metrics`."""
    return ssl_metrics([perfect_map(g) for g in gts], gts, fixed_threshold=fixed_threshold)
