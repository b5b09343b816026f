"""Event handlers: Gradio values in, calls of ``avllm`` (media, predictor, render) out, images and text back.

No tensor or signal math lives here (the demo only wires). Every ``MediaError`` and ``CheckpointError`` becomes a
``gr.Error`` with its readable message; any other exception is logged with its traceback and shown as a generic
``gr.Error``, so the server keeps serving. Loaded predictors are cached per checkpoint directory, each behind a
lock: the queue runs two requests at once, and a predictor holds the features of one clip at a time. Each
browser session keeps its own clip's features (``Session``) for the chat and the frame slider.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import gradio as gr
import numpy as np

from avllm import render, viz
from avllm.checkpoint import CheckpointError
from avllm.config import MediaConfig
from avllm.media import Clip, MediaError, load_clip_from_config
from avllm.predict import (
    DEFAULT_CHECKPOINT,
    ExampleIndex,
    NoDefaultCheckpoint,
    checkpoint_kind,
    resolve_checkpoint,
    run_prediction,
)

log = logging.getLogger(__name__)

NOTHING_GIVEN = "Upload a video, or an image and an audio file, then press Analyze."
GENERIC_FAILURE = "Something went wrong while analysing this input; the problem was logged. Try another file."
ANALYZE_FIRST = "Analyze a clip first: the chat asks the model about the clip on the page."
EXAMPLE_NOTE = "Example clip: its ground truth is drawn dashed / hatched and listed beside the answers."
NO_MODEL_VIEWS = "no checkpoint loaded: only the media views are shown"
# Flags worth a pop-up notice (with all notes) besides the media-info panel.
NOTICE_FLAGS = ("silent", "no_video", "truncated", "partial")
FLAG_NAMES = ("silent", "no_video", "still_image", "truncated", "partial", "downscaled", "resampled")
MAX_SECONDS = 60.0  # longer clips are cut here, with a notice
MAX_SIDE = 640  # frames are downscaled to this long side (the model sees 128-224 px; drawings stay sharp)
KEEP_OUTPUT_DIRS = 32  # per-request output folders kept on disk (Gradio serves copies from its own cache)
# The checkpoint the page starts with: $AVLLM_CHECKPOINT (app.py --checkpoint sets it) or the shipped default.
START_CHECKPOINT = os.environ.get("AVLLM_CHECKPOINT") or DEFAULT_CHECKPOINT
# Example clips (and examples.json with their ground truth) are listed from here; AVLLM_EXAMPLES_DIR overrides.
EXAMPLES_DIR = Path(os.environ.get("AVLLM_EXAMPLES_DIR") or Path(__file__).resolve().parent.parent / "examples")


# ----------------------------------------------------------------------------------------------------------------
# Models and sessions


class ModelCache:
    """Predictors by checkpoint directory (the ``max_models`` most recently used), each with its own lock."""

    def __init__(self, max_models: int = 2):
        self.max_models = max_models
        self._models: OrderedDict[str, tuple[Any, threading.Lock]] = OrderedDict()
        self._guard = threading.Lock()  # held while loading, so that one checkpoint is loaded once

    def get(self, path: Path) -> tuple[Any, threading.Lock]:
        from avllm.predictor import Predictor

        key = str(Path(path).resolve())
        with self._guard:
            if key not in self._models:
                self._models[key] = (Predictor.from_checkpoint(key), threading.Lock())
                while len(self._models) > self.max_models:
                    self._models.popitem(last=False)
            self._models.move_to_end(key)
            return self._models[key]

    def loaded(self, path: Path) -> bool:
        return str(Path(path).resolve()) in self._models


MODELS = ModelCache()


@dataclass
class Session:
    """What one browser session keeps after Analyze: enough to chat about the clip and to step through frames."""

    checkpoint: str  # resolved checkpoint directory
    features: Any  # avllm.model.AVFeatures of the clip (batch of one), cached for the chat
    source: str
    frames: np.ndarray  # (T, H, W, 3) uint8, the sampled frames
    frame_maps: np.ndarray  # (T, g, g) float32 SSL map of each sampled frame
    frame_times: list[float]  # (T,) seconds


class AnalyzeResult(NamedTuple):
    """The outputs of Analyze, in the order the page wires them."""

    info: str  # media-info markdown
    status: str  # checkpoint status markdown
    answers: str  # the model's answers (markdown)
    boxes: np.ndarray
    ssl: np.ndarray
    slots: np.ndarray
    audio_slots: np.ndarray
    dense: np.ndarray
    dense_time: np.ndarray
    waveform: np.ndarray
    spectrogram: np.ndarray
    overlay: str | None  # overlay mp4 path
    slider: Any  # gr.Slider update (range of the sampled frames)
    frame: np.ndarray  # the first sampled frame with its map
    json_file: str | None  # prediction.json path
    session: Session | None
    chat: list  # the chat history, emptied for the new clip


# ----------------------------------------------------------------------------------------------------------------
# Inputs and media info


def pass_unreadable_images(image: gr.Image) -> gr.Image:
    """Make the image upload hand ``analyze`` its file even when PIL cannot open it; returns the same component.

    ``gr.Image`` opens every upload with PIL before the handler runs, so a damaged file or a video named .png would
    fail there, with Gradio's multi-line message and the server's temporary path. Passed on, the file is refused by
    ``load_image`` in words ("image file 'x.png' is damaged or not an image"). Wraps the component's own
    ``preprocess`` (a subclass would make Gradio write a stub file next to this module)."""
    preprocess = image.preprocess

    def lenient(payload):
        try:
            return preprocess(payload)
        except Exception:  # whatever PIL says, load_image says it readably
            if image.type != "filepath" or payload is None or not getattr(payload, "path", None):
                raise
            return str(payload.path)

    image.preprocess = lenient
    return image


def load_inputs(
    video: str | None, image: str | None, audio: str | None, cfg: MediaConfig
) -> tuple[Clip, list[str]]:
    """Pick the input the person gave and load it: a video wins; else an image and/or an audio file.

    Returns (clip, extra notes about inputs that were ignored). Raises gr.Error when nothing was given and
    MediaError when a file cannot be used.
    """
    extra = []
    if video:
        ignored = [name for name, v in (("image", image), ("audio", audio)) if v]
        if ignored:
            extra.append(f"the {' and '.join(ignored)} upload was ignored: a video was given")
        return load_clip_from_config(cfg, video), extra
    if image or audio:
        return load_clip_from_config(cfg, image=image or None, audio=audio or None), extra
    raise gr.Error(NOTHING_GIVEN, print_exception=False)


def media_info(clip: Clip, extra_notes: list[str] = ()) -> dict[str, Any]:
    """A JSON-ready summary of a clip: what was loaded, at which rates, and what was missing or changed."""
    h, w = (clip.frames.shape[1], clip.frames.shape[2]) if clip.has_video else (0, 0)
    return {
        "source": clip.source,
        "duration_s": round(float(clip.duration), 3),
        "frames": clip.num_frames,
        "fps": round(float(clip.fps), 3),
        "frame_size": f"{w}x{h}" if clip.has_video else "none",
        "sample_rate_hz": int(clip.sample_rate),
        "audio": "silent" if clip.flags.silent else "present",
        "flags": [name for name in FLAG_NAMES if getattr(clip.flags, name)],
        "notes": list(clip.flags.notes) + list(extra_notes),
    }


def info_markdown(info: dict[str, Any]) -> str:
    """The media-info summary as a small markdown table followed by the notes."""
    rows = [
        ("source", info["source"] or "upload"),
        ("duration", f"{info['duration_s']:.2f} s"),
        ("frames", f"{info['frames']} at {info['fps']:g} fps, {info['frame_size']}"),
        ("audio", f"{info['audio']}, {info['sample_rate_hz']} Hz mono"),
        ("flags", ", ".join(info["flags"]) or "none"),
    ]
    lines = ["| media | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]]
    if info["notes"]:
        lines += ["", "**Notes**", *[f"- {n}" for n in info["notes"]]]
    return "\n".join(lines)


def checkpoint_status(text: str | None) -> str:
    """One markdown line about the chosen checkpoint, without loading or fetching it."""
    kind, path = checkpoint_kind(text)
    if kind == "default_missing":
        return (f"⚠️ **No default checkpoint is present** (`{DEFAULT_CHECKPOINT}` is missing): Analyze shows the "
                "media views only. Give the directory of a checkpoint to see the model's predictions.")  # fmt: skip
    if kind == "hub":
        return f"`{text.strip()}` is not a local directory: Analyze will try to fetch it from the model hub."
    if kind == "missing":
        return f"⚠️ Checkpoint not found: `{(text or '').strip()}`."
    state = "loaded" if MODELS.loaded(path) else "loaded on the first Analyze"
    return f"Checkpoint `{path}` ({state})."


@functools.lru_cache(maxsize=4)
def _examples(examples_dir: str) -> ExampleIndex:
    return ExampleIndex(Path(examples_dir) / "examples.json")


def example_index() -> ExampleIndex:
    """The examples of EXAMPLES_DIR (read once)."""
    return _examples(str(EXAMPLES_DIR))


# ----------------------------------------------------------------------------------------------------------------
# Output folders


_OUT_ROOT: Path | None = None
_OUT_LOCK = threading.Lock()


def _new_output_dir() -> Path:
    """A fresh folder for one request's video and JSON; the oldest are removed beyond KEEP_OUTPUT_DIRS."""
    global _OUT_ROOT
    with _OUT_LOCK:
        if _OUT_ROOT is None or not _OUT_ROOT.is_dir():
            _OUT_ROOT = Path(tempfile.mkdtemp(prefix="avllm_demo_"))
        d = Path(tempfile.mkdtemp(dir=_OUT_ROOT))
        old = sorted(_OUT_ROOT.iterdir(), key=lambda p: p.stat().st_mtime)[:-KEEP_OUTPUT_DIRS]
        for p in old:
            shutil.rmtree(p, ignore_errors=True)
        return d


# ----------------------------------------------------------------------------------------------------------------
# Handlers


def _readable(what: str):
    """Turn every failure of the wrapped handler into a gr.Error with a readable message (logged when unexpected)."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except gr.Error:
                raise
            except MediaError as err:
                raise gr.Error(str(err), title="Cannot use this file", print_exception=False) from None
            except CheckpointError as err:
                raise gr.Error(str(err), title="Cannot use this checkpoint", print_exception=False) from None
            except Exception:
                log.exception("%s failed", what)
                raise gr.Error(GENERIC_FAILURE, print_exception=False) from None

        return run

    return wrap


def _notify(clip: Clip, info: dict[str, Any]) -> None:
    if any(getattr(clip.flags, name) for name in NOTICE_FLAGS):
        gr.Warning("; ".join(info["notes"]))


def _media_only(clip: Clip, info: dict[str, Any], status: str) -> AnalyzeResult:
    images = render.media_images(clip, NO_MODEL_VIEWS)
    blank = viz.placeholder(NO_MODEL_VIEWS)
    return AnalyzeResult(
        info_markdown(info), status, f"*{NO_MODEL_VIEWS}.*", *(images[n] for n in render.IMAGE_NAMES),
        None, gr.update(maximum=1, value=0, interactive=False), blank, None, None, [],
    )


@_readable("analyze")
def analyze(
    video: str | None,
    image: str | None,
    audio: str | None,
    checkpoint: str | None = None,
    claim: str | None = None,
    question: str | None = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio injects the tracker through this default)
) -> AnalyzeResult:
    """The Analyze button: load the checkpoint (cached) and the clip, run every task, draw every view.

    video / image / audio: file paths from the upload components (or None). checkpoint: a directory or hub id
    (empty: the default). claim / question: optional texts for fact-checking and AVQA. Raises gr.Error only.
    """
    if not (video or image or audio):
        raise gr.Error(NOTHING_GIVEN, print_exception=False)
    progress(0.0, desc="Finding the checkpoint")
    try:
        ckpt = resolve_checkpoint(checkpoint if checkpoint is not None else START_CHECKPOINT)
    except NoDefaultCheckpoint:
        clip, extra = load_inputs(video, image, audio, MediaConfig(max_seconds=MAX_SECONDS, max_side=MAX_SIDE))
        info = media_info(clip, extra)
        _notify(clip, info)
        gr.Warning(f"No default checkpoint is present ({DEFAULT_CHECKPOINT}): showing the media views only.")
        return _media_only(clip, info, checkpoint_status(DEFAULT_CHECKPOINT))
    progress(0.05, desc="Loading the model")
    predictor, lock = MODELS.get(ckpt)
    progress(0.15, desc="Loading media")
    cfg = MediaConfig(sample_rate=predictor.model.cfg.audio.sample_rate, max_seconds=MAX_SECONDS, max_side=MAX_SIDE)
    clip, extra = load_inputs(video, image, audio, cfg)
    info = media_info(clip, extra)
    _notify(clip, info)
    record = example_index().record_for(video or image)
    progress(0.3, desc="Encoding the clip and answering")
    with lock:
        analysis = run_prediction(predictor, clip, claim, question)
        features = predictor.features
    pred = analysis.prediction
    out = render.render_all(
        clip, pred, analysis.frame_maps, _new_output_dir(), record=record,
        progress=lambda f, text: progress(0.55 + 0.45 * f, desc=text),
    )
    frames = render.sampled_frames(clip, pred)
    session = Session(str(ckpt), features, clip.source, frames, analysis.frame_maps, list(pred.frame_times))
    answers = render.answers_markdown(pred, record)
    if record is not None:
        answers = f"*{EXAMPLE_NOTE}*\n\n{answers}"
    t = len(pred.frame_times)
    return AnalyzeResult(
        info_markdown(info), checkpoint_status(str(ckpt)), answers, *(out.images[n] for n in render.IMAGE_NAMES),
        str(out.video) if out.video else None,
        gr.update(minimum=0, maximum=max(t - 1, 1), value=t // 2, step=1, interactive=t > 1),
        show_frame(t // 2, session), str(out.json_path), session, [],
    )


def show_frame(index: float | None, session: Session | None) -> np.ndarray:
    """The frame slider: sampled frame ``index`` with its SSL map (a placeholder before Analyze)."""
    if session is None:
        return viz.placeholder("Analyze a clip to step through its sampled frames")
    i = int(min(max(round(index or 0), 0), len(session.frame_times) - 1))
    return render.frame_view(session.frames[i], session.frame_maps[i], session.frame_times[i], i,
                             len(session.frame_times))  # fmt: skip


@_readable("chat")
def chat(message: str | None, history: list | None, session: Session | None) -> tuple[list, str]:
    """The chat box: ask the model a free question about the analysed clip (its cached features).

    Returns (the history with the question and the answer appended, "" for the cleared textbox)."""
    history = list(history or [])
    message = (message or "").strip()
    if not message:
        return history, ""
    if session is None:
        raise gr.Error(ANALYZE_FIRST, print_exception=False)
    predictor, lock = MODELS.get(Path(session.checkpoint))
    with lock:
        predictor.features = session.features
        answer = predictor.ask(message)
    text = answer.text or "(the model gave an empty answer)"
    parsed = []
    if answer.boxes:
        parsed.append(f"{len(answer.boxes)} box(es)")
    if answer.segments:
        parsed.append(f"{len(answer.segments)} time segment(s)")
    if parsed:
        text += f"\n\n*read as {' and '.join(parsed)}*"
    history += [{"role": "user", "content": message}, {"role": "assistant", "content": text}]
    return history, ""
