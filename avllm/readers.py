"""Readers that turn the dataset formats people bring into ``Record``s, and our own JSONL manifest.

    records = read_any("data/Flickr-SoundNet")          # dispatch by what the path holds
    records = read_vggss("vggss.json")                  # VGG-SS: JSON of {"file", "bbox"} + frames/ + audio/
    records = read_flickr("Flickr-SoundNet")            # Flickr-SoundNet: Annotations/*.xml + frames/ + audio/
    records = read_avsbench("s4_data")                  # AVSBench S4: s4_meta_data.csv + frames, wavs, masks
    records = read_musicavqa("avqa-test.json")          # MUSIC-AVQA questions, grouped by video
    records = read_instruct("meerkat_train.json")       # MEERKAT / AVFIT-style conversations
    records = read_manifest("synth/train.jsonl")        # one Record.to_json() per line
    write_manifest(records, "mine.jsonl")

Paths: the dataset readers and ``read_any`` give absolute media paths. ``read_manifest`` keeps them as written
(relative to the manifest's folder) unless ``resolve_paths=True``. A media file that is not there raises
``DataError`` naming it: at once with ``check_files=True``, else when the item is loaded (``avllm.data``).

SSL ground truth: VGG-SS and Flickr boxes go to ``ssl_boxes``; ``meta["gt_rule"]`` says how the metric turns them
into a ground-truth map: ``"union"`` (VGG-SS: a pixel is positive inside any box) or ``"flickr"`` (each box adds 1,
the sum is halved and clipped to 1: annotator consensus). ``meta["annotators"]`` gives each box's annotator.
"""

from __future__ import annotations

import csv
import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from .record import ObjectAnn, Record, TextSample

__all__ = [
    "DataError",
    "media_paths",
    "check_media",
    "read_manifest",
    "write_manifest",
    "read_vggss",
    "read_flickr",
    "read_avsbench",
    "read_musicavqa",
    "read_instruct",
    "read_any",
    "AVQA_KINDS",
]

AVQA_KINDS = ("existential", "counting", "location", "temporal", "comparative")
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
AUDIO_EXTS = (".wav", ".flac", ".mp3", ".ogg", ".m4a")
VIDEO_EXTS = (".mp4", ".mkv", ".webm", ".avi", ".mov")


class DataError(ValueError):
    """A dataset file is malformed or refers to a missing file; the message names the file (and line)."""


# ----------------------------------------------------------------------------------------------------------------
# Paths


def media_paths(record: Record) -> list[str]:
    """Every file a record refers to: video, image, audio, masks, extra frames (``meta["frames"]``)."""
    paths = [p for p in (record.video, record.image, record.audio, record.ssl_mask) if p]
    paths += [o.mask for o in record.objects if o.mask]
    paths += list(record.frame_masks) + list(record.meta.get("frames", []))
    return paths


def _is_file(p: Path) -> bool:
    """``p.is_file()``, False rather than OSError for a name the file system refuses (too long, say)."""
    try:
        return p.is_file()
    except OSError:
        return False


def _is_dir(p: Path) -> bool:
    """``p.is_dir()``, False rather than OSError for a name the file system refuses (too long, say)."""
    try:
        return p.is_dir()
    except OSError:
        return False


def _resolve(path: str, root: Path | None) -> Path:
    p = Path(path)
    return p if p.is_absolute() or root is None else root / p


def check_media(record: Record, root: str | Path | None = None, *, where: str = "") -> None:
    """Raise ``DataError`` naming the first file of ``record`` that does not exist (relative paths from ``root``)."""
    base = Path(root) if root is not None else None
    for p in media_paths(record):
        full = _resolve(p, base)
        if not _is_file(full):
            at = f" ({where})" if where else ""
            raise DataError(f"media file not found: {full} (record {record.id!r}{at})")


def _absolute(record: Record, root: Path) -> Record:
    """Make every relative media path of ``record`` absolute against ``root`` (in place; returns it)."""

    def fix(p: str | None) -> str | None:
        return None if p is None else str(_resolve(p, root))

    record.video, record.image, record.audio, record.ssl_mask = (
        fix(record.video), fix(record.image), fix(record.audio), fix(record.ssl_mask))
    for o in record.objects:
        o.mask = fix(o.mask)
    record.frame_masks = [str(_resolve(p, root)) for p in record.frame_masks]
    if "frames" in record.meta:
        record.meta["frames"] = [str(_resolve(p, root)) for p in record.meta["frames"]]
    return record


def _find(root: Path, dirs: Sequence[str], stem: str, exts: Sequence[str]) -> str:
    """``root/<dir>/<stem><ext>`` for the first dir and extension that exists; when none does, the expected path
    in the first dir that exists (so a later check names a sensible file)."""
    for d in dirs:
        for e in exts:
            p = root / d / f"{stem}{e}"
            if _is_file(p):
                return str(p.resolve())
    for d in dirs:
        if _is_dir(root / d):
            return str((root / d / f"{stem}{exts[0]}").resolve())
    return str((root / f"{stem}{exts[0]}").resolve())


def _media_name(value: Any, where: str) -> str:
    """``str(value)`` for a file name or path taken from a dataset file; DataError (naming ``where``) when it holds
    a NUL character, which no file name can."""
    name = str(value)
    if "\0" in name:
        raise DataError(f"{where}: the file name {name!r} contains a NUL character")
    return name


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    except OSError as e:  # a folder, no permission
        raise DataError(f"cannot read {path}: {e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not valid JSON: {e}") from None
    except RecursionError:
        raise DataError(f"{path} is not valid JSON: nested too deeply") from None


def _finish(records: list[Record], check: bool, where: Path) -> list[Record]:
    if check:
        for r in records:
            check_media(r, where=str(where))
    return records


# ----------------------------------------------------------------------------------------------------------------
# Our manifest


def read_manifest(path: str | Path, *, check_files: bool = False, resolve_paths: bool = False) -> list[Record]:
    """Records from a JSONL manifest (one ``Record.to_json()`` per line; blank lines are skipped).

    A bad line raises ``DataError`` naming the file and the line number. Media paths are relative to the
    manifest's folder; ``resolve_paths=True`` makes them absolute. ``check_files=True`` checks every media file now.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"manifest not found: {path}") from None
    except OSError as e:  # a folder, no permission
        raise DataError(f"cannot read manifest {path}: {e}") from None
    records = []
    # Lines end at "\n" only: JSON strings may hold U+0085, U+2028 and U+2029 raw, which str.splitlines() splits at.
    for n, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"{path}:{n}: not UTF-8 text: {e}") from None
        if not line.strip():
            continue
        try:
            rec = Record.from_json(line)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise DataError(f"{path}:{n}: bad record: {e}") from None
        except RecursionError:
            raise DataError(f"{path}:{n}: bad record: JSON nested too deeply") from None
        if check_files:
            check_media(rec, path.parent, where=f"{path}:{n}")
        if resolve_paths:
            _absolute(rec, path.parent.resolve())
        records.append(rec)
    return records


def write_manifest(records: Iterable[Record], path: str | Path) -> Path:
    """Write records as JSONL (one ``to_json()`` per line); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(r.to_json() + "\n" for r in records), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------------------------
# VGG-SS and Flickr-SoundNet


def _norm_box(box: Sequence[float], w: float, h: float) -> list[float] | None:
    """Pixel or normalised box -> sorted normalised box clipped to [0, 1]; None when it is empty after clipping."""
    x0, y0, x1, y1 = (float(v) for v in box)
    x0, x1 = sorted((min(1.0, max(0.0, x0 / w)), min(1.0, max(0.0, x1 / w))))
    y0, y1 = sorted((min(1.0, max(0.0, y0 / h)), min(1.0, max(0.0, y1 / h))))
    return [x0, y0, x1, y1] if x1 > x0 and y1 > y0 else None


def read_vggss(
    annotations: str | Path,
    *,
    root: str | Path | None = None,
    box_units: Literal["auto", "normalised", "pixels"] = "auto",
    image_size: int = 224,
    split: str = "test",
    check_files: bool = False,
) -> list[Record]:
    """VGG-SS: a JSON list of ``{"file": id, "bbox": [[x0, y0, x1, y1], ...], "class": optional}``.

    Boxes are normalised (as in the public ``vggss.json``) or pixels of an ``image_size``-px square image.
    ``box_units="auto"`` decides per file: pixels when any coordinate exceeds 1.5, else normalised. Frames are
    ``<id>.jpg`` and audio ``<id>.wav`` in ``root`` (default: the JSON's folder) or its ``frames/`` and ``audio/``.
    Boxes are kept in ``ssl_boxes`` (one object per box when the class is known); ``meta["gt_rule"] = "union"``.
    """
    path = Path(annotations)
    data = _load_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: VGG-SS annotations must be a JSON list of {{'file', 'bbox'}} objects")
    base = Path(root) if root is not None else path.parent
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "file" not in item or not isinstance(item.get("bbox", []), list):
            raise DataError(f"{path}: entry {i} is not a {{'file', 'bbox'}} object: {str(item)[:120]}")
    try:
        coords = [float(v) for item in data for b in item.get("bbox", []) for v in b]
    except (TypeError, ValueError, OverflowError) as e:  # OverflowError: an integer too large for a float
        raise DataError(f"{path}: a box is not a list of numbers: {e}") from None
    units = box_units if box_units != "auto" else ("pixels" if coords and max(coords) > 1.5 else "normalised")
    scale = float(image_size) if units == "pixels" else 1.0
    records = []
    for i, item in enumerate(data):
        fid = _media_name(item["file"], f"{path}: entry {i}")
        boxes, dropped = [], 0
        for b in item.get("bbox", []):
            if len(b) != 4:
                raise DataError(f"{path}: entry {i} ({fid}) has a box of {len(b)} numbers, not 4")
            nb = _norm_box(b, scale, scale)
            if nb is None:
                dropped += 1
            else:
                boxes.append(nb)
        cls = item.get("class")
        objects = [ObjectAnn(category=str(cls), box=list(b), sounding=True) for b in boxes] if cls else []
        meta: dict[str, Any] = {"gt_rule": "union", "annotators": [0] * len(boxes), "box_units": units}
        if cls:
            meta["class"] = str(cls)
        if dropped:
            meta["dropped_boxes"] = dropped
        records.append(Record(
            id=fid, source="vggss", split=split, objects=objects, ssl_boxes=boxes, meta=meta,
            image=_find(base, ("", "frames", "images", "image"), fid, IMAGE_EXTS),
            audio=_find(base, ("", "audio", "audios"), fid, AUDIO_EXTS),
        ))
    return _finish(records, check_files, path)


def _xml_num(el: ET.Element | None) -> float | None:
    """The element's text as a finite number; None when absent, not a number, nan or infinite."""
    try:
        v = float(el.text) if el is not None and el.text is not None else None
    except ValueError:
        return None
    return v if v is not None and math.isfinite(v) else None


def _flickr_boxes(xml_path: Path) -> tuple[list[list[float]], list[int], tuple[float, float] | None]:
    """Pixel boxes, their annotator indices and the (width, height) named in the XML, if any."""
    try:
        tree = ET.parse(xml_path).getroot()
    except ET.ParseError as e:
        raise DataError(f"{xml_path} is not valid XML: {e}") from None
    size = tree.find("size")
    wh = None
    if size is not None:
        w, h = _xml_num(size.find("width")), _xml_num(size.find("height"))
        wh = (w, h) if w and h else None
    boxes, annotators = [], []
    objects = [o for o in tree if o.find("bndbox") is not None or o.find("bbox") is not None]
    if not objects:  # boxes nested elsewhere: one annotator per box
        objects = [b for b in tree.iter() if b.tag in ("bndbox", "bbox")]
    for k, obj in enumerate(objects):
        for bb in [obj] if obj.tag in ("bndbox", "bbox") else [*obj.iter("bndbox"), *obj.iter("bbox")]:
            tags = {c.tag.lower(): c for c in bb}
            vals = [_xml_num(tags.get(t)) for t in ("xmin", "ymin", "xmax", "ymax")]
            if any(v is None for v in vals):  # untagged: the last four numeric children, in x0 y0 x1 y1 order
                nums = [v for v in (_xml_num(c) for c in bb) if v is not None]
                vals = nums[-4:] if len(nums) >= 4 else [None] * 4
            if any(v is None for v in vals):
                raise DataError(f"{xml_path}: a box has no xmin/ymin/xmax/ymax numbers")
            boxes.append(vals)
            who = obj.find("annotator")
            annotators.append(int(_xml_num(who)) if _xml_num(who) is not None else k)
    return boxes, annotators, wh


def read_flickr(
    root: str | Path,
    *,
    image_size: int | None = None,
    split: str = "test",
    check_files: bool = False,
) -> list[Record]:
    """Flickr-SoundNet: one XML per clip in ``root/Annotations`` (or ``root``), ``<object><bndbox><xmin>...``
    (``<bbox>`` too, as in the public release), one object per annotator (usually 3).

    Pixel boxes are normalised by ``image_size`` when given, else by the XML's ``<size>``, else by 256 (the
    public release's frame size). All boxes go to ``ssl_boxes``; ``meta["annotators"]`` gives each box's
    annotator, ``meta["gt_rule"] = "flickr"`` (sum of boxes / 2, clipped to 1). Frames and audio are
    ``<id>.jpg`` / ``<id>.wav`` in ``root/frames``, ``root/audio`` (or ``root``).
    """
    root = Path(root)
    ann_dir = next((root / d for d in ("Annotations", "annotations", "") if (root / d).is_dir()
                    and any((root / d).glob("*.xml"))), None)
    if ann_dir is None:
        raise DataError(f"no Flickr-SoundNet XML annotations in {root} or {root / 'Annotations'}")
    records = []
    for xml_path in sorted(ann_dir.glob("*.xml")):
        fid = xml_path.stem
        pixel_boxes, who, wh = _flickr_boxes(xml_path)
        w, h = (float(image_size),) * 2 if image_size else wh or (256.0, 256.0)
        boxes, annotators = [], []
        for b, a in zip(pixel_boxes, who):
            nb = _norm_box(b, w, h)
            if nb is not None:
                boxes.append(nb)
                annotators.append(a)
        records.append(Record(
            id=fid, source="flickr", split=split, ssl_boxes=boxes, width=int(w), height=int(h),
            meta={"gt_rule": "flickr", "annotators": annotators},
            image=_find(root, ("frames", "images", ""), fid, IMAGE_EXTS),
            audio=_find(root, ("audio", "audios", ""), fid, AUDIO_EXTS),
        ))
    return _finish(records, check_files, root)


# ----------------------------------------------------------------------------------------------------------------
# AVSBench S4


def _frame_index(p: Path) -> int:
    m = re.search(r"_(\d+)$", p.stem)
    return int(m.group(1)) if m else -1


def _numbered(folder: Path, vid: str, exts: Sequence[str]) -> list[Path]:
    """Files ``<vid>_<k><ext>`` in ``folder`` (none when it does not exist)."""
    if not _is_dir(folder):
        return []
    return [p for p in folder.iterdir() if p.stem.startswith(vid + "_") and p.suffix.lower() in exts
            and _frame_index(p) >= 1]


def read_avsbench(
    root: str | Path,
    *,
    split: str | None = None,
    seconds_per_frame: float = 1.0,
    check_files: bool = False,
) -> list[Record]:
    """AVSBench S4 (single source): ``root/s4_meta_data.csv`` (columns ``name, category, split``), frames
    ``<video_id>_<k>.png`` (k = 1..5) under ``root[/visual_frames]/<split>/<category>/<video_id>/``, audio
    ``root/audio_wav/<split>/<category>/<video_id>.wav`` and masks ``root/gt_masks/<split>/<category>/<video_id>/
    <video_id>_<k>.png`` (train videos have only the first).

    One record per video: ``image`` is the first frame (the key frame, at ``seconds_per_frame / 2``),
    ``meta["frames"]`` all frames and ``meta["frame_times"]`` their times (frame k shows second k),
    ``frame_masks`` the masks in frame order, ``ssl_mask`` the key frame's mask, ``objects`` one sounding object of
    the video's category with the key-frame mask. ``split`` keeps only that split.
    """
    root = Path(root)
    meta_csv = next((p for p in (root / "s4_meta_data.csv", *root.glob("*/s4_meta_data.csv")) if p.is_file()), None)
    if meta_csv is None:
        raise DataError(f"no s4_meta_data.csv in {root}")
    try:
        with meta_csv.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{meta_csv} is not a readable UTF-8 CSV file: {e}") from None
    need = {"name", "category", "split"}
    if rows and not need <= set(rows[0]):  # (a row longer than the header adds the key None)
        raise DataError(f"{meta_csv} needs columns {sorted(need)}, has {sorted(str(k) for k in rows[0])}")
    base = meta_csv.parent
    frames_root = base / "visual_frames" if (base / "visual_frames").is_dir() else base
    records = []
    for n, row in enumerate(rows, start=2):
        vid, cat, sp = row["name"], row["category"], row["split"]
        if not vid or not cat or not sp:
            raise DataError(f"{meta_csv}:{n}: empty name, category or split")
        if split is not None and sp != split:
            continue
        fdir = frames_root / sp / cat / vid
        frames = sorted(_numbered(fdir, vid, IMAGE_EXTS), key=_frame_index)
        if not frames:
            raise DataError(f"{meta_csv}:{n}: no frames {vid}_<k>.png in {fdir}")
        masks = sorted(_numbered(base / "gt_masks" / sp / cat / vid, vid, (".png",)), key=_frame_index)
        times = [(_frame_index(p) - 0.5) * seconds_per_frame for p in frames]
        key = str(masks[0].resolve()) if masks else None
        records.append(Record(
            id=vid, source="avsbench", split=sp,
            image=str(frames[0].resolve()),
            audio=_find(base / "audio_wav" / sp / cat, ("",), vid, AUDIO_EXTS),
            duration=len(frames) * seconds_per_frame, key_time=times[0],
            objects=[ObjectAnn(category=cat, box=[], sounding=True, mask=key)],
            ssl_mask=key, frame_masks=[str(p.resolve()) for p in masks],
            meta={"category": cat, "frames": [str(p.resolve()) for p in frames], "frame_times": times},
        ))
    return _finish(records, check_files, meta_csv)


# ----------------------------------------------------------------------------------------------------------------
# MUSIC-AVQA


def _json_list(value: Any) -> list:
    """A list, or a JSON-encoded list (the released files store lists as strings)."""
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        try:
            got = json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            return [value]
        return got if isinstance(got, list) else [got]
    return []


_PLACEHOLDER = re.compile(r"<[A-Za-z][A-Za-z0-9_ ]*>")


def read_musicavqa(
    path: str | Path, *, video_root: str | Path | None = None, split: str | None = None, check_files: bool = False
) -> list[Record]:
    """MUSIC-AVQA: a JSON list of ``{"video_id", "question_id", "type", "question_content", "templ_values",
    "anser"}`` (``"answer"`` accepted too). One record per video (its questions in file order).

    ``<...>`` placeholders in the question are filled from ``templ_values`` in order (too few values is a
    ``DataError``). The type's last word (Existential, Counting, Location, Temporal, Comparative) becomes
    ``meta["kind"]``; the original type list, question id and template values stay in the text's meta. Videos are
    ``<video_id>.mp4`` in ``video_root`` (default: the JSON's folder, or its ``videos/``). ``split`` defaults to
    train / val / test when the file name says so.
    """
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: MUSIC-AVQA questions must be a JSON list")
    base = Path(video_root) if video_root is not None else path.parent
    if split is None:
        split = next((s for s in ("train", "val", "test") if s in path.stem.lower()), "")
    by_video: dict[str, Record] = {}
    for i, q in enumerate(data):
        if not isinstance(q, dict) or "video_id" not in q or "question_content" not in q:
            raise DataError(f"{path}: entry {i} lacks video_id or question_content")
        if not isinstance(q["question_content"], str):
            raise DataError(f"{path}: entry {i}: question_content is not a string")
        answer = q.get("anser", q.get("answer"))
        if answer is None:
            raise DataError(f"{path}: entry {i} (question {q.get('question_id')}) has no 'anser' / 'answer'")
        values = [str(v) for v in _json_list(q.get("templ_values", []))]
        holes = _PLACEHOLDER.findall(q["question_content"])
        if len(values) < len(holes):
            raise DataError(f"{path}: question {q.get('question_id', i)} has {len(holes)} placeholders but "
                            f"{len(values)} template values")
        it = iter(values)
        question = _PLACEHOLDER.sub(lambda m: next(it), q["question_content"])
        qtype = [str(t) for t in _json_list(q.get("type", []))]
        kind = qtype[-1].lower() if qtype else ""
        if kind not in AVQA_KINDS:
            kind = "other"
        vid = _media_name(q["video_id"], f"{path}: entry {i}")
        rec = by_video.get(vid)
        if rec is None:
            rec = by_video[vid] = Record(
                id=vid, source="musicavqa", split=split,
                video=_find(base, ("", "videos", "video"), vid, VIDEO_EXTS))
        rec.texts.append(TextSample(task="avqa", prompt=question, answer=str(answer), meta={
            "kind": kind, "type": qtype, "question_id": q.get("question_id"), "templ_values": values}))
    return _finish(list(by_video.values()), check_files, path)


# ----------------------------------------------------------------------------------------------------------------
# Instruction JSON (MEERKAT / AVFIT style)

_MEDIA_TAG = re.compile(r"\s*<(?:image|audio|video)>\s*", re.IGNORECASE)
_TASK_WORDS = (  # first match wins: (word in the task name, our task)
    ("fact", "factcheck"), ("temporal", "temporal"), ("ground", "ground"), ("caption", "caption"),
    ("qa", "avqa"), ("question", "avqa"), ("speech", "speech"), ("chat", "chat"),
)


def _our_task(name: str) -> str:
    low = name.lower()
    return next((ours for word, ours in _TASK_WORDS if word in low), "chat")


def _strip_media(text: str) -> str:
    return _MEDIA_TAG.sub(" ", text).strip()


def read_instruct(
    path: str | Path, *, media_root: str | Path | None = None, split: str = "", check_files: bool = False
) -> list[Record]:
    """Instruction JSON: ``[{"id", "video" | "image" + "audio", "conversations": [{"from": "human", "value":
    "<image>\\n<audio>\\nQuestion"}, {"from": "gpt", "value": "answer"}, ...], "task": optional}]``.

    Each human turn followed by a gpt turn becomes a ``TextSample`` (media tags stripped). ``task`` maps to ours
    by keyword (fact -> factcheck, temporal -> temporal, ground -> ground, caption -> caption, qa -> avqa, else
    chat), the original name kept in ``meta["task"]``. Media paths are relative to ``media_root`` (default: the
    JSON's folder).
    """
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: instruction data must be a JSON list")
    base = Path(media_root) if media_root is not None else path.parent
    records = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("conversations"), list):
            raise DataError(f"{path}: entry {i} has no 'conversations' list")
        rid = str(item.get("id", i))
        orig = str(item.get("task", ""))
        task = _our_task(orig) if orig else "chat"
        texts, pending = [], None
        for turn in item["conversations"]:
            if not isinstance(turn, dict) or "value" not in turn:
                raise DataError(f"{path}: entry {i} ({rid}) has a turn without 'value'")
            who = str(turn.get("from", "")).lower()
            if who in ("human", "user"):
                pending = _strip_media(str(turn["value"]))
            elif who in ("gpt", "assistant") and pending is not None:
                meta = {"turn": len(texts)} | ({"task": orig} if orig else {})
                texts.append(TextSample(task=task, prompt=pending, answer=str(turn["value"]).strip(), meta=meta))
                pending = None
        media = {k: str(_resolve(_media_name(item[k], f"{path}: entry {i} ({rid})"), base).resolve())
                 for k in ("video", "image", "audio") if item.get(k)}
        records.append(Record(id=rid, source="instruct", split=split, texts=texts, **media))
    return _finish(records, check_files, path)


# ----------------------------------------------------------------------------------------------------------------
# Dispatch


def _json_kind(path: Path) -> str | None:
    data = _load_json(path)
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        return None
    first = data[0]
    if "conversations" in first:
        return "instruct"
    if "question_content" in first:
        return "musicavqa"
    if "file" in first and "bbox" in first:
        return "vggss"
    return None


def read_any(path: str | Path, *, check_files: bool = False) -> list[Record]:
    """Read whatever ``path`` holds, with absolute media paths:

    - ``*.jsonl``: our manifest; ``*.json``: instruction data, MUSIC-AVQA or VGG-SS, told apart by their keys;
    - a folder with ``s4_meta_data.csv``: AVSBench S4; with ``Annotations/*.xml`` or ``*.xml``: Flickr-SoundNet;
      with ``manifest.jsonl``: that manifest; with exactly one ``*.json`` of a known kind: that file.
    """
    p = Path(path)
    if p.is_file():
        if p.suffix == ".jsonl":
            return read_manifest(p, check_files=check_files, resolve_paths=True)
        if p.suffix == ".json":
            kind = _json_kind(p)
            readers = {"instruct": read_instruct, "musicavqa": read_musicavqa, "vggss": read_vggss}
            if kind is None:
                raise DataError(f"{p}: not a known JSON dataset (instruction 'conversations', MUSIC-AVQA "
                                "'question_content', or VGG-SS 'file' + 'bbox')")
            return readers[kind](p, check_files=check_files)
        raise DataError(f"{p}: unknown dataset file type {p.suffix!r} (expected .jsonl, .json or a folder)")
    if not p.is_dir():
        raise DataError(f"dataset path not found: {p}")
    if (p / "s4_meta_data.csv").is_file():
        return read_avsbench(p, check_files=check_files)
    if (p / "manifest.jsonl").is_file():
        return read_manifest(p / "manifest.jsonl", check_files=check_files, resolve_paths=True)
    if any((p / "Annotations").glob("*.xml")) or any(p.glob("*.xml")):
        return read_flickr(p, check_files=check_files)
    known = [j for j in sorted(p.glob("*.json")) if _json_kind(j) is not None]
    if len(known) == 1:
        return read_any(known[0], check_files=check_files)
    found = ", ".join(sorted(x.name for x in p.iterdir())[:10]) or "nothing"
    raise DataError(f"{p}: cannot tell the dataset format (found: {found})")
