"""Trivial baselines printed beside every model metric: the centre prior (SSL map and grounding box) and random
time segments. Question-only / audio-only / image-only baselines are models, built by the evaluation code."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["center_prior_map", "center_box", "random_segments"]


def center_prior_map(h: int, w: int, sigma: float = 0.25) -> np.ndarray:
    """A centred isotropic Gaussian, (h, w) float64, peak 1 at the centre.

    ``sigma`` is a fraction of each side (x in units of w, y in units of h). Pixel centres are at
    ``(i + 0.5) / size``, so the map is symmetric under flips.
    """
    ys = (np.arange(h) + 0.5) / h - 0.5  # (h,)
    xs = (np.arange(w) + 0.5) / w - 0.5  # (w,)
    return np.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2.0 * sigma**2))  # (h, w)


def center_box() -> list[float]:
    """The centre-prior box ``[0.25, 0.25, 0.75, 0.75]`` (normalised xyxy, a quarter of the frame)."""
    return [0.25, 0.25, 0.75, 0.75]


def random_segments(durations: Sequence[float], rng: np.random.Generator) -> list[list[list[float]]]:
    """One random segment per clip: two uniform times in ``[0, duration]``, sorted.

    Returns per clip ``[[start, end]]`` in seconds, the shape of a parsed temporal prediction.
    """
    out = []
    for d in durations:
        a, b = sorted(rng.uniform(0.0, float(d), size=2).tolist())
        out.append([[a, b]])
    return out
