"""Sampling a scene: every random choice of one clip, drawn from ``(split, seed, index)`` and a difficulty.

A ``Scene`` is plain data (JSON-able through ``to_dict``); rendering and audio synthesis are pure functions of it,
so the same ``(split, seed, index, difficulty, ...)`` always gives the same clip.

Splits use disjoint seed streams: the stream of a clip is ``SeedSequence([salt, split code, crc32(difficulty),
seed, index])``.
The ``unheard`` split holds out class *pairs*: the five pairs in ``HELD_OUT_PAIRS`` never appear together (both
seen, or one seen and one heard) in a train / val / test clip, and every ``unheard`` clip shows one of them.
Every class is still seen in training, in other company.

Geometry is normalised: x, y in [0, 1] from the top-left corner; times are seconds on a 0.25 s grid.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from avllm.synth.classes import CLASS_NAMES, get_class
from avllm.synth.difficulty import Difficulty
from avllm.synth.layout import place_objects

__all__ = [
    "SPLITS",
    "HELD_OUT_PAIRS",
    "TIME_STEP",
    "ObjectSpec",
    "SourceSpec",
    "SpeechSpec",
    "BackgroundSpec",
    "ClutterSpec",
    "Scene",
    "scene_seed",
    "clip_id",
    "sample_scene",
    "hsv_to_rgb",
]

SPLITS: tuple[str, ...] = ("train", "val", "test", "unheard")
_SPLIT_CODE = {"train": 11, "val": 23, "test": 37, "unheard": 41}
_SALT = 0x5A17_AD10  # fixed: makes the synthetic world's streams its own
HELD_OUT_PAIRS: tuple[tuple[str, str], ...] = (
    ("bell", "siren"),
    ("clock", "drum"),
    ("engine", "bird"),
    ("fan", "buzzer"),
    ("cricket", "kettle"),
)
TIME_STEP = 0.25  # segment boundaries lie on this grid (seconds): exact in 2-decimal text and in time tokens
_SPEECH_TEMPLATES = ("where is the {c}", "show me the {c}", "find the {c}", "look at the {c}", "the {c}")
_VOICES = ("en", "en-us", "en+f3", "en-us+m3")


@dataclass
class ObjectSpec:
    category: str
    rgb: tuple[int, int, int]  # base colour after the in-class jitter
    texture: str
    texture_angle: float  # radians, direction of stripes / shading
    texture_period: float  # pattern period as a fraction of the object's size
    texture_phase: float  # 0..1
    w: float  # box width at rest, frame fraction
    h: float  # box height at rest, frame fraction
    cx: float  # box centre at t = 0, frame fraction
    cy: float
    dx: float  # linear drift of the centre over the whole clip, frame fraction
    dy: float
    source: int  # index of its sound in Scene.sources, or -1 when silent


@dataclass
class SourceSpec:
    category: str
    object: int  # index of the visible object making it, or -1 when off-screen
    segments: list[list[float]]  # [[start, end], ...] seconds, sorted, disjoint
    f0: float  # fundamental / centre frequency (Hz) of this instance
    gain_db: float  # level before mixing
    seed: int  # randomness of the synthesis (rates, phases, decays)


@dataclass
class SpeechSpec:
    text: str
    target: int  # index of the visible object the phrase names
    voice: str  # espeak-ng voice
    speed: int  # words per minute
    pitch: int  # 0..99
    start_frac: float  # start = start_frac * (duration - speech length)
    gain_db: float


@dataclass
class BackgroundSpec:
    rgb_a: tuple[int, int, int]  # gradient end colours (muted)
    rgb_b: tuple[int, int, int]
    angle: float  # gradient direction, radians
    texture: int  # index into the smooth-noise texture bank
    texture_amp: float  # texture contrast (0..1 of full scale)


@dataclass
class ClutterSpec:
    kind: str  # dot, bar, speck, plus
    x: float  # centre, frame fraction
    y: float
    size: float  # side, frame fraction
    vertical: bool  # for bars
    rgb: tuple[int, int, int]


@dataclass
class Scene:
    id: str
    split: str
    seed: int
    index: int
    difficulty: str
    image_size: int
    fps: float
    duration: float
    num_frames: int
    pulse: str
    pulse_depth: float
    snr_db: float
    noise_seed: int
    objects: list[ObjectSpec]
    sources: list[SourceSpec]
    background: BackgroundSpec
    clutter: list[ClutterSpec]
    speech: SpeechSpec | None = None
    held_out_pair: list[str] | None = None  # the hidden pair shown (unheard split only)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def frame_times(self) -> np.ndarray:
        """(T,) float64 seconds: frame i is shown at i / fps."""
        return np.arange(self.num_frames) / self.fps

    @property
    def key_index(self) -> int:
        return self.num_frames // 2

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def scene_seed(split: str, seed: int, index: int, difficulty: str = "standard") -> np.random.SeedSequence:
    """The seed stream of one clip; streams of different (split, seed, index, difficulty) are independent."""
    if split not in _SPLIT_CODE:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    diff = zlib.crc32(difficulty.encode())
    return np.random.SeedSequence([_SALT, _SPLIT_CODE[split], diff, int(seed), int(index)])


def clip_id(split: str, seed: int, index: int, difficulty: str) -> str:
    return f"synth-{difficulty}-{split}-s{seed}-{index:06d}"


def hsv_to_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    """HSV (h in degrees, s, v in 0..1) to an RGB triple of ints 0..255."""
    h = (h % 360.0) / 60.0
    c = v * s
    x = c * (1 - abs(h % 2 - 1))
    r, g, b = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c), (c, 0, x)][int(h) % 6]
    m = v - c
    return tuple(int(round(255 * (u + m))) for u in (r, g, b))  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------------------------


def sample_scene(
    split: str,
    seed: int,
    index: int,
    difficulty: Difficulty,
    speech: bool = False,
    image_size: int = 224,
    fps: float = 8.0,
    duration: float = 4.0,
) -> Scene:
    """Draw every random choice of clip ``index`` of ``split``; pure function of its arguments."""
    if duration < 1.0 or fps <= 0 or image_size < 32:
        raise ValueError(f"need duration >= 1 s, fps > 0, image_size >= 32; got {duration}, {fps}, {image_size}")
    rng = np.random.default_rng(scene_seed(split, seed, index, difficulty.name))
    d = difficulty
    num_frames = max(1, int(round(duration * fps)))

    n_obj = int(rng.integers(d.num_objects[0], d.num_objects[1] + 1))
    if split == "unheard":
        n_obj = max(n_obj, 2)
    has_off = bool(rng.random() < d.p_offscreen)
    cats, pair = _sample_classes(rng, n_obj + int(has_off), split)
    vis_cats, off_cats = cats[:n_obj], cats[n_obj:]

    # Who sounds: one visible object always; sometimes a second one; the off-screen source if any.
    sounding = [int(rng.integers(n_obj))]
    if n_obj >= 2 and rng.random() < d.p_second_sounding:
        sounding.append(int(rng.choice([i for i in range(n_obj) if i != sounding[0]])))
    sources: list[SourceSpec] = []
    onsets: list[float] = []
    for obj_i, cat in [(i, vis_cats[i]) for i in sounding] + [(-1, c) for c in off_cats]:
        segs = _sample_segments(rng, duration, d.p_two_stretches, onsets)
        onsets.append(segs[0][0])
        fam = get_class(cat).sound
        sources.append(
            SourceSpec(
                category=cat,
                object=obj_i,
                segments=segs,
                f0=round(float(rng.uniform(fam.f_lo, fam.f_hi)), 2),
                gain_db=round(float(rng.uniform(*d.gain_db)), 2),
                seed=int(rng.integers(2**31)),
            )
        )

    geometry = place_objects(rng, n_obj, d, num_frames)
    objects = []
    for i, (cat, (w, h, cx, cy, dx, dy)) in enumerate(zip(vis_cats, geometry)):
        vis = get_class(cat).visual
        hue = vis.hue + rng.uniform(-6, 6)
        sat = vis.saturation * rng.uniform(0.85, 1.0)
        val = vis.value * rng.uniform(0.85, 1.0)
        src = next((k for k, s in enumerate(sources) if s.object == i), -1)
        objects.append(
            ObjectSpec(
                category=cat,
                rgb=hsv_to_rgb(hue, sat, val),
                texture=vis.texture,
                texture_angle=round(float(rng.uniform(0, math.pi)), 4),
                texture_period=round(float(rng.uniform(0.16, 0.3)), 4),
                texture_phase=round(float(rng.uniform(0, 1)), 4),
                w=w,
                h=h,
                cx=cx,
                cy=cy,
                dx=dx,
                dy=dy,
                source=src,
            )
        )

    hue_a = float(rng.uniform(0, 360))
    background = BackgroundSpec(
        rgb_a=hsv_to_rgb(hue_a, rng.uniform(0.1, 0.35), rng.uniform(0.10, 0.32)),
        rgb_b=hsv_to_rgb(hue_a + rng.uniform(-60, 60), rng.uniform(0.1, 0.35), rng.uniform(0.10, 0.32)),
        angle=round(float(rng.uniform(0, 2 * math.pi)), 4),
        texture=int(rng.integers(8)),
        texture_amp=round(float(rng.uniform(0.03, 0.09)), 4),
    )
    clutter = []
    for _ in range(int(rng.integers(d.clutter[0], d.clutter[1] + 1))):
        if d.clutter_colourful:
            rgb = hsv_to_rgb(rng.uniform(0, 360), rng.uniform(0.6, 0.9), rng.uniform(0.6, 0.9))
        else:
            rgb = hsv_to_rgb(rng.uniform(0, 360), rng.uniform(0.05, 0.3), rng.uniform(0.3, 0.55))
        clutter.append(
            ClutterSpec(
                kind=str(rng.choice(["dot", "bar", "speck", "plus"])),
                x=round(float(rng.uniform(0, 1)), 4),
                y=round(float(rng.uniform(0, 1)), 4),
                size=round(float(rng.uniform(0.02, 0.06)), 4),
                vertical=bool(rng.random() < 0.5),
                rgb=rgb,
            )
        )
    speech_spec = None
    if speech:
        target = int(rng.integers(n_obj))
        speech_spec = SpeechSpec(
            text=str(rng.choice(_SPEECH_TEMPLATES)).format(c=vis_cats[target]),
            target=target,
            voice=str(rng.choice(_VOICES)),
            speed=int(rng.choice([140, 160, 180])),
            pitch=int(rng.choice([35, 50, 65])),
            start_frac=round(float(rng.uniform(0, 1)), 4),
            gain_db=round(float(rng.uniform(-3, 0)), 2),
        )
    return Scene(
        id=clip_id(split, seed, index, d.name),
        split=split,
        seed=int(seed),
        index=int(index),
        difficulty=d.name,
        image_size=int(image_size),
        fps=float(fps),
        duration=float(duration),
        num_frames=num_frames,
        pulse=d.pulse,
        pulse_depth=d.pulse_depth,
        snr_db=round(float(rng.uniform(*d.snr_db)), 2),
        noise_seed=int(rng.integers(2**31)),
        objects=objects,
        sources=sources,
        background=background,
        clutter=clutter,
        speech=speech_spec,
        held_out_pair=list(pair) if pair else None,
    )


def _sample_classes(rng: np.random.Generator, k: int, split: str) -> tuple[list[str], tuple[str, str] | None]:
    """k distinct class names; visible ones first. Unheard: a held-out pair, both visible (k >= 2)."""
    names = list(CLASS_NAMES)
    if split == "unheard":
        pair = HELD_OUT_PAIRS[int(rng.integers(len(HELD_OUT_PAIRS)))]
        rest = [c for c in names if c not in pair]
        extra = [rest[i] for i in rng.permutation(len(rest))[: k - 2]]
        first = [pair[i] for i in rng.permutation(2)]
        return first + extra, pair
    for _ in range(1000):
        cats = [names[i] for i in rng.permutation(len(names))[:k]]
        if not any(a in cats and b in cats for a, b in HELD_OUT_PAIRS):
            return cats, None
    raise RuntimeError("could not draw classes outside the held-out pairs")  # pragma: no cover


def _sample_segments(
    rng: np.random.Generator, duration: float, p_two: float, onsets: list[float]
) -> list[list[float]]:
    """One stretch of 1-3 s (or two of 0.5-1.25 s, 0.5-1 s apart), on the TIME_STEP grid.

    The onset differs by >= 0.5 s (duration / 8 in clips under 4 s, at least one grid step) from every onset in
    ``onsets``, so "which sounds first" is well defined."""
    steps = int(round(duration / TIME_STEP))
    min_gap = max(TIME_STEP, min(0.5, duration / 8))  # between onsets: 0.5 s from 4 s clips on
    q = int(round(1 / TIME_STEP))  # grid steps per second
    lo, hi = min(q, steps // 4), min(3 * q, (steps * 3) // 4)  # one stretch: 1-3 s (shorter in short clips)
    segs: list[list[int]] = []
    for _ in range(200):
        if rng.random() < p_two and steps >= 4 * q:  # two stretches of 0.5-1.25 s, 0.5-1 s apart
            l1, l2, gap = (int(v) for v in rng.integers([q // 2] * 3, [q + q // 4 + 1, q + q // 4 + 1, q + 1]))
            total = l1 + gap + l2
            if total > steps:
                continue
            s = int(rng.integers(0, steps - total + 1))
            segs = [[s, s + l1], [s + l1 + gap, s + total]]
        else:
            n = int(rng.integers(max(1, lo), max(1, hi) + 1))
            s = int(rng.integers(0, steps - n + 1))
            segs = [[s, s + n]]
        if all(abs(segs[0][0] * TIME_STEP - o) >= min_gap for o in onsets):
            break
    else:  # pragma: no cover - needs a clip too short for its sources
        raise RuntimeError(f"no onset {min_gap} s away from {onsets} in a {duration} s clip")
    return [[a * TIME_STEP, b * TIME_STEP] for a, b in segs]
