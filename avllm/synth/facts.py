"""What the texts of a clip are computed from: its heard sources, position words, and small wording helpers.
Shared by the task texts (``tasks``) and the AVQA questions (``avqa``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avllm.record import ObjectAnn, Record

__all__ = ["POSITIONS", "position_word", "side_of", "Source", "heard_sources", "box_area", "pick", "a_", "A_"]

POSITIONS: tuple[str, ...] = (
    "left", "right", "top", "bottom", "center", "top-left", "top-right", "bottom-left", "bottom-right",
)  # fmt: skip


def position_word(box: list[float]) -> str:
    """One of the nine POSITIONS from the box centre: thirds of the frame (x: left/-/right, y: top/-/bottom)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    col = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else ""
    row = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else ""
    return f"{row}-{col}" if row and col else row or col or "center"


def side_of(box: list[float], side: str) -> bool:
    """True when the box centre lies in the ``side`` half (left / right / top / bottom) of the frame."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return {"left": cx < 0.5, "right": cx > 0.5, "top": cy < 0.5, "bottom": cy > 0.5}[side]


@dataclass
class Source:
    """A heard source (visible sounding object or off-screen sound); speech excluded."""

    category: str
    segments: list[list[float]]
    loudness: float | None
    obj: ObjectAnn | None

    @property
    def onset(self) -> float:
        return self.segments[0][0]

    @property
    def length(self) -> float:
        return sum(e - s for s, e in self.segments)


def heard_sources(rec: Record) -> list[Source]:
    """Visible sounding objects and off-screen sounds (speech excluded), sorted by onset."""
    srcs = [Source(o.category, o.segments, o.loudness_db, o) for o in rec.objects if o.sounding and o.segments]
    srcs += [Source(s.category, s.segments, s.loudness_db, None) for s in rec.sounds if s.category != "speech"]
    return sorted(srcs, key=lambda s: s.onset)


def box_area(box: list[float]) -> float:
    """Area of a normalised box (frame fraction)."""
    return (box[2] - box[0]) * (box[3] - box[1])


def pick(rng: np.random.Generator, items: list | tuple):
    """One element of ``items``, uniformly."""
    return items[int(rng.integers(len(items)))]


def a_(word: str) -> str:
    """``word`` with its indefinite article: "a bell", "an engine"."""
    return ("an " if word[:1] in "aeiou" else "a ") + word


def A_(word: str) -> str:
    """``a_(word)`` capitalised, to start a sentence."""
    return a_(word).capitalize()
