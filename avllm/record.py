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
        """The record of a JSON object. Raises ValueError (unknown or missing fields, a bad task) or TypeError (a
        field of the wrong JSON type, named), so that a damaged manifest line fails here, not later."""
        if not isinstance(d, dict):
            raise TypeError(f"a record is a JSON object, got {_json_type(d)}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown record field(s): {', '.join(unknown)}")
        if "id" not in d or "source" not in d:
            raise ValueError("a record needs 'id' and 'source'")
        _check_types("record", d, _RECORD_TYPES)
        _check_items("record field 'frame_masks'", d.get("frame_masks", []), _STR)
        _check_items("record field 'ssl_boxes'", d.get("ssl_boxes", []), _LIST)
        if "frames" in d.get("meta", {}):  # media paths too (readers resolve them)
            _check_items("record field 'meta'['frames']", d["meta"]["frames"], _STR)
        d = dict(d)
        for name, kind, types in (("objects", ObjectAnn, _OBJECT_TYPES), ("sounds", SoundAnn, _SOUND_TYPES),
                                  ("texts", TextSample, _TEXT_TYPES)):  # fmt: skip
            items = d.get(name, [])
            for i, item in enumerate(items):
                _check_types(f"record field {name!r}[{i}]", item, types)
            d[name] = [kind(**item) for item in items]
        return cls(**d)

    @classmethod
    def from_json(cls, line: str) -> Record:
        return cls.from_dict(json.loads(line))

    def texts_for(self, task: str) -> list[TextSample]:
        return [t for t in self.texts if t.task == task]


# ----------------------------------------------------------------------------------------------------------------
# The JSON type of each field (what ``Record.from_dict`` accepts)

_STR, _OPT_STR, _NUM, _OPT_NUM, _INT, _BOOL, _LIST, _DICT = (
    "a string", "a string or null", "a number", "a number or null", "an integer", "true or false", "a list",
    "an object",
)  # fmt: skip
_RECORD_TYPES = {
    "id": _STR, "source": _STR, "video": _OPT_STR, "image": _OPT_STR, "audio": _OPT_STR, "duration": _NUM,
    "key_time": _NUM, "width": _INT, "height": _INT, "objects": _LIST, "sounds": _LIST, "ssl_boxes": _LIST,
    "ssl_mask": _OPT_STR, "frame_masks": _LIST, "texts": _LIST, "split": _STR, "meta": _DICT,
}  # fmt: skip
_OBJECT_TYPES = {
    "category": _STR, "box": _LIST, "sounding": _BOOL, "segments": _LIST, "frame_boxes": _LIST,
    "loudness_db": _OPT_NUM, "mask": _OPT_STR, "attrs": _DICT,
}  # fmt: skip
_SOUND_TYPES = {"category": _STR, "segments": _LIST, "loudness_db": _OPT_NUM, "text": _OPT_STR}
_TEXT_TYPES = {"task": _STR, "prompt": _STR, "answer": _STR, "meta": _DICT}


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    return {str: "a string", list: "a list", dict: "an object"}.get(type(v), type(v).__name__)


def _has_type(v: Any, want: str) -> bool:
    if v is None:
        return want in (_OPT_STR, _OPT_NUM)
    if want in (_STR, _OPT_STR):
        return isinstance(v, str)
    if want in (_NUM, _OPT_NUM):
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if want == _INT:
        return isinstance(v, int) and not isinstance(v, bool)
    if want == _BOOL:
        return isinstance(v, bool)
    return isinstance(v, list if want == _LIST else dict)


def _check_types(what: str, d: Any, types: dict[str, str]) -> None:
    """Raise TypeError unless ``d`` is an object whose fields named in ``types`` have those JSON types."""
    if not isinstance(d, dict):
        raise TypeError(f"{what} must be an object, got {_json_type(d)}")
    for name, want in types.items():
        if name in d and not _has_type(d[name], want):
            raise TypeError(f"{what}: field {name!r} must be {want}, got {_json_type(d[name])}")


def _check_items(what: str, items: Any, want: str) -> None:
    """Raise TypeError unless ``items`` is a list whose every element has the JSON type ``want``."""
    if not isinstance(items, list):
        raise TypeError(f"{what} must be a list, got {_json_type(items)}")
    for i, v in enumerate(items):
        if not _has_type(v, want):
            raise TypeError(f"{what}[{i}] must be {want}, got {_json_type(v)}")
