"""Datasets: records (from files or straight from the synthetic world) -> model-ready items -> batches.

    records = read_any("data/vggss.json")                       # avllm.readers, re-exported here
    ds = AVDataset(records, tasks=("ground", "avqa"), num_frames=4, image_size=128)
    batch = collate([ds[0], ds[1]], text_encoder=lm.text_encoder)

    gen = GeneratedDataset(lambda i: synth.generate(i, ...), length=10_000)   # no disk at all

Every dataset flattens (record, text sample) pairs into items and builds them with ``make_item``, whose keys are
listed there. The time window of an item is ``[0, audio_seconds]`` of the clip: frames are taken from it, and the
audio is cropped or zero-padded to it; segments stay in seconds from the clip's start.

Text contract with the language model: items carry ``prompt`` and ``answer`` in display form (boxes
``[0.12, 0.34, 0.56, 0.78]``, segments ``[1.25, 2.50]``). ``collate(items, text_encoder)`` calls
``text_encoder(prompts, answers)``, which owns tokenisation, the conversion to location tokens
(``avllm.textformat.GroundingCodec.encode_text``) and the labels: it returns ``input_ids``, ``attention_mask`` and
``labels`` (B, L) with -100 at every position that is not part of the answer (prompt, placeholders, padding).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .readers import (
    DataError,
    check_media,
    media_paths,
    read_any,
    read_avsbench,
    read_flickr,
    read_instruct,
    read_manifest,
    read_musicavqa,
    read_vggss,
    write_manifest,
)
from .metrics.grounding import interval_union
from .record import TASKS, Record, TextSample
from .textformat import parse_boxes, parse_segments, truth_of

__all__ = [
    "DataError",
    "AVDataset",
    "GeneratedDataset",
    "make_item",
    "class_tags",
    "collate",
    "rasterize_boxes",
    "select_frames",
    "check_media",
    "media_paths",
    "read_any",
    "read_avsbench",
    "read_flickr",
    "read_instruct",
    "read_manifest",
    "read_musicavqa",
    "read_vggss",
    "write_manifest",
]

FrameMode = Literal["clip", "key"]


# ----------------------------------------------------------------------------------------------------------------
# Pieces of an item


def select_frames(
    frame_times: np.ndarray, num_frames: int, key_time: float, span: float, mode: FrameMode = "clip"
) -> tuple[np.ndarray, np.ndarray, int]:
    """Pick ``num_frames`` of the frames at ``frame_times`` (T0,) seconds.

    ``mode="clip"``: the frames nearest to ``num_frames`` times evenly spaced over ``[0, span]`` (bin centres),
    the one nearest the key time replaced by the key frame, so the targets' frame is always shown.
    ``mode="key"``: consecutive frames centred on the key frame. A single still frame is repeated and given the
    evenly spaced times (the image stands for the whole window).
    Returns ``(indices (T,) int, times (T,) float32 seconds, key_index)``: the key frame's position in the picks.
    """
    ft = np.asarray(frame_times, dtype=np.float64).reshape(-1)
    t0 = ft.shape[0]
    if t0 == 0:
        raise ValueError("no frames to select from")
    targets = (np.arange(num_frames) + 0.5) * (max(span, 1e-6) / num_frames)  # (T,)
    key = int(np.argmin(np.abs(ft - key_time)))
    if t0 == 1:
        slot = int(np.argmin(np.abs(targets - key_time)))
        return np.zeros(num_frames, dtype=np.int64), targets.astype(np.float32), slot
    if mode == "key":
        start = min(max(key - num_frames // 2, 0), max(t0 - num_frames, 0))
        idx = np.minimum(start + np.arange(num_frames), t0 - 1)
    elif mode == "clip":
        idx = np.abs(ft[None, :] - targets[:, None]).argmin(axis=1)  # (T,)
        if key not in idx:
            idx[int(np.argmin(np.abs(targets - key_time)))] = key
        idx = np.sort(idx)
    else:
        raise ValueError(f"frame mode must be 'clip' or 'key', got {mode!r}")
    return idx.astype(np.int64), ft[idx].astype(np.float32), int(np.flatnonzero(idx == key)[0])


def _mono(audio: Any) -> np.ndarray:
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 2:  # (S, C) or (C, S): average the shorter axis
        a = a.mean(axis=int(np.argmin(a.shape)))
    return a.reshape(-1)


def _resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Linear-interpolation resampling (enough for in-memory sources; files are resampled by avllm.media)."""
    if rate == target or audio.size == 0:
        return audio
    n = int(round(audio.size * target / rate))
    return np.interp(np.arange(n) * (rate / target), np.arange(audio.size), audio).astype(np.float32)


def rasterize_boxes(boxes: Sequence[Sequence[float]], size: int, rule: str = "union") -> torch.Tensor:
    """Normalised boxes -> (size, size) float32 map in [0, 1]. A pixel is inside a box when its centre is (a box too
    small to hold a centre marks the pixel under its own centre). ``rule="union"``: 1 inside any box;
    ``"flickr"``: each box adds 1, the sum is halved and clipped to 1 (annotator consensus)."""
    out = torch.zeros(size, size)
    c = (torch.arange(size) + 0.5) / size  # pixel centres
    for x0, y0, x1, y1 in boxes:
        inside = ((c >= y0) & (c <= y1))[:, None] & ((c >= x0) & (c <= x1))[None, :]  # (H, W)
        if not inside.any():
            cy = min(int((y0 + y1) / 2 * size), size - 1)
            cx = min(int((x0 + x1) / 2 * size), size - 1)
            inside[cy, cx] = True
        out += inside.float()
    return (out / 2).clamp(max=1.0) if rule == "flickr" else out.clamp(max=1.0)


def _load_mask(path: str, root: Path | None, size: int) -> torch.Tensor:
    from PIL import Image

    p = Path(path) if root is None or Path(path).is_absolute() else root / path
    try:
        with Image.open(p) as im:
            m = np.asarray(im.convert("L").resize((size, size), Image.NEAREST))
    except FileNotFoundError:
        raise DataError(f"mask file not found: {p}") from None
    except OSError as e:
        raise DataError(f"cannot read mask {p}: {e}") from None
    return torch.from_numpy((m > 0).astype(np.float32))


def _target_boxes(record: Record, text: TextSample | None) -> list[list[float]]:
    if text is not None:
        if "boxes" in text.meta:
            return [list(b) for b in text.meta["boxes"]]
        if "box" in text.meta:
            return [list(text.meta["box"])]
        if text.task == "ground" and (got := parse_boxes(text.answer)):
            return got
    return [list(b) for b in record.ssl_boxes]


def _target_segments(text: TextSample | None) -> list[list[float]]:
    if text is None:
        return []
    if "segments" in text.meta:
        return [list(s) for s in text.meta["segments"]]
    if "segment" in text.meta:
        return [list(text.meta["segment"])]
    return parse_segments(text.answer) if text.task == "temporal" else []


def _single_source(record: Record) -> tuple[list[float], list[list[float]]] | None:
    """Box and segments of the record's one sounding visible object (None when it has none or several)."""
    src = [o for o in record.objects if o.sounding]
    if len(src) != 1:
        return None
    return list(src[0].box), [list(s) for s in src[0].segments]


def _label(text: TextSample | None) -> int:
    if text is None or text.task != "factcheck":
        return -1
    if "label" in text.meta:
        return int(bool(text.meta["label"]))
    said = truth_of(text.answer)  # the last verdict word: evidence comes first
    return -1 if said is None else int(said)


def make_item(
    frames: Any,
    frame_times: Any,
    audio: Any,
    sample_rate: int,
    record: Record,
    text: TextSample | None,
    *,
    num_frames: int = 4,
    image_size: int = 128,
    target_rate: int = 48000,
    audio_seconds: float = 5.0,
    frame_mode: FrameMode = "clip",
    answers: Sequence[str] | None = None,
    root: str | Path | None = None,
    ssl_mask: Any = None,
    tag_classes: Sequence[str] | None = None,
    extras: Sequence[TextSample] = (),
) -> dict[str, Any]:
    """One model-ready item from decoded media, its record and one of its text samples (None: no text), plus
    ``extras``: more of the record's text samples that only the LM reads, after the same AV prefix.

    Inputs: ``frames`` (T0, H, W, 3) uint8 RGB, ``frame_times`` (T0,) seconds, ``audio`` (S,) float mono at
    ``sample_rate``; ``ssl_mask`` optionally the key frame's SSL target (H, W) bool, in memory (the synthetic
    world's). Frames are squashed (not cropped) to ``image_size`` so normalised boxes stay valid.
    Returns a dict:

    - ``frames`` (T, 3, S, S) float32 in [0, 1], T = ``num_frames`` (see ``select_frames``); ``frame_times`` (T,)
      float32 seconds; ``key_index`` int, the position of the key frame (the one boxes and masks refer to);
    - ``audio`` (N,) float32, N = ``audio_seconds * target_rate``, zero-padded; ``audio_len`` int real samples;
    - ``prompt``, ``answer`` (display form), ``task`` ("" without text), ``id``;
    - ``boxes`` (n, 4) float32 normalised: the text's target boxes (``meta["boxes"]``/``["box"]``, else a grounding
      answer's boxes), else the record's ``ssl_boxes``;
    - ``box_mask`` (S, S) float32 in [0, 1]: the key-frame SSL target, from the ``ssl_mask`` array, else the
      record's ``ssl_mask`` file, else rasterised from ``ssl_boxes`` (rule ``meta["gt_rule"]``, union by default); zeros when the record has neither;
    - ``segments`` (m, 2) float32 seconds: ``meta["segments"]``, or a temporal answer's segments;
    - ``answer_index`` int: the AVQA answer's index in ``answers`` (case-insensitive), -1 otherwise;
    - ``label`` int: fact-check truth (``meta["label"]``, else a yes/no answer) 1 / 0, -1 otherwise;
    - ``has_source`` int, ``source_box`` (4,), ``source_segments`` (m, 2): when the record has exactly one sounding
      visible object, its key-frame box and its segments (the proposal heads' targets on every task), else 0 /
      zeros / empty;
    - ``seen_tags``, ``heard_tags`` (C,) float32 in {0, 1}, C = ``len(tag_classes)``: which of ``tag_classes`` are
      visible objects / make sound (sounding objects and off-screen sounds; speech is not a class), and
      ``tags_valid`` 1 when every category of the record is one of ``tag_classes`` (else the tags are unknown, 0);
      ``sound_tags`` (C,), ``class_centre`` (C, 2), ``class_segments`` (C, 4, 2): see ``class_tags``;
    - ``extra_prompt``, ``extra_answer``, ``extra_task``: lists, one entry per text of ``extras`` (empty without).
    """
    fr = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if fr.ndim != 4 or fr.shape[-1] != 3 or fr.shape[0] == 0:
        raise DataError(f"record {record.id!r}: frames must be (T, H, W, 3) with T >= 1, got {fr.shape}")
    wav = _resample(_mono(audio), int(sample_rate), target_rate)
    n = int(round(audio_seconds * target_rate))
    span = min(audio_seconds, record.duration) if record.duration > 0 else audio_seconds
    idx, times, key_index = select_frames(np.asarray(frame_times), num_frames, record.key_time, span, frame_mode)

    x = torch.from_numpy(np.ascontiguousarray(fr[idx])).permute(0, 3, 1, 2).float()  # (T, 3, H, W)
    if fr.dtype == np.uint8:
        x = x / 255.0
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    x = x.clamp(0.0, 1.0)  # (T, 3, S, S)

    audio_out = torch.zeros(n)
    audio_len = min(n, wav.size)
    audio_out[:audio_len] = torch.from_numpy(wav[:audio_len])

    base = Path(root) if root is not None else None
    if ssl_mask is not None:
        m = torch.as_tensor(np.asarray(ssl_mask, dtype=np.float32))[None, None]  # (1, 1, H, W)
        box_mask = (F.interpolate(m, size=(image_size, image_size), mode="nearest")[0, 0] > 0).float()
    elif record.ssl_mask:
        box_mask = _load_mask(record.ssl_mask, base, image_size)
    else:
        box_mask = rasterize_boxes(record.ssl_boxes, image_size, record.meta.get("gt_rule", "union"))

    single = _single_source(record)
    answer_index = -1
    if answers is not None and text is not None and text.task == "avqa":
        lookup = {a.strip().lower(): i for i, a in reversed(list(enumerate(answers)))}
        answer_index = lookup.get(text.answer.strip().lower(), -1)

    return {
        "frames": x,
        "frame_times": torch.from_numpy(times),
        "key_index": key_index,
        "audio": audio_out,
        "audio_len": audio_len,
        "prompt": text.prompt if text else "",
        "answer": text.answer if text else "",
        "task": text.task if text else "",
        "boxes": torch.tensor(_target_boxes(record, text), dtype=torch.float32).reshape(-1, 4),
        "box_mask": box_mask,
        "segments": torch.tensor(_target_segments(text), dtype=torch.float32).reshape(-1, 2),
        "has_source": int(single is not None),
        "source_box": torch.tensor(single[0] if single else [0.0] * 4, dtype=torch.float32),
        "source_segments": torch.tensor(single[1] if single else [], dtype=torch.float32).reshape(-1, 2),
        "answer_index": answer_index,
        "label": _label(text),
        "id": record.id,
        **class_tags(record, tag_classes),
        "extra_prompt": [t.prompt for t in extras],
        "extra_answer": [t.answer for t in extras],
        "extra_task": [t.task for t in extras],
    }


def pick_extras(texts: Sequence[TextSample], chosen: TextSample | None, n: int, key: str) -> list[TextSample]:
    """Up to ``n`` of ``texts`` other than ``chosen``, drawn without replacement and deterministically from ``key``
    (in the order drawn). ``n`` 0 gives none, so an item without extras is the item it always was."""
    if n <= 0:
        return []
    others = [t for t in texts if t is not chosen]
    return random.Random(key).sample(others, min(n, len(others)))


CLASS_SEGMENTS = 4  # segments kept per class in ``class_segments`` (a synthetic source has at most two)


def class_tags(record: Record, classes: Sequence[str] | None) -> dict[str, Any]:
    """Multi-hot seen / heard tags over ``classes`` and whether the record's labels are complete for them, and per
    class: whether a visible object of it sounds (``sound_tags``), its key-frame box centre (``class_centre``,
    mean over its objects, zeros where unseen) and its sounding segments (``class_segments`` (C, 4, 2) seconds,
    merged over its sources, -1 rows pad)."""
    classes = list(classes or [])
    index = {c: i for i, c in enumerate(classes)}
    n = len(classes)
    seen, heard, sound = torch.zeros(n), torch.zeros(n), torch.zeros(n)
    centre = torch.zeros(n, 2)
    segs: list[list[list[float]]] = [[] for _ in range(n)]
    named = [o.category for o in record.objects] + [s.category for s in record.sounds if s.category != "speech"]
    valid = bool(classes) and all(c in index for c in named)
    if valid:
        count = torch.zeros(n)
        for o in record.objects:
            i = index[o.category]
            seen[i] = 1.0
            x0, y0, x1, y1 = o.box
            centre[i] += torch.tensor([(x0 + x1) / 2, (y0 + y1) / 2])
            count[i] += 1
            if o.sounding:
                heard[i] = sound[i] = 1.0
                segs[i] += o.segments
        centre = centre / count.clamp_min(1)[:, None]
        for snd in record.sounds:
            if snd.category != "speech":
                heard[index[snd.category]] = 1.0
                segs[index[snd.category]] += snd.segments
    seg_t = torch.full((n, CLASS_SEGMENTS, 2), -1.0)
    for i, rows in enumerate(segs):
        rows = interval_union(rows)[:CLASS_SEGMENTS]
        if rows:
            seg_t[i, : len(rows)] = torch.tensor(rows)
    return {"seen_tags": seen, "heard_tags": heard, "sound_tags": sound, "class_centre": centre,
            "class_segments": seg_t, "tags_valid": int(valid)}  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# Datasets


def _item_opts(*, num_frames: int, image_size: int, sample_rate: int, audio_seconds: float, frame_mode: FrameMode,
               answers: Sequence[str] | None, root: str | Path | None,
               tag_classes: Sequence[str] | None = None) -> dict[str, Any]:
    """The ``make_item`` options shared by both datasets, checked."""
    if num_frames < 1 or image_size < 1 or sample_rate < 1 or audio_seconds <= 0:
        raise ValueError("num_frames, image_size, sample_rate and audio_seconds must be positive")
    if frame_mode not in ("clip", "key"):
        raise ValueError(f"frame_mode must be 'clip' or 'key', got {frame_mode!r}")
    return dict(num_frames=num_frames, image_size=image_size, target_rate=sample_rate, audio_seconds=audio_seconds,
                frame_mode=frame_mode, answers=list(answers) if answers is not None else None, root=root,
                tag_classes=list(tag_classes) if tag_classes is not None else None)


def _check_tasks(tasks: Sequence[str]) -> tuple[str, ...]:
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        raise ValueError(f"unknown task(s) {bad}; known: {', '.join(TASKS)}")
    return tuple(tasks)


class AVDataset(Dataset):
    """Items from records whose media are files (any reader's output, or a manifest).

    Each item is one (record, text sample) pair whose task is in ``tasks``; a record with no such sample gives
    one text-less item (task "") when ``textless`` is true, so SSL-only sets (VGG-SS, Flickr) still load.
    Relative media paths are resolved against ``root`` (a manifest's folder). Media are decoded by ``load_fn``
    (default ``avllm.media.load_clip``) when the item is built; a missing file raises ``DataError`` naming it.
    AVSBench-style records (``meta["frames"]``) load their frames as images and only the audio through
    ``load_fn``.
    """

    def __init__(
        self,
        records: Sequence[Record],
        *,
        root: str | Path | None = None,
        tasks: Sequence[str] = TASKS,
        num_frames: int = 4,
        image_size: int = 128,
        sample_rate: int = 48000,
        audio_seconds: float = 5.0,
        frame_mode: FrameMode = "clip",
        answers: Sequence[str] | None = None,
        tag_classes: Sequence[str] | None = None,
        textless: bool = True,
        load_fn: Callable[..., Any] | None = None,
        extra_texts: int = 0,
    ) -> None:
        if extra_texts < 0:
            raise ValueError("extra_texts must be >= 0")
        self.extra_texts = extra_texts
        self.records = list(records)
        self.root = Path(root) if root is not None else None
        self.tasks = _check_tasks(tasks)
        self.sample_rate = sample_rate
        self.audio_seconds = audio_seconds
        self.load_fn = load_fn
        self._opts = _item_opts(num_frames=num_frames, image_size=image_size, sample_rate=sample_rate,
                                audio_seconds=audio_seconds, frame_mode=frame_mode, answers=answers, root=root,
                                tag_classes=tag_classes)
        self.index: list[tuple[int, int]] = []  # (record, text) pairs; text -1 = none
        for r, rec in enumerate(self.records):
            picked = [j for j, t in enumerate(rec.texts) if t.task in self.tasks]
            self.index += [(r, j) for j in picked] or ([(r, -1)] if textless else [])

    def __len__(self) -> int:
        return len(self.index)

    def _path(self, p: str) -> str:
        q = Path(p)
        return str(q if q.is_absolute() or self.root is None else self.root / q)

    def _load(self, rec: Record) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """(frames (T0, H, W, 3) uint8, times (T0,), audio (S,), sample_rate) of a record."""
        check_media(rec, self.root)
        load = self.load_fn
        if load is None:
            from .media import load_clip as load
        kw = dict(sample_rate=self.sample_rate, max_seconds=max(self.audio_seconds, rec.key_time + 1.0))
        try:
            if rec.meta.get("frames"):
                frames, times = self._frames(rec)
                if rec.audio:
                    clip = load(audio=self._path(rec.audio), **kw)
                    return frames, times, clip.audio, clip.sample_rate
                return frames, times, np.zeros(0, np.float32), self.sample_rate
            if rec.video:
                clip = load(self._path(rec.video), **kw)
            elif rec.image:
                clip = load(image=self._path(rec.image), audio=self._path(rec.audio) if rec.audio else None, **kw)
            else:
                raise DataError(f"record {rec.id!r} has no video and no image")
        except DataError:
            raise
        except Exception as e:  # MediaError and friends: name the record as well as the file
            raise DataError(f"record {rec.id!r}: cannot load its media: {e}") from e
        return clip.frames, clip.times, clip.audio, clip.sample_rate

    def _frames(self, rec: Record) -> tuple[np.ndarray, np.ndarray]:
        from PIL import Image

        imgs = []
        for p in rec.meta["frames"]:
            with Image.open(self._path(p)) as im:
                im = im.convert("RGB")
                if imgs and im.size != (imgs[0].shape[1], imgs[0].shape[0]):
                    im = im.resize((imgs[0].shape[1], imgs[0].shape[0]), Image.BILINEAR)
                imgs.append(np.asarray(im))
        times = rec.meta.get("frame_times") or [float(k) for k in range(len(imgs))]
        return np.stack(imgs), np.asarray(times, dtype=np.float64)  # (T0, H, W, 3), (T0,)

    def __getitem__(self, i: int) -> dict[str, Any]:
        r, j = self.index[i]
        rec = self.records[r]
        frames, times, audio, rate = self._load(rec)
        text = rec.texts[j] if j >= 0 else None
        texts = [t for t in rec.texts if t.task in self.tasks]
        extras = pick_extras(texts, text, self.extra_texts, f"extra:{i}")
        return make_item(frames, times, audio, rate, rec, text, extras=extras, **self._opts)


class GeneratedDataset(Dataset):
    """Items straight from an in-memory generator (the synthetic world), with no disk.

    ``fn(index)`` returns either an object with ``.frames`` (T, H, W, 3) uint8, ``.audio`` (S,), ``.sample_rate``,
    ``.fps`` and ``.record`` (optionally ``.times`` (T,) seconds and ``.ssl_mask`` (H, W) bool, as
    ``avllm.synth.generate`` gives), or a tuple ``(frames, audio, record)`` whose audio is at
    ``sample_rate`` and whose frames are spread evenly over ``record.duration``. Item ``i`` comes from clip
    ``i // texts_per_clip``, with a text sample of a task in ``tasks`` drawn deterministically from ``(seed, i)``.
    """

    def __init__(
        self,
        fn: Callable[[int], Any],
        length: int,
        *,
        tasks: Sequence[str] = TASKS,
        texts_per_clip: int = 1,
        seed: int = 0,
        num_frames: int = 4,
        image_size: int = 128,
        sample_rate: int = 48000,
        audio_seconds: float = 5.0,
        frame_mode: FrameMode = "clip",
        answers: Sequence[str] | None = None,
        tag_classes: Sequence[str] | None = None,
        extra_texts: int = 0,
    ) -> None:
        if length < 0 or texts_per_clip < 1 or extra_texts < 0:
            raise ValueError("length must be >= 0, texts_per_clip >= 1 and extra_texts >= 0")
        self.fn, self.length, self.texts_per_clip, self.seed = fn, length, texts_per_clip, seed
        self.extra_texts = extra_texts
        self.tasks = _check_tasks(tasks)
        self.sample_rate = sample_rate
        self._opts = _item_opts(num_frames=num_frames, image_size=image_size, sample_rate=sample_rate,
                                audio_seconds=audio_seconds, frame_mode=frame_mode, answers=answers, root=None,
                                tag_classes=tag_classes)

    def __len__(self) -> int:
        return self.length * self.texts_per_clip

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        out = self.fn(i // self.texts_per_clip)
        if isinstance(out, tuple):
            frames, audio, rec = out
            rate = self.sample_rate
            t0 = len(frames)
            times = np.arange(t0) * (rec.duration / t0 if rec.duration > 0 else 1.0)
        else:
            frames, audio, rate, rec = out.frames, out.audio, out.sample_rate, out.record
            times = getattr(out, "times", None)
            if times is None:
                times = np.arange(len(frames)) / float(out.fps)
        texts = [t for t in rec.texts if t.task in self.tasks]
        text = random.Random(self.seed * 1_000_003 + i).choice(texts) if texts else None
        extras = pick_extras(texts, text, self.extra_texts, f"extra:{self.seed}:{i}")
        mask = None if isinstance(out, tuple) else getattr(out, "ssl_mask", None)
        return make_item(frames, times, audio, rate, rec, text, ssl_mask=mask, extras=extras, **self._opts)


# ----------------------------------------------------------------------------------------------------------------
# Batches

_STACK = ("frames", "frame_times", "box_mask", "source_box", "seen_tags", "heard_tags", "sound_tags", "class_centre",
          "class_segments")
_LONG = ("key_index", "audio_len", "answer_index", "label", "has_source", "tags_valid")
_LISTS = ("boxes", "segments", "source_segments", "prompt", "answer", "task", "id")
_EXTRAS = ("extra_prompt", "extra_answer", "extra_task")


def collate(items: Sequence[dict[str, Any]], text_encoder: Callable[..., dict] | None = None) -> dict[str, Any]:
    """Batch items: ``frames`` (B, T, 3, S, S), ``frame_times`` (B, T), ``box_mask`` (B, S, S) stacked; ``audio``
    (B, N) zero-padded to the longest; ``key_index``, ``audio_len``, ``answer_index``, ``label`` (B,) int64;
    ``boxes`` / ``segments`` lists of (n_i, 4) / (m_i, 2) tensors; ``prompt``, ``answer``, ``task``, ``id`` lists.
    Items with extra texts add ``extra_prompt``, ``extra_answer``, ``extra_task`` (flat lists of E) and
    ``extra_clip`` (E,) long, the batch row of each one's clip.

    With ``text_encoder``, its ``text_encoder(prompts, answers)`` dict (``input_ids``, ``attention_mask``,
    ``labels`` with -100 where ignored) is added; a key that clashes with the batch's is an error.
    """
    if not items:
        raise ValueError("collate needs at least one item")
    batch: dict[str, Any] = {k: torch.stack([it[k] for it in items]) for k in _STACK}
    n = max(it["audio"].shape[0] for it in items)
    batch["audio"] = torch.stack([F.pad(it["audio"], (0, n - it["audio"].shape[0])) for it in items])  # (B, N)
    batch.update({k: torch.tensor([int(it[k]) for it in items], dtype=torch.long) for k in _LONG})
    batch.update({k: [it[k] for it in items] for k in _LISTS})
    if any(it.get("extra_prompt") for it in items):  # more texts per clip, flat, with the clip each belongs to
        for k in _EXTRAS:
            batch[k] = [x for it in items for x in it[k]]
        batch["extra_clip"] = torch.tensor([i for i, it in enumerate(items) for _ in it["extra_prompt"]],
                                           dtype=torch.long)  # (E,)
    if text_encoder is not None:
        enc = dict(text_encoder(batch["prompt"], batch["answer"]))
        clash = sorted(set(enc) & set(batch))
        if clash:
            raise ValueError(f"text_encoder returned keys that the batch already has: {clash}")
        batch.update(enc)
    return batch
