"""Event handlers: Gradio values in, calls of ``avllm.media`` and ``avllm.viz``, images and text out.

No tensor or signal math lives here (the demo only wires). Every ``MediaError`` becomes a ``gr.Error`` with its
readable message; any other exception is logged with its traceback and shown as a generic ``gr.Error``, so the
server keeps serving.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from avllm import viz
from avllm.config import MediaConfig
from avllm.media import Clip, MediaError, load_clip_from_config

log = logging.getLogger(__name__)

NOTHING_GIVEN = "Upload a video, or an image and an audio file, then press Analyze."
GENERIC_FAILURE = "Something went wrong while analysing this input; the problem was logged. Try another file."
# Flags worth a pop-up notice (with all notes) besides the media-info panel.
NOTICE_FLAGS = ("silent", "no_video", "truncated", "partial")
FLAG_NAMES = ("silent", "no_video", "still_image", "truncated", "partial", "downscaled", "resampled")


def load_inputs(video: str | None, image: str | None, audio: str | None, cfg: MediaConfig) -> tuple[Clip, list[str]]:
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


def analyze(
    video: str | None,
    image: str | None,
    audio: str | None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio injects the tracker through this default)
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """The "Analyze" button: load the upload, draw its frames, waveform and spectrogram, summarise the media.

    video / image / audio: file paths from the upload components (or None). Returns (frame strip, waveform,
    spectrogram, media-info markdown). Raises gr.Error only.
    """
    try:
        progress(0.0, desc="Loading media")
        clip, extra = load_inputs(video, image, audio, MediaConfig())
        info = media_info(clip, extra)
        if any(getattr(clip.flags, name) for name in NOTICE_FLAGS):
            gr.Warning("; ".join(info["notes"]))
        progress(0.4, desc="Drawing frames")
        strip = viz.frame_strip(clip.frames, clip.times, n=8, title="Frames over time")
        progress(0.6, desc="Drawing the waveform")
        wave = viz.waveform_plot(clip.audio, clip.sample_rate)
        progress(0.8, desc="Computing the spectrogram")
        spec = viz.spectrogram_plot(clip.audio, clip.sample_rate)
        progress(1.0, desc="Done")
        return strip, wave, spec, info_markdown(info)
    except gr.Error:
        raise
    except MediaError as err:
        raise gr.Error(str(err), title="Cannot use this file", print_exception=False) from None
    except Exception:
        log.exception("analyze failed (video=%s, image=%s, audio=%s)", _name(video), _name(image), _name(audio))
        raise gr.Error(GENERIC_FAILURE, print_exception=False) from None


def _name(path: str | None) -> str | None:
    return Path(path).name if path else None
