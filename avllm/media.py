"""Media in and out: the one place that turns files into a ``Clip`` and writes clips back as browser-playable mp4.

    clip = load_clip("cat.mp4", fps=8.0)                 # video with its audio track
    clip = load_clip(image="dog.png", audio="bark.wav")  # a still image held for as long as the audio lasts
    clip.frames      # (T, H, W, 3) uint8 RGB
    clip.audio       # (S,) float32 mono in [-1, 1] at clip.sample_rate
    clip.flags       # what was missing or changed (silent, truncated, downscaled, ...), with readable notes
    write_video("out.mp4", clip.frames, clip.fps, clip.audio, clip.sample_rate)   # H.264 yuv420p + AAC

All decoding and encoding of audio and video goes through PyAV (which bundles FFmpeg); images go through PIL.
Every failure is a ``MediaError`` subclass with a message a person can read; FFmpeg's own errors never escape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = [
    "MediaError",
    "CorruptMediaError",
    "UnsupportedMediaError",
    "EmptyMediaError",
    "InvalidAudioError",
    "MediaFlags",
    "Clip",
    "write_video",
    "write_audio",
]

# Sample rates the AAC encoder accepts; audio at any other rate is resampled to 48 kHz before encoding.
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)


# ----------------------------------------------------------------------------------------------------------------
# Errors and flags


class MediaError(Exception):
    """A media file could not be used. The message names the file and says why, in plain words."""


class CorruptMediaError(MediaError):
    """The file is garbage, truncated beyond use, or its content does not decode as any media."""


class UnsupportedMediaError(MediaError):
    """Unknown file type, or the file holds no stream that can be used."""


class EmptyMediaError(MediaError):
    """The file is empty, or it has zero duration or zero frames."""


class InvalidAudioError(MediaError):
    """The audio holds NaN or infinite samples."""


@dataclass
class MediaFlags:
    """What was missing from the input or changed while loading it; ``notes`` has one readable line per flag set."""

    silent: bool = False  # no audio stream, or image without audio: the audio is zeros
    no_video: bool = False  # audio-only input: no frames
    still_image: bool = False  # the frames repeat one still image
    truncated: bool = False  # cut at max_seconds
    partial: bool = False  # a damaged file decoded only in part
    downscaled: bool = False  # frames larger than max_side were downscaled
    resampled: bool = False  # the audio sample rate was changed
    notes: list[str] = field(default_factory=list)  # e.g. "cut to 60 s of 3600 s"

    def set(self, name: str, note: str) -> None:
        """Set flag ``name`` and record ``note`` (once per distinct note)."""
        if not hasattr(self, name) or name == "notes":
            raise AttributeError(f"no media flag named {name!r}")
        setattr(self, name, True)
        if note not in self.notes:
            self.notes.append(note)

    def merge(self, other: MediaFlags) -> MediaFlags:
        """Set here every flag set in ``other`` and append its notes; returns self."""
        for name in ("silent", "no_video", "still_image", "truncated", "partial", "downscaled", "resampled"):
            if getattr(other, name):
                setattr(self, name, True)
        for note in other.notes:
            if note not in self.notes:
                self.notes.append(note)
        return self


@dataclass
class Clip:
    """Decoded media: frames sampled at ``fps`` and mono audio at ``sample_rate``, on one time axis (seconds)."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB; T may be 0 for audio-only input
    times: np.ndarray  # (T,) float64 seconds, timestamp of each frame
    fps: float  # sampling rate of `frames` (the requested fps, or the source's if lower)
    audio: np.ndarray  # (S,) float32 mono in [-1, 1]; all zeros (and flags.silent) when there is none
    sample_rate: int  # Hz
    duration: float  # seconds
    flags: MediaFlags = field(default_factory=MediaFlags)  # what was missing or changed
    source: str = ""  # file name(s) it came from

    @property
    def has_video(self) -> bool:
        return self.frames.shape[0] > 0

    @property
    def has_audio(self) -> bool:
        return not self.flags.silent and self.audio.size > 0

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def frame_at(self, t: float) -> int:
        """Index of the frame shown at time ``t`` seconds: the last one whose timestamp is <= t (clamped)."""
        if not self.has_video:
            raise MediaError(f"{self.source or 'this clip'} has no video frames")
        i = int(np.searchsorted(self.times, t + 1e-9, side="right")) - 1
        return min(max(i, 0), self.num_frames - 1)

    def key_frame(self, t: float) -> np.ndarray:
        """The frame shown at time ``t`` seconds: (H, W, 3) uint8 RGB."""
        return self.frames[self.frame_at(t)]


# ----------------------------------------------------------------------------------------------------------------
# Writing


def _as_uint8_frames(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) or (T, H, W) uint8, or float in [0, 1] -> (T, H, W, 3) uint8 with even H and W."""
    frames = np.asarray(frames)
    if frames.ndim == 3:  # grey (T, H, W)
        frames = np.repeat(frames[..., None], 3, axis=-1)
    if frames.ndim != 4 or frames.shape[-1] not in (3, 4):
        raise ValueError(f"frames must be (T, H, W, 3), got shape {frames.shape}")
    frames = frames[..., :3]
    if frames.dtype != np.uint8:
        if not np.issubdtype(frames.dtype, np.floating):
            raise ValueError(f"frames must be uint8, or float in [0, 1]; got {frames.dtype}")
        frames = (np.clip(np.nan_to_num(frames), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    # H.264 with yuv420p needs even sides: repeat the last row / column once when a side is odd.
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")  # (T, H', W', 3)
    return np.ascontiguousarray(frames)


def _as_mono_float(audio: np.ndarray, what: str = "audio") -> np.ndarray:
    """Any (S,) or (S, C) array -> (S,) float32 mono; ints are scaled to [-1, 1]; NaN/inf -> InvalidAudioError."""
    audio = np.asarray(audio)
    if np.issubdtype(audio.dtype, np.integer):
        info = np.iinfo(audio.dtype)
        audio = (audio.astype(np.float64) - (info.max + info.min + 1) / 2) / ((info.max - info.min + 1) / 2)
    audio = audio.astype(np.float32, copy=False)
    if audio.ndim == 2:
        audio = audio.mean(axis=1, dtype=np.float32)  # (S, C) -> (S,)
    if audio.ndim != 1:
        raise ValueError(f"{what} must be (S,) or (S, C), got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise InvalidAudioError(f"{what} holds NaN or infinite samples")
    return audio


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = 48000,
) -> Path:
    """Write a browser-playable mp4: H.264 (libx264, yuv420p) video and, when given, AAC mono audio.

    frames: (T, H, W, 3) uint8 RGB (float in [0, 1] and grey (T, H, W) are accepted too). Odd sides are padded by
        one pixel (the last row / column repeated), as yuv420p needs even sides. T may be 0 when audio is given:
        the file then holds only the audio stream.
    fps: frames per second (> 0; fractional rates such as 7.5 are kept exactly).
    audio: (S,) float32 mono in [-1, 1] (or (S, C), averaged to mono), or None for a silent video. Values beyond
        [-1, 1] are clipped. Audio at a rate AAC does not support is resampled to 48 kHz.
    Returns the path written.
    """
    import av

    path = Path(path)
    if fps <= 0 or not np.isfinite(fps):
        raise ValueError(f"fps must be positive, got {fps}")
    frames = _as_uint8_frames(frames)
    if audio is not None:
        audio = np.clip(_as_mono_float(audio), -1.0, 1.0)
        if audio.size == 0:
            audio = None
    if frames.shape[0] == 0 and audio is None:
        raise EmptyMediaError(f"nothing to write to {path.name}: no frames and no audio")
    if audio is not None and int(sample_rate) not in _AAC_RATES:
        audio, sample_rate = _resample(audio, int(sample_rate), 48000), 48000
    path.parent.mkdir(parents=True, exist_ok=True)

    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
        vstream = astream = None
        if frames.shape[0] > 0:
            vstream = out.add_stream("libx264", rate=rate)
            vstream.width, vstream.height = frames.shape[2], frames.shape[1]
            vstream.pix_fmt = "yuv420p"
            vstream.codec_context.time_base = 1 / rate
            vstream.codec_context.options = {"preset": "veryfast", "crf": "20"}
        if audio is not None:
            astream = out.add_stream("aac", rate=int(sample_rate))
            astream.layout = "mono"
            astream.codec_context.bit_rate = 128_000

        # Interleave: after each video frame, hand over the audio up to that frame's end time.
        chunks = _audio_frames(audio, int(sample_rate)) if astream is not None else iter(())
        pending = next(chunks, None)
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = i, 1 / rate
            out.mux(vstream.encode(vf))
            t_end = (i + 1) / float(rate)
            while pending is not None and pending.pts / sample_rate < t_end:
                out.mux(astream.encode(pending))
                pending = next(chunks, None)
        while pending is not None:
            out.mux(astream.encode(pending))
            pending = next(chunks, None)
        if vstream is not None:
            out.mux(vstream.encode(None))
        if astream is not None:
            out.mux(astream.encode(None))
    return path


def _audio_frames(audio: np.ndarray, sample_rate: int, chunk: int = 1024):
    """Yield PyAV mono float-planar frames of ``chunk`` samples (the last may be shorter), with pts in samples."""
    import av

    for start in range(0, audio.shape[0], chunk):
        frame = av.AudioFrame.from_ndarray(audio[None, start : start + chunk], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = sample_rate, start
        frame.time_base = Fraction(1, sample_rate)
        yield frame


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write a 16-bit PCM wav. audio: (S,) or (S, C) float in [-1, 1] (clipped) or int16. Returns the path."""
    import wave

    path = Path(path)
    audio = np.asarray(audio)
    if audio.dtype != np.int16:
        audio = np.asarray(audio, dtype=np.float64)
        if not np.all(np.isfinite(audio)):
            raise InvalidAudioError(f"audio for {path.name} holds NaN or infinite samples")
        audio = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(np.ascontiguousarray(audio).astype("<i2").tobytes())
    return path


def _resample(audio: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """(S,) float32 mono at src_rate -> (S',) float32 mono at dst_rate, with FFmpeg's band-limited resampler."""
    if src_rate == dst_rate or audio.size == 0:
        return audio.astype(np.float32, copy=False)
    import av

    mono = np.ascontiguousarray(audio, dtype=np.float32)[None]  # (1, S)
    frame = av.AudioFrame.from_ndarray(mono, format="fltp", layout="mono")
    frame.sample_rate, frame.pts, frame.time_base = int(src_rate), 0, Fraction(1, int(src_rate))
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=int(dst_rate))
    out = [f.to_ndarray()[0] for f in [*resampler.resample(frame), *resampler.resample(None)]]
    return np.clip(np.concatenate(out) if out else np.zeros(0, np.float32), -1.0, 1.0).astype(np.float32)
