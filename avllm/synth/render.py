"""Drawing a scene: background, clutter, objects (with motion and the visual pulse), per-frame boxes and masks.

Shapes are binary masks sampled at pixel centres (no anti-aliasing), so masks and boxes are exact: the box of an
object in a frame is the tight box of the pixels it covers, ``[x0, y0, x1, y1]`` with x1, y1 the exclusive pixel
edges, divided by the frame size. Objects never overlap, so every instance mask is the object's visible pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from avllm.synth.classes import get_class
from avllm.synth.scene import ObjectSpec, Scene

__all__ = ["Placement", "shape_mask", "placements", "render_background", "render_frames", "key_masks"]


@lru_cache(maxsize=4096)
def shape_mask(shape: str, h: int, w: int) -> np.ndarray:
    """(h, w) bool mask of ``shape`` filling an h x w box (read-only, cached)."""
    v = (np.arange(h, dtype=np.float32) + 0.5) / h * 2 - 1  # (h,) in (-1, 1), top to bottom
    u = (np.arange(w, dtype=np.float32) + 0.5) / w * 2 - 1  # (w,)
    U, V = u[None, :], v[:, None]
    if shape == "circle":
        m = U**2 + V**2 <= 1.0
    elif shape == "square":
        m = U**4 + V**4 <= 1.0  # slightly rounded corners
    elif shape == "triangle":
        m = np.abs(U) <= (V + 1) / 2  # apex at the top
    elif shape == "diamond":
        m = np.abs(U) + np.abs(V) <= 1.0
    elif shape == "hexagon":
        m = np.abs(U) + 0.5 * np.abs(V) <= 1.0
    elif shape == "ring":
        r2 = U**2 + V**2
        m = (r2 <= 1.0) & (r2 >= 0.3)
    elif shape == "cross":
        m = (np.abs(U) <= 0.36) | (np.abs(V) <= 0.36)
    elif shape in ("star", "pentagon"):
        # vertices on the unit circle span x in [-sin 72, sin 72], y in [-1, cos 36]: stretch that onto the box
        U = U * math.sin(math.radians(72))
        V = -1 + (V + 1) * (1 + math.cos(math.radians(36))) / 2
        theta = np.arctan2(U, -V)  # 0 points up
        r = np.sqrt(U**2 + V**2)
        sector = 2 * math.pi / 5
        phi = np.abs((theta % sector) - sector / 2)  # angle from the middle of a sector
        if shape == "pentagon":  # vertices up: edges at the sector middles
            m = r * np.cos(phi) <= math.cos(math.pi / 5)
        else:  # five points: radius falls linearly from 1 (tips) to 0.4 (notches)
            m = r <= 0.4 + 0.6 * (phi / (sector / 2))
    else:
        raise ValueError(f"unknown shape {shape!r}")
    m = np.ascontiguousarray(m, dtype=bool)
    if not m.any():  # tiny sizes: never an empty object
        m[h // 2, w // 2] = True
    m.setflags(write=False)
    return m


@lru_cache(maxsize=4096)
def _mask_bbox(shape: str, h: int, w: int) -> tuple[int, int, int, int]:
    """(r0, c0, r1, c1) tight bounds of the mask, r1/c1 exclusive."""
    m = shape_mask(shape, h, w)
    rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _texture(obj: ObjectSpec, h: int, w: int) -> np.ndarray:
    """(h, w) float32 shade multipliers in (0, 1] for the object's texture."""
    v = ((np.arange(h, dtype=np.float32) + 0.5) / h * 2 - 1)[:, None]
    u = ((np.arange(w, dtype=np.float32) + 0.5) / w * 2 - 1)[None, :]
    c, s = math.cos(obj.texture_angle), math.sin(obj.texture_angle)
    a = u * c + v * s
    p, ph = 2 * obj.texture_period, obj.texture_phase
    if obj.texture == "stripes":
        t = np.where(((a / p + ph) % 1.0) < 0.5, 0.4, 1.0)
    elif obj.texture == "dots":
        fx, fy = (u / p + ph) % 1.0 - 0.5, (v / p + ph) % 1.0 - 0.5
        t = np.where(fx**2 + fy**2 < 0.08, 0.35, 1.0)
    elif obj.texture == "checker":
        t = np.where((np.floor(u / p + ph) + np.floor(v / p + ph)) % 2 == 0, 0.55, 1.0)
    elif obj.texture == "rings":
        t = np.where(((np.sqrt(u**2 + v**2) / p + ph) % 1.0) < 0.5, 0.5, 1.0)
    else:  # solid: a gentle light-to-dark shading
        t = 0.85 + 0.15 * a / math.sqrt(2)
    return np.broadcast_to(t, (h, w)).astype(np.float32)


@dataclass
class Placement:
    """Where each object is drawn in each frame (pixels)."""

    x: np.ndarray  # (T, N) int left column of the object's h x w patch
    y: np.ndarray  # (T, N) int top row
    w: np.ndarray  # (T, N) int patch width
    h: np.ndarray  # (T, N) int patch height
    boxes: np.ndarray  # (T, N, 4) float64 normalised tight boxes [x0, y0, x1, y1]


def placements(scene: Scene, env: np.ndarray) -> Placement:
    """Pixel placement of every object in every frame.

    env: (N, T) float in [0, 1], the sound envelope of each visible object at each frame (0 when silent);
        used by the size pulse."""
    S, T, N = scene.image_size, scene.num_frames, len(scene.objects)
    frac = scene.frame_times / scene.duration  # (T,) in [0, 1)
    X, Y, Wd, Hd = (np.zeros((T, N), dtype=np.int64) for _ in range(4))
    boxes = np.zeros((T, N, 4))
    for n, o in enumerate(scene.objects):
        scale = 1.0 + (scene.pulse_depth * env[n] if scene.pulse == "size" else 0.0)  # (T,) or scalar
        scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), (T,))
        w = np.maximum(3, np.round(o.w * scale * S)).astype(np.int64)  # (T,)
        h = np.maximum(3, np.round(o.h * scale * S)).astype(np.int64)
        cx, cy = (o.cx + o.dx * frac) * S, (o.cy + o.dy * frac) * S
        x = np.clip(np.round(cx - w / 2), 0, S - w).astype(np.int64)
        y = np.clip(np.round(cy - h / 2), 0, S - h).astype(np.int64)
        X[:, n], Y[:, n], Wd[:, n], Hd[:, n] = x, y, w, h
        shape = get_class(o.category).visual.shape
        for t in range(T):
            r0, c0, r1, c1 = _mask_bbox(shape, int(h[t]), int(w[t]))
            boxes[t, n] = [(x[t] + c0) / S, (y[t] + r0) / S, (x[t] + c1) / S, (y[t] + r1) / S]
    return Placement(X, Y, Wd, Hd, boxes)


@lru_cache(maxsize=4)
def _texture_bank(size: int, count: int = 8) -> np.ndarray:
    """(count, size, size) float32 smooth noise in [-1, 1], fixed seed (built once per size)."""
    rng = np.random.default_rng(20240917)
    coarse = rng.uniform(-1, 1, (count, 9, 9))
    src = np.linspace(0, 8, 9)
    dst = np.linspace(0, 8, size)
    rows = np.stack([[np.interp(dst, src, c[:, j]) for j in range(9)] for c in coarse])  # (count, 9, size)
    out = np.stack([[np.interp(dst, src, r[:, i]) for i in range(size)] for r in rows])  # (count, size, size)
    out = out.transpose(0, 2, 1)  # (count, size[y], size[x])
    out /= np.abs(out).max(axis=(1, 2), keepdims=True)
    return out.astype(np.float32)


def render_background(scene: Scene) -> np.ndarray:
    """(S, S, 3) uint8: gradient + smooth texture + clutter."""
    S, bg = scene.image_size, scene.background
    coords = (np.arange(S, dtype=np.float32) + 0.5) / S
    g = coords[None, :] * math.cos(bg.angle) + coords[:, None] * math.sin(bg.angle)  # (S, S)
    g = (g - g.min()) / max(float(g.max() - g.min()), 1e-6)
    a, b = np.array(bg.rgb_a, np.float32), np.array(bg.rgb_b, np.float32)
    img = a + (b - a) * g[..., None]  # (S, S, 3)
    img += (255.0 * bg.texture_amp) * _texture_bank(S)[bg.texture][..., None]
    img = np.clip(img, 0, 255).astype(np.uint8)
    for c in scene.clutter:
        n = max(2, int(round(c.size * S)))
        if c.kind == "dot":
            m = shape_mask("circle", n, n)
        elif c.kind == "bar":
            m = np.ones((n, max(1, n // 4)) if c.vertical else (max(1, n // 4), n), bool)
        elif c.kind == "speck":
            m = np.ones((max(1, n // 2), max(1, n // 2)), bool)
        else:
            m = shape_mask("cross", n, n)
        x, y = int(round(c.x * S - m.shape[1] / 2)), int(round(c.y * S - m.shape[0] / 2))
        _paste(img, m, np.array(c.rgb, np.uint8), x, y)
    return img


def _paste(img: np.ndarray, mask: np.ndarray, rgb: np.ndarray, x: int, y: int) -> None:
    """Paste a mask (h, w) coloured rgb ((3,) or (h, w, 3)) at (x, y), clipped to the image."""
    H, W = img.shape[:2]
    h, w = mask.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x0 >= x1 or y0 >= y1:
        return
    m = mask[y0 - y : y1 - y, x0 - x : x1 - x]
    src = rgb if rgb.ndim == 1 else rgb[y0 - y : y1 - y, x0 - x : x1 - x]
    np.copyto(img[y0:y1, x0:x1], np.broadcast_to(src, m.shape + (3,)), where=m[..., None])


def render_frames(scene: Scene, frame_idx: np.ndarray, place: Placement, env: np.ndarray) -> np.ndarray:
    """(k, S, S, 3) uint8 frames for the frame indices ``frame_idx`` (k,).

    env: (N, T) float in [0, 1] object sound envelopes per frame (drives the brightness pulse).
    Each object's frames are grouped by sprite (size, brightness level), and one fancy-indexed assignment draws a
    sprite into all the frames of its group."""
    S, k = scene.image_size, len(frame_idx)
    frames = np.empty((k, S, S, 3), dtype=np.uint8)
    frames[:] = render_background(scene)
    flat = frames.reshape(-1)
    for n, o in enumerate(scene.objects):
        shape = get_class(o.category).visual.shape
        base = np.array(o.rgb, np.float32)
        groups: dict[tuple[int, int, int], list[tuple[int, int]]] = {}
        for j, t in enumerate(frame_idx):
            level = int(round(float(env[n, t]) * 16)) if scene.pulse == "brightness" else 0  # 17 levels
            key = (int(place.h[t, n]), int(place.w[t, n]), level)
            groups.setdefault(key, []).append((j, int(place.y[t, n]) * S + int(place.x[t, n])))
        sprites: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        for (h, w, level), members in groups.items():
            if (h, w) not in sprites:
                rr, cc = np.nonzero(shape_mask(shape, h, w))
                rel = ((rr * S + cc)[:, None] * 3 + np.arange(3)).reshape(-1)  # (3P,) byte offsets in a frame
                sprites[(h, w)] = (rel, (_texture(o, h, w)[rr, cc][:, None] * base).reshape(-1))  # (3P,), (3P,)
            rel, rgb = sprites[(h, w)]
            if level:
                rgb = rgb + (255.0 - rgb) * (scene.pulse_depth * level / 16)
            col = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
            js, offs = np.array(members).T
            flat[((js * S * S + offs) * 3)[:, None] + rel[None, :]] = col  # (m, 3P) bytes of m frames
    return frames


def key_masks(scene: Scene, place: Placement) -> np.ndarray:
    """(N, S, S) bool instance masks of the visible objects at the key frame."""
    S, t = scene.image_size, scene.key_index
    out = np.zeros((len(scene.objects), S, S), dtype=bool)
    for n, o in enumerate(scene.objects):
        h, w, x, y = (int(a[t, n]) for a in (place.h, place.w, place.x, place.y))
        out[n, y : y + h, x : x + w] = shape_mask(get_class(o.category).visual.shape, h, w)
    return out
