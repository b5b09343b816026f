"""One record structure for every data source: the synthetic world, VGG-SS / Flickr-SoundNet, AVSBench, MUSIC-AVQA
and instruction JSON all become ``Record``s.

Conventions (the same everywhere in avllm):
- boxes are normalised ``[x0, y0, x1, y1]`` with 0 <= x0 < x1 <= 1, origin at the top-left corner of the frame;
- time segments are ``[start, end]`` in seconds from the start of the clip;
- masks are boolean arrays ``(H, W)`` in frame pixels, or paths to PNG files holding them.

A record round-trips through JSON (``to_json`` / ``from_json``): that is one line of a manifest.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["TASKS", "Task", "ObjectAnn", "SoundAnn", "TextSample", "Record"]

Task = Literal["ground", "temporal", "factcheck", "avqa", "caption", "speech", "chat"]
TASKS: tuple[str, ...] = ("ground", "temporal", "factcheck", "avqa", "caption", "speech", "chat")


@dataclass
class ObjectAnn:
    """A visible object."""

    category: str  # class name, e.g. "bell"
    box: list[float]  # normalised [x0, y0, x1, y1] at the key frame
    sounding: bool  # does it make sound anywhere in the clip
    segments: list[list[float]] = field(default_factory=list)  # [[start, end], ...] seconds when it sounds
    frame_boxes: list[list[float]] = field(default_factory=list)  # per sampled frame, normalised; [] if unknown
    loudness_db: float | None = None  # RMS level of its sound in dBFS (None when silent or unknown)
    mask: str | None = None  # path of its key-frame instance mask (PNG), relative to the manifest
    attrs: dict[str, Any] = field(default_factory=dict)  # e.g. colour, shape, position words


@dataclass
class SoundAnn:
    """A sound that is heard but not seen (off-screen), or speech."""

    category: str  # class name, or "speech"
    segments: list[list[float]] = field(default_factory=list)
    loudness_db: float | None = None
    text: str | None = None  # the spoken phrase when category == "speech"


@dataclass
class TextSample:
    """One instruction / answer pair for a task."""

    task: str  # one of TASKS
    prompt: str  # the question, without the AV placeholder tokens
    answer: str  # the target text (boxes and segments written by avllm.textformat)
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. {"kind": "counting"}, {"label": True}, {"box": [...]}

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; known: {', '.join(TASKS)}")


@dataclass
class Record:
    """A clip and its ground truth."""

    id: str
    source: str  # "synth", "vggss", "flickr", "avsbench", "musicavqa", "instruct"
    video: str | None = None  # video file (relative to the manifest's folder, or absolute)
    image: str | None = None  # image file, when the clip is an image + audio
    audio: str | None = None  # audio file, when the clip is an image + audio
    duration: float = 0.0  # seconds
    key_time: float = 0.0  # the key frame's time (seconds): boxes, masks and the SSL target refer to it
    width: int = 0  # frame size in pixels (0 = unknown)
    height: int = 0
    objects: list[ObjectAnn] = field(default_factory=list)
    sounds: list[SoundAnn] = field(default_factory=list)  # off-screen sounds and speech
    ssl_boxes: list[list[float]] = field(default_factory=list)  # SSL target: boxes of sounding visible objects
    ssl_mask: str | None = None  # SSL target mask (PNG) at the key frame, when known
    frame_masks: list[str] = field(default_factory=list)  # AVSBench-style per-frame binary masks (PNG paths)
    texts: list[TextSample] = field(default_factory=list)
    split: str = ""  # train / val / test / unheard
    meta: dict[str, Any] = field(default_factory=dict)  # seed, index, difficulty, snr_db, ...

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown record field(s): {', '.join(unknown)}")
        if "id" not in d or "source" not in d:
            raise ValueError("a record needs 'id' and 'source'")
        d = dict(d)
        d["objects"] = [ObjectAnn(**o) for o in d.get("objects", [])]
        d["sounds"] = [SoundAnn(**s) for s in d.get("sounds", [])]
        d["texts"] = [TextSample(**t) for t in d.get("texts", [])]
        return cls(**d)

    @classmethod
    def from_json(cls, line: str) -> Record:
        return cls.from_dict(json.loads(line))

    def texts_for(self, task: str) -> list[TextSample]:
        return [t for t in self.texts if t.task == task]
