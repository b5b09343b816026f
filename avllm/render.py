"""What a person looks at, from a clip and the model's prediction: images, the overlay video and the JSON document.

    pred = predictor.predict(claim=..., question=...)
    fmaps = predictor.frame_maps()                                  # (T, g, g) SSL map of each sampled frame
    out = render_all(clip, pred, fmaps, "out/", record=gt)          # images, overlay.mp4, prediction.json
    out.images["boxes"]                                              # (H, W, 3) uint8 RGB

The demo (``demo/``) and the CLI (``python -m avllm.predict``) both go through ``render_all``; drawing primitives are
in ``avllm.viz``. ``record`` is an optional ground-truth ``Record`` (the synthetic examples carry one): its boxes are
drawn dashed beside the predicted ones and its time segments hatched beside the predicted segments.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avllm import viz
from avllm.media import Clip, write_video
from avllm.predictor import PROMPTS, Prediction, map_to_box
from avllm.record import Record

__all__ = [
    "IMAGE_NAMES",
    "BOX_COLORS",
    "Rendered",
    "head_name",
    "gt_boxes",
    "gt_segments",
    "gt_answers",
    "sampled_frames",
    "interpolate_maps",
    "render_images",
    "media_images",
    "frame_view",
    "overlay_frames",
    "write_overlay_video",
    "prediction_document",
    "answers_markdown",
    "summary_lines",
    "render_all",
]

# The images render_all produces, in the order the CLI writes them (``<name>.png``).
IMAGE_NAMES = ("boxes", "ssl", "slots", "audio_slots", "dense", "dense_time", "waveform", "spectrogram")
# One colour per kind of predicted box (the ground truth is dark and dashed, as everywhere in viz).
BOX_COLORS = {"LM": "#e6194b", "SSL map": "#3cb44b", "proposal head": "#4363d8"}
MAX_LM_BOXES = 4  # at most this many distinct boxes of the LM's grounding answer are drawn
OVERLAY_SHORT_SIDE = 320  # the overlay video's frames are scaled to this short side (pixels)

Progress = Callable[[float, str], Any]


@dataclass
class Rendered:
    """What ``render_all`` made: images by name, the overlay video and the JSON document (paths, or None)."""

    images: dict[str, np.ndarray]  # name -> (H, W, 3) uint8 RGB, names from IMAGE_NAMES
    video: Path | None  # overlay mp4 (H.264 + AAC); None for audio-only clips
    json_path: Path | None
    document: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)  # seconds: rendering, video writing, json
    notes: list[str] = field(default_factory=list)


def head_name(k: int, roles: list[str] | None = None) -> str:
    """Display name of DenseAV head ``k``: 'head 1 (speech)' where ``roles`` (a prediction's measured
    ``dense_roles``) names it, else 'head 1'."""
    role = roles[k] if roles and k < len(roles) else ""
    return f"head {k} ({role})" if role else f"head {k}"


# ----------------------------------------------------------------------------------------------------------------
# Ground truth from a record


def _gt_frame_index(record: Record, t: float) -> int | None:
    """Index into the objects' ``frame_boxes`` of the frame shown at ``t`` seconds (None when unknown)."""
    n = max((len(o.frame_boxes) for o in record.objects), default=0)
    if n == 0 or record.duration <= 0:
        return None
    fps = n / record.duration
    return int(min(max(np.floor(t * fps + 1e-6), 0), n - 1))


def gt_boxes(record: Record | None, t: float | None = None) -> tuple[list[list[float]], list[str]]:
    """Boxes and labels ('GT bell') of the record's sounding visible objects, at time ``t`` seconds when the record
    has per-frame boxes (else at its key frame)."""
    if record is None:
        return [], []
    i = None if t is None else _gt_frame_index(record, t)
    boxes, labels = [], []
    for o in record.objects:
        if o.sounding:
            boxes.append(o.frame_boxes[i] if i is not None and i < len(o.frame_boxes) else o.box)
            labels.append(f"GT {o.category}")
    return boxes, labels


def gt_segments(record: Record | None) -> list[list[float]] | None:
    """Seconds when a visible object sounds (the temporal task's answer), or None without a record."""
    if record is None:
        return None
    return [list(s) for o in record.objects if o.sounding for s in o.segments]


_CLAIM_PREFIX = PROMPTS["factcheck"].split("{claim}")[0]


def _norm(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".?!")


def gt_answers(record: Record | None, pred: Prediction) -> dict[str, str]:
    """The record's answer for each task the prediction answered: grounding, temporal and caption from the record's
    first text of that task; fact-check and AVQA only when the prompt is one of the record's own."""
    if record is None:
        return {}
    out = {}
    for task, ans in pred.answers.items():
        texts = record.texts_for(task)
        if task == "factcheck":
            claim = _norm(ans.prompt.removeprefix(_CLAIM_PREFIX))
            texts = [t for t in texts if _norm(str(t.meta.get("claim", ""))) == claim]
        elif task == "avqa":
            texts = [t for t in texts if _norm(t.prompt) == _norm(ans.prompt)]
        if texts:
            out[task] = texts[0].answer
    return out


# ----------------------------------------------------------------------------------------------------------------
# Frames and maps


def sampled_frames(clip: Clip, pred: Prediction) -> np.ndarray:
    """The clip's frames at the prediction's sampled times: (T, H, W, 3) uint8; black 224 px frames for audio."""
    if not clip.has_video:
        return np.zeros((len(pred.frame_times), 224, 224, 3), np.uint8)
    return np.stack([clip.key_frame(t) for t in pred.frame_times])


def interpolate_maps(maps: np.ndarray, times, at) -> np.ndarray:
    """Maps known at ``times`` (T,) seconds, linearly interpolated in time to ``at`` (N,) seconds (held constant
    before the first and after the last). maps: (T, h, w) float. Returns (N, h, w) float32."""
    maps = np.asarray(maps, dtype=np.float32)
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    at = np.asarray(at, dtype=np.float64).reshape(-1)
    if maps.ndim != 3 or maps.shape[0] != times.shape[0] or times.size == 0:
        raise ValueError(f"maps {maps.shape} do not match times {times.shape}")
    order = np.argsort(times)
    maps, times = maps[order], times[order]
    pos = np.interp(at, times, np.arange(times.size))  # (N,) fractional index into the T maps
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, times.size - 1)
    w = (pos - lo).astype(np.float32)[:, None, None]  # (N, 1, 1)
    return (1.0 - w) * maps[lo] + w * maps[hi]  # (N, h, w)


def _key_frame(clip: Clip, pred: Prediction) -> np.ndarray | None:
    return clip.key_frame(pred.key_time) if clip.has_video else None


def _unique(boxes: list[list[float]]) -> list[list[float]]:
    """Boxes without repeats (an untrained LM writes the same box many times), in order."""
    out: list[list[float]] = []
    for b in boxes:
        if not any(np.allclose(b, o, atol=1e-3) for o in out):
            out.append(list(b))
    return out


def _pred_boxes(pred: Prediction) -> tuple[list[list[float]], list[str], list[str]]:
    ground = pred.answers.get("ground")
    kinds = [("LM", b) for b in _unique(ground.boxes if ground is not None else [])[:MAX_LM_BOXES]]
    if pred.ssl_box is not None:
        kinds.append(("SSL map", pred.ssl_box))
    kinds.append(("proposal head", pred.proposal_box))
    boxes = [b for _, b in kinds]
    labels = [k for k, _ in kinds]
    colors = [BOX_COLORS[k] for k in labels]
    return boxes, labels, colors


def _seen_classes(pred: Prediction) -> dict[str, dict[str, Any]]:
    """The class-map entries of the classes seen with probability >= 0.5."""
    return {c: v for c, v in pred.classes.items() if v["seen"] >= 0.5}


def _pred_segments(pred: Prediction) -> tuple[list[list[float]], list[str]]:
    temporal = pred.answers.get("temporal")
    segs = [list(s) for s in (temporal.segments if temporal is not None else [])]
    labels = ["LM"] * len(segs)
    if pred.proposal_segment and pred.proposal_segment[1] > pred.proposal_segment[0]:
        segs.append(list(pred.proposal_segment))
        labels.append("proposal head")
    return segs, labels


def _curves(pred: Prediction) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    return np.asarray(pred.curves["times"], dtype=np.float64), {
        k: np.asarray(v, dtype=np.float64) for k, v in pred.curves.items() if k != "times"
    }


def render_images(clip: Clip, pred: Prediction, record: Record | None = None) -> dict[str, np.ndarray]:
    """Every image of IMAGE_NAMES for one prediction: boxes on the key frame, SSL / slot / DenseAV maps over it, the
    audio slot and DenseAV activations over time, waveform and spectrogram with segments."""
    frame = _key_frame(clip, pred)
    maps = {k: np.asarray(v, dtype=np.float32) for k, v in pred.maps.items()}
    times, curves = _curves(pred)
    key = f"key frame, t = {pred.key_time:.2f} s"
    out: dict[str, np.ndarray] = {}

    gtb, gtl = gt_boxes(record, pred.key_time)
    boxes, labels, colors = _pred_boxes(pred)
    legend = [(lab, BOX_COLORS[lab], False) for lab in BOX_COLORS if lab in labels]
    if gtb:
        legend.append(("ground truth", viz.GT_COLOR, True))
    if frame is None:
        out["boxes"] = viz.placeholder("no video frames (audio only): no boxes to draw")
    else:
        panels = {"predicted boxes": viz.draw_boxes(frame, boxes, labels, colors)}
        if record is not None:  # the ground truth beside, on a washed-out frame so that dark dashes stand out
            washed = (0.45 * frame.astype(np.float32) + 0.55 * 255.0).astype(np.uint8)
            panels["ground truth (dashed)"] = viz.draw_boxes(washed, [], gt_boxes=gtb, gt_labels=gtl)
        if seen := _seen_classes(pred):
            names = list(seen)
            panels["classes seen (class maps)"] = viz.mark_points(
                frame, [seen[c]["centre"] for c in names],
                [f"{c}{' (sounding)' if seen[c]['sounding'] >= 0.5 else ''}" for c in names],
            )
        panels["SSL map and its box"] = viz.draw_boxes(
            viz.overlay_heatmap(frame, maps["ssl"]), [pred.ssl_box] if pred.ssl_box else [], ["SSL map"],
            [BOX_COLORS["SSL map"]],
        )
        out["boxes"] = viz.image_row(panels, f"Where the sound comes from ({key})", legend=legend,
                                     cell=320 if record is not None else 360)  # fmt: skip
    base = frame if frame is not None else np.zeros((224, 224, 3), np.uint8)
    loc = {"SSL map (JSA slots, refined)": maps["ssl"], "AVACE cross-attention": maps["avace"]}
    if "sounding" in maps:
        loc["sounding classes"] = maps["sounding"]
    out["ssl"] = viz.map_panel(base, loc, f"Localization maps ({key})", colorbar_label="min-max normalised")
    out["slots"] = viz.map_panel(
        base, {"target slot": maps["slot_target"], "off-target slot": maps["slot_offtarget"]},
        f"Image slots ({key})", colorbar_label="share of each patch",
    )
    seg, seg_labels = _pred_segments(pred)
    prop = [pred.proposal_segment] if pred.proposal_segment[1] > pred.proposal_segment[0] else None
    lines = {"target slot attention": curves["audio_slot_target"], "activity (proposal head)": curves["activity"]}
    for c, v in pred.classes.items():  # the class maps' activity of each class heard
        if v["heard"] >= 0.5 and len(v["activity"]) == len(times):
            lines[f"{c} (class map)"] = np.asarray(v["activity"], dtype=np.float64)
    out["audio_slots"] = viz.activation_plot(lines, times, prop,
                                             title="Audio slots and heard classes over time (grey: proposed segment)")
    heads = sorted(int(k[len("dense_head"):]) for k in maps if k.startswith("dense_head"))
    out["dense"] = viz.map_panel(
        base, {head_name(k, pred.dense_roles): maps[f"dense_head{k}"] for k in heads},
        f"DenseAV heads ({key})", colorbar_label="min-max normalised",
    )
    out["dense_time"] = viz.activation_plot(
        {head_name(k, pred.dense_roles): curves[f"dense_time{k}"] for k in heads if f"dense_time{k}" in curves},
        times,
        title="DenseAV heads over time (max over the image)",
    )
    gts = gt_segments(record)
    out["waveform"] = viz.waveform_plot(clip.audio, clip.sample_rate, seg, gts, seg_labels,
                                        title="Waveform with predicted sound segments")  # fmt: skip
    out["spectrogram"] = viz.spectrogram_plot(clip.audio, clip.sample_rate, seg, gts, seg_labels,
                                              title="Log-mel spectrogram with predicted sound segments")  # fmt: skip
    return out


def media_images(clip: Clip, why: str) -> dict[str, np.ndarray]:
    """The views that need no model: frames in place of the boxes, waveform, spectrogram; placeholders saying
    ``why`` for the rest. Same keys as ``render_images``."""
    out = {name: viz.placeholder(why) for name in IMAGE_NAMES}
    out["boxes"] = viz.frame_strip(clip.frames, clip.times, n=8, title="Frames over time")
    out["waveform"] = viz.waveform_plot(clip.audio, clip.sample_rate)
    out["spectrogram"] = viz.spectrogram_plot(clip.audio, clip.sample_rate)
    return out


def frame_view(frame: np.ndarray, frame_map: np.ndarray, t: float, index: int, total: int) -> np.ndarray:
    """One sampled frame with its SSL map (colour bar) and the map's box, titled with its time: (H, W, 3) uint8."""
    box = map_to_box(frame_map)
    boxed = viz.draw_boxes(frame, [box] if box else [], ["SSL map"], [BOX_COLORS["SSL map"]])
    return viz.map_panel(boxed, {f"SSL map at t = {t:.2f} s": frame_map},
                         f"Sampled frame {index + 1} of {total}", cell=380, colorbar_label="min-max normalised")


# ----------------------------------------------------------------------------------------------------------------
# Overlay video


def overlay_frames(clip: Clip, pred: Prediction, frame_maps: np.ndarray, short_side: int = OVERLAY_SHORT_SIDE):
    """Every frame of the clip with the SSL map interpolated to its time and the map's box (plus the LM's boxes),
    scaled to ``short_side`` pixels: (N, H', W', 3) uint8 RGB."""
    import cv2

    if not clip.has_video:
        raise ValueError("the clip has no video frames")
    maps = interpolate_maps(frame_maps, pred.frame_times, clip.times)  # (N, g, g)
    h, w = clip.frames.shape[1:3]
    s = short_side / min(h, w)
    size = (max(2, int(round(w * s / 2)) * 2), max(2, int(round(h * s / 2)) * 2))  # even sides for yuv420p
    ground = pred.answers.get("ground")
    lm = _unique(ground.boxes if ground is not None else [])[:MAX_LM_BOXES]
    out = np.empty((clip.num_frames, size[1], size[0], 3), np.uint8)
    for i in range(clip.num_frames):
        f = cv2.resize(np.ascontiguousarray(clip.frames[i]), size, interpolation=cv2.INTER_AREA if s < 1 else
                       cv2.INTER_CUBIC)  # fmt: skip
        box = map_to_box(maps[i])
        boxes = [*lm, *([box] if box else [])]
        labels = ["LM"] * len(lm) + (["SSL map"] if box else [])
        colors = [BOX_COLORS[lab] for lab in labels]
        out[i] = viz.draw_boxes(viz.overlay_heatmap(f, maps[i], alpha=0.45), boxes, labels, colors, min_side=0)
    return out


def write_overlay_video(clip: Clip, pred: Prediction, frame_maps: np.ndarray, path: str | Path) -> Path | None:
    """The overlay video as a browser-playable mp4 with the clip's sound; None for an audio-only clip."""
    if not clip.has_video:
        return None
    frames = overlay_frames(clip, pred, frame_maps)
    audio = None if clip.flags.silent else clip.audio
    return write_video(path, frames, clip.fps, audio, clip.sample_rate)


# ----------------------------------------------------------------------------------------------------------------
# Text and JSON


def prediction_document(
    clip: Clip, pred: Prediction, frame_maps: np.ndarray | None = None, record: Record | None = None
) -> dict[str, Any]:
    """The whole prediction as a JSON-ready dict: media summary, ``Prediction.to_dict()``, the per-frame SSL maps,
    and the ground truth (with the record's answers) when known."""
    doc: dict[str, Any] = {
        "media": {
            "source": clip.source, "duration_s": round(float(clip.duration), 3), "frames": clip.num_frames,
            "fps": round(float(clip.fps), 3), "sample_rate_hz": int(clip.sample_rate),
            "notes": list(clip.flags.notes),
        },
        "prediction": pred.to_dict(),
    }
    if frame_maps is not None:
        doc["frame_maps"] = {"times": [round(float(t), 3) for t in pred.frame_times],
                             "ssl": np.round(np.asarray(frame_maps, dtype=np.float64), 4).tolist()}  # fmt: skip
    if record is not None:
        doc["ground_truth"] = {"answers": gt_answers(record, pred), "record": record.to_dict()}
    return doc


TASK_TITLES = {"ground": "Grounding", "temporal": "Temporal localization", "factcheck": "Fact-check",
               "avqa": "AVQA", "caption": "Caption"}  # fmt: skip


def _short(text: str, n: int = 100) -> str:
    text = " ".join((text or "(empty answer)").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _cell(text: str, n: int = 160) -> str:
    """A table cell: one line, pipes escaped, cut at ``n`` characters (the JSON has the full text)."""
    return _short(text, n).replace("|", "\\|")


def answers_markdown(pred: Prediction, record: Record | None = None) -> str:
    """The model's answers as a markdown table (task, prompt, answer, and the true answer when known), followed by
    the head proposals and the CAD answer chain's choice."""
    truth = gt_answers(record, pred)
    head = "| task | prompt | model's answer |" + (" ground truth |" if record is not None else "")
    rows = [head, "|---|---|---|" + ("---|" if record is not None else "")]
    for task in ("ground", "temporal", "factcheck", "avqa", "caption"):
        a = pred.answers.get(task)
        if a is None:
            continue
        row = f"| {TASK_TITLES[task]} | {_cell(a.prompt)} | {_cell(a.text)} |"
        rows.append(row + (f" {_cell(truth.get(task, '–'))} |" if record is not None else ""))
    extra = []
    if pred.avqa_choice is not None:
        extra.append(f"- AVQA, CAD answer chain's choice: **{pred.avqa_choice}**")
    box = ", ".join(f"{v:.2f}" for v in pred.proposal_box)
    s0, s1 = pred.proposal_segment
    extra.append(f"- proposal head: box [{box}], segment {s0:.2f}–{s1:.2f} s")
    if pred.ssl_box is not None:
        extra.append("- SSL map box: [" + ", ".join(f"{v:.2f}" for v in pred.ssl_box) + "]")
    for name, title in (("seen", "seen"), ("heard", "heard")):
        likely = [f"{c} {p:.2f}" for c, p in pred.tags.get(name, {}).items() if p >= 0.5]
        if name in pred.tags:
            extra.append(f"- class tags, {title}: " + (", ".join(likely) if likely else "none above 0.5"))
    places = [f"{c} at ({v['centre'][0]:.2f}, {v['centre'][1]:.2f}){', sounding' if v['sounding'] >= 0.5 else ''}"
              for c, v in _seen_classes(pred).items()]  # fmt: skip
    if places:
        extra.append("- class maps, where: " + "; ".join(places))
    return "\n".join(rows + [""] + extra)


def summary_lines(pred: Prediction) -> list[str]:
    """A short plain-text summary of a prediction (one line per answer and proposal)."""
    lines = [f"{TASK_TITLES.get(task, task)}: {_short(a.text)}" for task, a in pred.answers.items()]
    if pred.avqa_choice is not None:
        lines.append(f"AVQA (CAD answer chain): {pred.avqa_choice}")
    lines.append("proposal box: [" + ", ".join(f"{v:.2f}" for v in pred.proposal_box) + "]"
                 + f", segment {pred.proposal_segment[0]:.2f}-{pred.proposal_segment[1]:.2f} s")  # fmt: skip
    return lines


# ----------------------------------------------------------------------------------------------------------------
# Everything


def render_all(
    clip: Clip, pred: Prediction, frame_maps: np.ndarray, out_dir: str | Path, record: Record | None = None,
    progress: Progress | None = None,
) -> Rendered:
    """Images, ``out_dir/overlay.mp4`` and ``out_dir/prediction.json`` for one prediction. ``progress(fraction,
    text)`` is called between steps when given. Image files are not written here (see ``avllm.predict``)."""
    import time

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda *_: None)
    timings, notes = {}, []
    t0 = time.perf_counter()
    say(0.0, "Drawing boxes, maps and plots")
    images = render_images(clip, pred, record)
    timings["render"] = time.perf_counter() - t0
    say(0.6, "Writing the overlay video")
    t0 = time.perf_counter()
    video = write_overlay_video(clip, pred, frame_maps, out_dir / "overlay.mp4")
    if video is None:
        notes.append("audio only: no overlay video")
    timings["video"] = time.perf_counter() - t0
    say(0.9, "Writing the JSON")
    t0 = time.perf_counter()
    doc = prediction_document(clip, pred, frame_maps, record)
    json_path = out_dir / "prediction.json"
    json_path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    timings["json"] = time.perf_counter() - t0
    return Rendered(images, video, json_path, doc, timings, notes)
