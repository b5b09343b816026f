"""Where the visible objects go: sizes from the preset's area range, linear drift, and positions that keep every
object inside the frame and apart from the others in every frame (normalised coordinates, origin top-left).

Random placement is tried first; when the objects are too large to be placed apart at random, the frame is cut
into cells (halves; thirds or a half and two quarters for three objects) and each object is stretched inside its
cell so that it keeps its area.
"""

from __future__ import annotations

import math

import numpy as np

from avllm.synth.difficulty import Difficulty

__all__ = ["MARGIN", "place_objects"]

MARGIN = 0.02  # objects keep this distance (frame fraction) from the border and from each other

def place_objects(
    rng: np.random.Generator, n: int, d: Difficulty, num_frames: int
) -> list[tuple[float, float, float, float, float, float]]:
    """(w, h, cx, cy, dx, dy) per object; boxes stay inside the frame and apart from each other in every frame."""
    grow = 1.0 + (d.pulse_depth if d.pulse == "size" else 0.0)  # the largest size a pulse reaches
    sizes = []
    for _ in range(n):
        area = rng.uniform(*d.object_area)
        aspect = math.exp(rng.uniform(math.log(0.8), math.log(1.25)))
        sizes.append((math.sqrt(area * aspect), math.sqrt(area / aspect), area))
    drifts = []
    for _ in range(n):
        if rng.random() < d.p_motion and d.max_drift > 0:
            mag, ang = rng.uniform(0.3, 1.0) * d.max_drift, rng.uniform(0, 2 * math.pi)
            drifts.append((mag * math.cos(ang), mag * math.sin(ang)))
        else:
            drifts.append((0.0, 0.0))
    ts = np.linspace(0.0, 1.0, max(num_frames, 2))

    # 1) free placement by rejection, when every pair could sit side by side or one above the other
    def fits(a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
        return min(a[0] + b[0], a[1] + b[1]) * grow + 3 * MARGIN <= 1.0

    feasible = all(fits(sizes[i], sizes[j]) for i in range(n) for j in range(i + 1, n))
    for _ in range(30 if feasible else 0):
        placed = []
        for (w, h, _a), (dx, dy) in zip(sizes, drifts):
            we, he = w * grow, h * grow
            cx = _uniform_centre(rng, we, dx, 0.0, 1.0)
            cy = _uniform_centre(rng, he, dy, 0.0, 1.0)
            if cx is None or cy is None:
                break
            placed.append((w, h, cx, cy, dx, dy))
        if len(placed) == n and _apart(placed, grow, ts):
            return [tuple(round(v, 5) for v in p) for p in placed]  # type: ignore[misc]

    # 2) cells: the frame split in n parts; each object fitted (stretched if needed) inside its cell
    cells = _cells(rng, n)
    out = []
    for (w, h, area), (dx, dy), (x0, y0, x1, y1) in zip(sizes, drifts, cells):
        cw, ch = (x1 - x0) - 2 * MARGIN, (y1 - y0) - 2 * MARGIN
        if w * grow > cw:
            w = cw / grow
            h = min(area / w, ch / grow)
        if h * grow > ch:
            h = ch / grow
            w = min(area / h, cw / grow)
        # the drift fits in the slack of the cell
        dx = float(np.clip(dx, -(cw - w * grow), cw - w * grow))
        dy = float(np.clip(dy, -(ch - h * grow), ch - h * grow))
        cx = _uniform_centre(rng, w * grow, dx, x0, x1)
        cy = _uniform_centre(rng, h * grow, dy, y0, y1)
        assert cx is not None and cy is not None
        out.append(tuple(round(v, 5) for v in (w, h, cx, cy, dx, dy)))
    return out  # type: ignore[return-value]


def _uniform_centre(rng: np.random.Generator, size: float, drift: float, lo: float, hi: float) -> float | None:
    """A start centre such that [c - size/2, c + size/2] and its drifted copy stay inside [lo, hi] with margin."""
    a = lo + MARGIN + size / 2 - min(0.0, drift)
    b = hi - MARGIN - size / 2 - max(0.0, drift)
    if a > b + 1e-9:
        return None
    return float(rng.uniform(a, max(a, b)))


def _apart(placed: list[tuple[float, ...]], grow: float, ts: np.ndarray) -> bool:
    for i in range(len(placed)):
        for j in range(i + 1, len(placed)):
            wi, hi_, cxi, cyi, dxi, dyi = placed[i]
            wj, hj, cxj, cyj, dxj, dyj = placed[j]
            gap_x = np.abs((cxi + dxi * ts) - (cxj + dxj * ts)) - (wi + wj) * grow / 2
            gap_y = np.abs((cyi + dyi * ts) - (cyj + dyj * ts)) - (hi_ + hj) * grow / 2
            if not np.all((gap_x >= MARGIN) | (gap_y >= MARGIN)):
                return False
    return True


def _cells(rng: np.random.Generator, n: int) -> list[tuple[float, float, float, float]]:
    """n disjoint cells (x0, y0, x1, y1) covering the frame, in random order."""
    if n == 1:
        cells = [(0.0, 0.0, 1.0, 1.0)]
    elif n == 2:
        cells = [(0.0, 0.0, 0.5, 1.0), (0.5, 0.0, 1.0, 1.0)]
    else:
        kind = int(rng.integers(2))
        if kind == 0:
            cells = [(0.0, 0.0, 1 / 3, 1.0), (1 / 3, 0.0, 2 / 3, 1.0), (2 / 3, 0.0, 1.0, 1.0)]
        else:
            cells = [(0.0, 0.0, 0.5, 1.0), (0.5, 0.0, 1.0, 0.5), (0.5, 0.5, 1.0, 1.0)]
    if rng.random() < 0.5:  # transpose: columns become rows
        cells = [(y0, x0, y1, x1) for x0, y0, x1, y1 in cells]
    return [cells[i] for i in rng.permutation(len(cells))]
