"""The one module that writes and parses boxes and time segments, in the two forms they take in text.

Display form, what people and the synthetic world's answers read:

    format_box([0.123, 0.34, 0.561, 0.78])      -> "[0.12, 0.34, 0.56, 0.78]"   # normalised, 2 decimals
    format_segment([1.25, 2.5])                 -> "[1.25, 2.50]"               # seconds, 2 decimals
    format_boxes([b1, b2])                      -> "[...], [...]"               # several joined by ", "
    parse_boxes("it is at [0.12, 0.34, 0.56, 0.78].")  -> [[0.12, 0.34, 0.56, 0.78]]

Model form, what the language model reads and writes: location tokens (Kosmos-2 / Pix2Seq style). A box is four
``<loc_i>`` tokens (x0, y0, x1, y1, each coordinate quantised into ``loc_bins`` bins of [0, 1]); a segment is two
``<t_j>`` tokens (start, end, each quantised into ``time_bins`` bins ``time_step`` seconds wide):

    codec = GroundingCodec(loc_bins=32, time_bins=64, time_step=0.125)
    codec.encode_text("at [0.12, 0.34, 0.56, 0.78]")   -> "at <loc_3><loc_10><loc_17><loc_24>"
    codec.decode_text("at <loc_3><loc_10><loc_17><loc_24>") -> "at [0.11, 0.33, 0.55, 0.77]"   # bin centres
    codec.parse(text) -> Parsed(boxes=[...], segments=[...])  # model form, display form, or a mix

Rules (the same in every function here):
- A display group is ``[`` numbers separated by commas ``]``; a number may carry a unit ``s``. A group of exactly
  4 numbers is a box, of exactly 2 numbers a segment; any other group (3 numbers, words, ``nan``, nested brackets)
  is plain text. So an answer never writes a 4-number or 2-number list in brackets unless it means a box or a
  segment.
- A box's numbers must lie in [0, 1] (up to ``TOLERANCE``, then clipped); a group with a number outside is plain
  text (pixel boxes are not boxes here). A segment's numbers must be >= 0 (up to ``TOLERANCE``, then clipped) and
  finite. Coordinates are sorted (x0 <= x1, y0 <= y1, start <= end).
- In the model form, a run of location tokens (whitespace allowed between them) is read four at a time, a run of
  time tokens two at a time; a leftover incomplete group, or a token whose index is out of range, is dropped.
  A decoded coordinate is its bin centre; when both coordinates of an axis fall in the same bin, the decoded box
  (or segment) spans that bin, so a decoded box or segment is never empty.
- Quantisation: coordinate ``v`` goes to bin ``floor(v * loc_bins)`` clipped to the range, time ``t`` to bin
  ``floor(t / time_step)`` clipped (times past ``time_bins * time_step`` land in the last bin).
- Parsing is total: any string gives a result (possibly empty), never an exception.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "TOLERANCE",
    "Parsed",
    "GroundingCodec",
    "format_box",
    "format_boxes",
    "format_segment",
    "format_segments",
    "parse_boxes",
    "parse_segments",
    "parse_display",
    "truth_of",
]

TOLERANCE = 0.05  # numbers this far outside their range are clipped into it; further out, the group is not read
_MAX_GROUP = 256  # characters inside one bracket group; longer groups are plain text

_NUM = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]{1,4})?"
_ITEM = re.compile(rf"\s*({_NUM})\s*(?:s\s*)?")
_GROUP = r"\[[^\[\]<]{0,%d}\]" % _MAX_GROUP  # no "<": tokens inside brackets stay tokens
_INDEX = r"(?:0|[1-9][0-9]{0,5})"
_LOC_RUN = rf"<loc_{_INDEX}>(?:\s*<loc_{_INDEX}>)*"
_T_RUN = rf"<t_{_INDEX}>(?:\s*<t_{_INDEX}>)*"
_TOKEN_INDEX = re.compile(r"<(?:loc|t)_([0-9]+)>")
_DISPLAY = re.compile(_GROUP)
_SCAN = re.compile(rf"(?P<group>{_GROUP})|(?P<loc>{_LOC_RUN})|(?P<t>{_T_RUN})")
# A time written in a prompt: a plain number followed by a unit of seconds ("2.50 seconds", "3 s", "1.5 sec").
_PROMPT_TIME = re.compile(r"(?<![\w.<])([0-9]+(?:\.[0-9]+)?)(?=\s*(?:seconds?|secs?|s)\b)")


@dataclass
class Parsed:
    """Boxes and segments read from a text, in order of appearance."""

    boxes: list[list[float]] = field(default_factory=list)  # normalised [x0, y0, x1, y1], x0 <= x1, y0 <= y1
    segments: list[list[float]] = field(default_factory=list)  # [start, end] seconds, start <= end


# ----------------------------------------------------------------------------------------------------------------
# Display form


def _finite(values: Sequence[float], n: int, what: str) -> list[float]:
    vals = [float(v) for v in values]
    if len(vals) != n or not all(math.isfinite(v) for v in vals):
        raise ValueError(f"a {what} is {n} finite numbers, got {list(values)!r}")
    return vals


def format_box(box: Sequence[float]) -> str:
    """``[x0, y0, x1, y1]`` normalised -> ``"[0.12, 0.34, 0.56, 0.78]"``; coordinates are clipped to [0, 1].

    Raises ``ValueError`` unless ``box`` is 4 finite numbers (writing is strict; parsing is total).
    """
    vals = [min(1.0, max(0.0, v)) for v in _finite(box, 4, "box")]
    return "[" + ", ".join(f"{v:.2f}" for v in vals) + "]"


def format_boxes(boxes: Sequence[Sequence[float]]) -> str:
    """Several boxes joined by ``", "``; ``""`` for none."""
    return ", ".join(format_box(b) for b in boxes)


def format_segment(seg: Sequence[float]) -> str:
    """``[start, end]`` seconds -> ``"[1.25, 2.50]"``; negative times are clipped to 0."""
    vals = [max(0.0, v) for v in _finite(seg, 2, "segment")]
    return "[" + ", ".join(f"{v:.2f}" for v in vals) + "]"


def format_segments(segs: Sequence[Sequence[float]]) -> str:
    """Several segments joined by ``", "``; ``""`` for none."""
    return ", ".join(format_segment(s) for s in segs)


def _group_numbers(group: str) -> list[float] | None:
    """The numbers of a bracket group ``"[a, b, ...]"``, or None when it is not a list of finite numbers."""
    parts = group[1:-1].split(",")
    out = []
    for part in parts:
        m = _ITEM.fullmatch(part)
        if m is None:
            return None
        v = float(m.group(1))
        if not math.isfinite(v):
            return None
        out.append(v)
    return out


def _as_box(nums: list[float]) -> list[float] | None:
    if len(nums) != 4 or not all(-TOLERANCE <= v <= 1.0 + TOLERANCE for v in nums):
        return None
    x0, y0, x1, y1 = (min(1.0, max(0.0, v)) + 0.0 for v in nums)
    return [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]


def _as_segment(nums: list[float]) -> list[float] | None:
    if len(nums) != 2 or not all(v >= -TOLERANCE for v in nums):
        return None
    a, b = (max(0.0, v) + 0.0 for v in nums)
    return [min(a, b), max(a, b)]


def _read_group(group: str) -> tuple[str, list[float]] | None:
    """("box", box) or ("segment", segment) for a display group, None for plain text."""
    nums = _group_numbers(group)
    if nums is None:
        return None
    if len(nums) == 4:
        box = _as_box(nums)
        return None if box is None else ("box", box)
    if len(nums) == 2:
        seg = _as_segment(nums)
        return None if seg is None else ("segment", seg)
    return None


def parse_display(text: str) -> Parsed:
    """All display-form boxes and segments in ``text`` (location tokens are ignored). Never raises."""
    out = Parsed()
    if not isinstance(text, str):
        return out
    for m in _DISPLAY.finditer(text):
        got = _read_group(m.group(0))
        if got is not None:
            (out.boxes if got[0] == "box" else out.segments).append(got[1])
    return out


def parse_boxes(text: str) -> list[list[float]]:
    """Display-form boxes in ``text``: ``[[x0, y0, x1, y1], ...]`` normalised, sorted per axis. Never raises."""
    return parse_display(text).boxes


def parse_segments(text: str) -> list[list[float]]:
    """Display-form segments in ``text``: ``[[start, end], ...]`` seconds, start <= end. Never raises."""
    return parse_display(text).segments


# ----------------------------------------------------------------------------------------------------------------
# Model form


@dataclass(frozen=True)
class GroundingCodec:
    """Location and time tokens: quantise boxes and segments for the language model, and read them back."""

    loc_bins: int = 32  # box coordinates in [0, 1] -> <loc_0> .. <loc_{loc_bins-1}>
    time_bins: int = 64  # times -> <t_0> .. <t_{time_bins-1}> ...
    time_step: float = 0.125  # ... each this many seconds wide

    def __post_init__(self) -> None:
        if self.loc_bins < 2 or self.time_bins < 2 or not self.time_step > 0:
            raise ValueError(f"GroundingCodec needs >= 2 bins and a positive time_step, got {self}")

    @classmethod
    def from_config(cls, lm_cfg) -> GroundingCodec:
        """The codec of an ``avllm.config.LMConfig`` (its ``loc_bins``, ``time_bins``, ``time_step``)."""
        return cls(loc_bins=lm_cfg.loc_bins, time_bins=lm_cfg.time_bins, time_step=lm_cfg.time_step)

    @property
    def max_time(self) -> float:
        """Seconds covered by the time tokens; later times land in the last bin."""
        return self.time_bins * self.time_step

    def special_tokens(self) -> list[str]:
        """The added tokens, location tokens first: ``<loc_0>`` .. then ``<t_0>`` .."""
        return [f"<loc_{i}>" for i in range(self.loc_bins)] + [f"<t_{j}>" for j in range(self.time_bins)]

    # -- quantisation ------------------------------------------------------------------------------------------

    def loc_index(self, v: float) -> int:
        """Bin of a coordinate in [0, 1] (clipped): ``floor(v * loc_bins)``."""
        return min(self.loc_bins - 1, max(0, math.floor(v * self.loc_bins)))

    def loc_value(self, i: int) -> float:
        """Centre of location bin ``i``."""
        return (i + 0.5) / self.loc_bins

    def time_index(self, t: float) -> int:
        """Bin of a time in seconds (clipped): ``floor(t / time_step)``."""
        return min(self.time_bins - 1, max(0, math.floor(t / self.time_step)))

    def time_value(self, j: int) -> float:
        """Centre of time bin ``j`` (seconds)."""
        return (j + 0.5) * self.time_step

    def box_tokens(self, box: Sequence[float]) -> str:
        """``[x0, y0, x1, y1]`` -> ``"<loc_a><loc_b><loc_c><loc_d>"``. Raises ValueError on non-finite input."""
        vals = _finite(box, 4, "box")
        return "".join(f"<loc_{self.loc_index(v)}>" for v in vals)

    def segment_tokens(self, seg: Sequence[float]) -> str:
        """``[start, end]`` seconds -> ``"<t_a><t_b>"``. Raises ValueError on non-finite input."""
        vals = _finite(seg, 2, "segment")
        return "".join(f"<t_{self.time_index(v)}>" for v in vals)

    def decode_box(self, idx: Sequence[int]) -> list[float]:
        """Four location bins -> a non-empty box: bin centres, sorted; an axis whose two bins agree spans the bin."""
        x0, y0, x1, y1 = idx
        xs = self._span(min(x0, x1), max(x0, x1), self.loc_value, 1.0 / self.loc_bins)
        ys = self._span(min(y0, y1), max(y0, y1), self.loc_value, 1.0 / self.loc_bins)
        return [xs[0], ys[0], xs[1], ys[1]]

    def decode_segment(self, idx: Sequence[int]) -> list[float]:
        """Two time bins -> a non-empty segment (seconds), in the same way as ``decode_box``."""
        a, b = idx
        return list(self._span(min(a, b), max(a, b), self.time_value, self.time_step))

    @staticmethod
    def _span(lo: int, hi: int, centre, width: float) -> tuple[float, float]:
        if lo == hi:
            c = centre(lo)
            return c - width / 2, c + width / 2
        return centre(lo), centre(hi)

    # -- text --------------------------------------------------------------------------------------------------

    def encode_text(self, display_text: str) -> str:
        """Replace every display box / segment in ``display_text`` by its tokens; the rest is kept as written."""

        def sub(m: re.Match) -> str:
            got = _read_group(m.group(0))
            if got is None:
                return m.group(0)
            return self.box_tokens(got[1]) if got[0] == "box" else self.segment_tokens(got[1])

        return _DISPLAY.sub(sub, display_text)

    def encode_prompt(self, prompt: str) -> str:
        """A prompt as the LM reads it when ``LMConfig.prompt_time_tokens`` is on: every time in seconds ("at 2.50
        seconds") becomes its time token ("at <t_20> seconds"), so that a claimed time and the times of an answer
        are the same tokens; display groups become tokens as in ``encode_text``. The rest is kept as written."""
        text = self.encode_text(prompt)
        return _PROMPT_TIME.sub(lambda m: f"<t_{self.time_index(float(m.group(1)))}>", text)

    def _run(self, run: str, n: int, group: int) -> list[list[int]]:
        """Token run -> groups of ``group`` valid indices; an out-of-range token breaks the run, leftovers drop."""
        out: list[list[int]] = []
        cur: list[int] = []
        for m in _TOKEN_INDEX.finditer(run):
            i = int(m.group(1))
            if i >= n:
                cur = []
                continue
            cur.append(i)
            if len(cur) == group:
                out.append(cur)
                cur = []
        return out

    def _boxes(self, run: str) -> list[list[float]]:
        return [self.decode_box(g) for g in self._run(run, self.loc_bins, 4)]

    def _segments(self, run: str) -> list[list[float]]:
        return [self.decode_segment(g) for g in self._run(run, self.time_bins, 2)]

    def decode_text(self, model_text: str) -> str:
        """Replace every run of location / time tokens by display boxes / segments (``", "``-joined); incomplete
        groups and out-of-range tokens are removed. Display groups already in the text are kept. Never raises."""
        if not isinstance(model_text, str):
            return ""

        def sub(m: re.Match) -> str:
            if m.group("loc") is not None:
                return format_boxes(self._boxes(m.group(0)))
            if m.group("t") is not None:
                return format_segments(self._segments(m.group(0)))
            return m.group(0)

        return _SCAN.sub(sub, model_text)

    def parse(self, text: str) -> Parsed:
        """Boxes and segments of a model-form, display-form or mixed text, in order of appearance. Never raises.

        Token boxes come back at full precision (bin centres), display ones as written.
        """
        out = Parsed()
        if not isinstance(text, str):
            return out
        for m in _SCAN.finditer(text):
            if m.group("loc") is not None:
                out.boxes.extend(self._boxes(m.group(0)))
            elif m.group("t") is not None:
                out.segments.extend(self._segments(m.group(0)))
            else:
                got = _read_group(m.group(0))
                if got is not None:
                    (out.boxes if got[0] == "box" else out.segments).append(got[1])
        return out


_VERDICT = re.compile(r"\b(true|yes|correct|false|no|incorrect|wrong)\b")


def truth_of(text: str) -> bool | None:
    """The verdict of a yes/no or true/false answer: its last verdict word ("The bell is on the left side, so
    false." -> False; evidence comes before the verdict), None when it has none."""
    words = _VERDICT.findall(text.strip().lower()) if isinstance(text, str) else []
    if not words:
        return None
    return words[-1] in ("true", "yes", "correct")
