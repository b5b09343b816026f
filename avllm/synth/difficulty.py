"""Difficulty presets of the synthetic world: one frozen dataclass each (``easy``, ``standard``, ``hard``).

Object sizes are box areas as a fraction of the frame. In ``easy`` and ``standard`` every visible object's box
covers 25-45 % / 25-40 % of the frame (the SSL metric, median-threshold cIoU, can only reach 0.5 when the
sounding object covers >= 25 % of the frame); two objects share the frame side by side, so their shapes are
stretched when needed to keep that area. ``hard`` has 2-3 small objects (4-15 %), more clutter, motion, lower SNR.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Pulse", "Difficulty", "DIFFICULTIES", "get_difficulty"]

Pulse = Literal["none", "size", "brightness"]


@dataclass(frozen=True)
class Difficulty:
    name: str
    num_objects: tuple[int, int]  # visible objects per clip, inclusive range
    object_area: tuple[float, float]  # box area of each visible object, fraction of the frame (target range)
    p_second_sounding: float  # with >= 2 objects: probability that a second visible object sounds (at another time)
    p_offscreen: float  # probability of one off-screen sound (heard, not seen)
    snr_db: tuple[float, float]  # sources-to-background-noise ratio range (dB, whole clip)
    clutter: tuple[int, int]  # small non-sounding shapes drawn on the background, inclusive range
    clutter_colourful: bool  # clutter in saturated colours (can look like a class) instead of muted ones
    p_motion: float  # probability that a visible object drifts linearly
    max_drift: float  # largest drift over the clip, as a fraction of the frame side
    pulse: Pulse  # visual cue of sounding objects in sync with their sound envelope
    pulse_depth: float  # size: relative growth at full loudness; brightness: relative brightening
    p_two_stretches: float  # probability that a source sounds in two separate stretches instead of one
    gain_db: tuple[float, float]  # per-source level range before mixing (dB)

    def __post_init__(self) -> None:
        lo, hi = self.num_objects
        if not 1 <= lo <= hi <= 3:
            raise ValueError(f"num_objects must be within 1..3, got {self.num_objects}")
        a0, a1 = self.object_area
        if not 0 < a0 <= a1 < 1:
            raise ValueError(f"object_area must be within (0, 1), got {self.object_area}")
        if self.pulse not in ("none", "size", "brightness"):
            raise ValueError(f"pulse must be none, size or brightness, got {self.pulse!r}")


DIFFICULTIES: dict[str, Difficulty] = {
    "easy": Difficulty(
        name="easy",
        num_objects=(1, 2),
        object_area=(0.25, 0.45),
        p_second_sounding=0.0,
        p_offscreen=0.0,
        snr_db=(15.0, 25.0),
        clutter=(0, 3),
        clutter_colourful=False,
        p_motion=0.0,
        max_drift=0.0,
        pulse="size",
        pulse_depth=0.12,
        p_two_stretches=0.0,
        gain_db=(-4.0, 0.0),
    ),
    "standard": Difficulty(
        name="standard",
        num_objects=(1, 2),
        object_area=(0.25, 0.40),
        p_second_sounding=0.3,
        p_offscreen=0.3,
        snr_db=(6.0, 15.0),
        clutter=(3, 8),
        clutter_colourful=False,
        p_motion=0.5,
        max_drift=0.06,
        pulse="brightness",
        pulse_depth=0.25,
        p_two_stretches=0.2,
        gain_db=(-8.0, 0.0),
    ),
    "hard": Difficulty(
        name="hard",
        num_objects=(2, 3),
        object_area=(0.04, 0.15),
        p_second_sounding=0.5,
        p_offscreen=0.5,
        snr_db=(0.0, 8.0),
        clutter=(8, 20),
        clutter_colourful=True,
        p_motion=0.8,
        max_drift=0.25,
        pulse="none",
        pulse_depth=0.0,
        p_two_stretches=0.3,
        gain_db=(-10.0, 0.0),
    ),
}


def get_difficulty(d: str | Difficulty) -> Difficulty:
    """A preset by name, or ``d`` itself when it is already a Difficulty."""
    if isinstance(d, Difficulty):
        return d
    try:
        return DIFFICULTIES[d]
    except KeyError:
        raise ValueError(f"unknown difficulty {d!r}; known: {', '.join(DIFFICULTIES)}") from None
