"""Media in and out: the one place that turns files into a ``Clip`` and writes clips back as browser-playable mp4.

    clip = load_clip("cat.mp4", fps=8.0)                 # video with its audio track
    clip = load_clip(image="dog.png", audio="bark.wav")  # a still image held for as long as the audio lasts
    clip.frames      # (T, H, W, 3) uint8 RGB
    clip.audio       # (S,) float32 mono in [-1, 1] at clip.sample_rate
    clip.flags       # what was missing or changed (silent, truncated, downscaled, ...), with readable notes
    write_video("out.mp4", clip.frames, clip.fps, clip.audio, clip.sample_rate)   # H.264 yuv420p + AAC

All decoding and encoding of audio and video goes through PyAV (which bundles FFmpeg); images go through PIL.
Files are decoded by content, so a misnamed file that decodes is used as what it is. Every failure is a
``MediaError`` with a message that names the file, and FFmpeg's own errors never escape:
    MediaError               missing path (the message names it)
    CorruptMediaError        garbage, cut short beyond use, or not media at all (a zip renamed .mp4)
    UnsupportedMediaError    unknown extension, or no usable stream (e.g. load_audio of a silent video)
    EmptyMediaError          0-byte file, zero duration, zero frames and no sound
    InvalidAudioError        NaN or infinite samples
A file that decodes only in part (a cut-off download) gives what decodes, with flags.partial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from avllm.config import MediaConfig

__all__ = [
    "MediaError",
    "CorruptMediaError",
    "UnsupportedMediaError",
    "EmptyMediaError",
    "InvalidAudioError",
    "MediaFlags",
    "Clip",
    "VIDEO_EXTS",
    "AUDIO_EXTS",
    "IMAGE_EXTS",
    "load_clip",
    "load_clip_from_config",
    "load_audio",
    "load_image",
    "write_video",
    "write_audio",
    "clip_to_mp4",
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

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB; T may be 0 for audio-only input; read-only view for a still
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
# Reading

VIDEO_EXTS = frozenset({".mp4", ".m4v", ".webm", ".mov", ".mkv", ".avi"})
AUDIO_EXTS = frozenset({".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif", ".aiff"})
IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
_KINDS = {"video": VIDEO_EXTS, "audio": AUDIO_EXTS | VIDEO_EXTS, "image": IMAGE_EXTS}


def _kind_of(path: Path) -> str | None:
    """'video', 'audio' or 'image' from the extension; None when there is no extension (then content decides)."""
    ext = path.suffix.lower()
    if not ext:
        return None
    for kind, exts in (("video", VIDEO_EXTS), ("audio", AUDIO_EXTS), ("image", IMAGE_EXTS)):
        if ext in exts:
            return kind
    known = ", ".join(sorted(e[1:] for e in VIDEO_EXTS | AUDIO_EXTS | IMAGE_EXTS))
    raise UnsupportedMediaError(f"'{path.name}': unknown file type '{ext}' (known: {known})")


def _check_file(path: str | Path, what: str) -> Path:
    """The path as a Path if it names a non-empty file whose extension suits ``what``; MediaError otherwise."""
    if path is None or str(path) == "":
        raise MediaError(f"no {what} file given")
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{what} file not found: {p}")
    if not p.is_file():
        raise MediaError(f"{what} path is not a file: {p}")
    kind = _kind_of(p)
    if kind is not None and p.suffix.lower() not in _KINDS[what]:
        article = "an" if what[0] in "aeiou" else "a"
        raise UnsupportedMediaError(f"'{p.name}' is not {article} {what} file (its extension says {kind})")
    if p.stat().st_size == 0:
        raise EmptyMediaError(f"{what} file '{p.name}' is empty (0 bytes)")
    return p


def _ffmpeg_reason(err: Exception) -> str:
    """FFmpeg's one-line reason, without error numbers or paths."""
    reason = getattr(err, "strerror", None) or str(err)
    return str(reason).split(":")[0].strip() or type(err).__name__


def _open_container(path: Path, what: str):
    import av

    try:
        return av.open(str(path), mode="r")
    except av.error.InvalidDataError:
        raise CorruptMediaError(
            f"{what} file '{path.name}' could not be decoded: it is damaged, truncated, or not a media file"
        ) from None
    except (av.error.FFmpegError, OSError) as err:
        raise CorruptMediaError(f"{what} file '{path.name}' could not be opened ({_ffmpeg_reason(err)})") from None


def _audio_to_mono(a: np.ndarray, planar: bool, channels: int) -> np.ndarray:
    """Raw samples as PyAV gives them, (C, S) planar or (1, S*C) packed, any sample type -> (S,) float32 mono."""
    if not planar:
        a = a.reshape(-1, channels).T  # packed (1, S*C) -> (C, S)
    if a.dtype == np.uint8:
        a = (a.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / float(2 ** (8 * a.dtype.itemsize - 1))
    return a.astype(np.float32, copy=False).mean(axis=0, dtype=np.float32)  # (C, S) -> (S,)


def _fit(w: int, h: int, max_side: int) -> tuple[int, int]:
    """(w, h) scaled down so that the long side is max_side (aspect kept); unchanged when it already fits."""
    if max(w, h) <= max_side:
        return w, h
    s = max_side / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def _video_rgb(frame, max_side: int, flags: MediaFlags, reformatter) -> np.ndarray:
    """One decoded PyAV video frame -> (H, W, 3) uint8 RGB, downscaled to fit max_side.

    ``reformatter`` is one ``av.video.reformatter.VideoReformatter`` shared by all frames of a file: it keeps its
    scaler between frames, where ``frame.reformat`` builds a new one (threads included) for every frame, which cost
    ~2 ms a frame, several times the H.264 decode of a 224 px frame.
    """
    w, h = _fit(frame.width, frame.height, max_side)
    if (w, h) != (frame.width, frame.height):
        flags.set("downscaled", f"frames downscaled from {frame.width}x{frame.height} to {w}x{h}")
    return reformatter.reformat(frame, width=w, height=h, format="rgb24", interpolation="AREA").to_ndarray()


def _declared_end(stream, rate: int) -> tuple[int | None, int]:
    """(declared length in samples at ``rate``, codec frame size) of an audio stream whose codec codes whole frames
    (AAC: 1024 samples, MP3: 1152), which decodes up to one frame of padding past that length; (None, 0) when the
    codec has no fixed frame size (PCM, FLAC) or the stream declares no duration or starts off zero."""
    pad = int(stream.codec_context.frame_size or 0)
    if pad <= 0 or not stream.duration or stream.time_base is None or stream.start_time not in (None, 0):
        return None, 0
    return round(stream.duration * stream.time_base * rate), pad  # a Fraction: round() gives an int


def _drain(stream) -> list:
    """The frames a video decoder still holds when its input breaks off (B-frame reordering, frame threads)."""
    import av

    out = []
    try:
        for frame in stream.decode(None):  # None flushes the decoder
            if frame.time_base is None:  # frames flushed this way come without it
                frame.time_base = stream.time_base
            out.append(frame)
    except av.error.FFmpegError:
        pass
    return out


@dataclass
class _Decoded:
    """What one pass over a container gave."""

    frames: list[np.ndarray]  # each (H, W, 3) uint8, sampled at `fps`
    fps: float
    video_end: float  # seconds covered by the video stream (0 when none)
    audio: np.ndarray  # (S,) float32 mono at `rate`; empty when no audio stream
    rate: int
    has_video: bool
    still: bool  # the "video" was one image (an image file decoded by content)
    flags: MediaFlags


_INTERLEAVE_S = 10.0  # how far (s) streams of one file may lie apart in it (FFmpeg's default max_interleave_delta)


def _decode(
    path: Path, what: str, *, video: bool, audio: bool, fps: float, max_seconds: float, max_side: int
) -> _Decoded:
    """One pass over the container: sample frames at fps and collect audio, stopping at max_seconds.

    Frames are sampled on the grid k / fps; each sample is the source frame shown at that time. Demuxing stops
    as soon as every wanted stream has passed max_seconds (or any packet lies _INTERLEAVE_S beyond it: a stream
    that ended early never passes it), so an hour-long file costs only the part that is kept.
    """
    import av

    flags = MediaFlags()
    with _open_container(path, what) as container:
        vs = None
        if video:
            attached = av.stream.Disposition.attached_pic
            vs = next((s for s in container.streams.video if not s.disposition & attached), None)
        if vs is not None:
            vs.thread_type = "AUTO"  # frame threads as well as slice threads, one per core (as the ffmpeg CLI does)
        ast = container.streams.audio[0] if audio and container.streams.audio else None
        kinds = {s.type for s in container.streams}
        if not kinds & {"video", "audio"}:
            if "subtitle" in kinds:
                raise UnsupportedMediaError(f"{what} file '{path.name}' holds only subtitles, no video or audio")
            raise CorruptMediaError(f"{what} file '{path.name}' holds no video or audio: it is damaged or cut short")
        if vs is None and ast is None:
            have = "no video or audio stream" if video and audio else f"no {'video' if video else 'audio'} stream"
            raise UnsupportedMediaError(f"{what} file '{path.name}' has {have}")
        still = vs is not None and (container.format.name.endswith("_pipe") or container.format.name == "image2")
        declared = container.duration / 1e6 if container.duration and container.duration > 0 else None
        src_fps = float(vs.average_rate or vs.guessed_rate or 0) if vs is not None and not still else 0.0
        fps = min(fps, src_fps) if src_fps > 0 else fps
        t0 = float(vs.start_time * vs.time_base) if vs is not None and vs.start_time is not None else 0.0

        frames: list[np.ndarray] = []
        reformatter = av.video.reformatter.VideoReformatter()
        prev = None  # (av.VideoFrame, time) of the last decoded frame, not yet past the sampling grid
        last_dur = 1.0 / src_fps if src_fps > 0 else 1.0 / fps
        runs: list[tuple[tuple[bool, int], list[np.ndarray]]] = []  # raw sample arrays, one run per sample layout
        rate = int(ast.rate) if ast is not None else 0
        limit_samples = int(round(max_seconds * rate))
        end, pad = _declared_end(ast, rate) if ast is not None else (None, 0)
        n_samples = 0
        video_done, audio_done = vs is None, ast is None
        truncated, damaged = False, None
        stop_at = max_seconds + _INTERLEAVE_S + t0

        demux = container.demux(*[s for s in (vs, ast) if s is not None])
        while not (video_done and audio_done):
            try:
                packet = next(demux)
                if packet.pts is not None and packet.time_base and packet.pts * packet.time_base > stop_at:
                    truncated = True
                    break
                if (packet.stream is vs and video_done) or (packet.stream is ast and audio_done):
                    continue
                stream, decoded = packet.stream, packet.decode()
            except StopIteration:
                break
            except av.error.FFmpegError as err:
                damaged = _ffmpeg_reason(err)
                if vs is None or video_done:
                    break
                stream, decoded = vs, _drain(vs)  # the good frames the decoder still holds, then stop
            for frame in decoded:
                if stream is vs and not video_done:
                    t = (frame.time if frame.time is not None else len(frames) / fps) - t0
                    if t >= max_seconds - 1e-9:
                        video_done, truncated = True, True
                        break
                    # every grid time before this frame shows the previous frame
                    while prev is not None and len(frames) / fps < t - 1e-6:
                        frames.append(_video_rgb(prev[0], max_side, flags, reformatter))
                    prev = (frame, t)
                    if frame.duration:
                        last_dur = float(frame.duration * frame.time_base)
                    if still:
                        video_done = True
                elif stream is ast and not audio_done:
                    raw, n = frame.to_ndarray(), frame.samples  # converted in bulk below: per frame is slow
                    key = (frame.format.is_planar, frame.layout.nb_channels)
                    if n_samples + n > limit_samples:
                        # past a declared end within the limit by at most the codec's padding: nothing is cut
                        padding = end is not None and end <= limit_samples and n_samples + n <= end + pad
                        n = limit_samples - n_samples
                        raw = raw[:, : n if key[0] else n * key[1]]
                        audio_done, truncated = True, truncated or not padding
                    if not runs or runs[-1][0] != key:
                        runs.append((key, []))
                    runs[-1][1].append(raw)
                    n_samples += n
            if damaged is not None:
                break

        video_end = 0.0
        if prev is not None:
            video_end = min(prev[1] + last_dur, max_seconds) if not still else 0.0
            while len(frames) / fps < video_end - 1e-6 or not frames:
                frames.append(_video_rgb(prev[0], max_side, flags, reformatter))
    monos = [_audio_to_mono(np.concatenate(arrays, axis=1), *key) for key, arrays in runs]
    samples = np.concatenate(monos) if monos else np.zeros(0, np.float32)
    if end is not None and end < samples.shape[0] <= end + pad:
        samples = samples[:end]  # the encoder's padding of its last frame (a 5 s AAC track decodes to 5.013 s)
    finite = np.isfinite(samples)
    if not finite.all():
        at = f"{np.argmin(finite) / rate:.2f} s"
        raise InvalidAudioError(f"{what} file '{path.name}' has NaN or infinite samples (first at {at})")

    got = max(video_end, samples.shape[0] / rate if rate else 0.0)
    if damaged is None and not truncated and _riff_is_cut(path):
        damaged = "the file ends before its declared length"
    if damaged is not None and not frames and samples.size == 0:
        raise CorruptMediaError(f"{what} file '{path.name}' could not be decoded ({damaged})")
    if truncated:
        of = f" of {declared:.0f} s" if declared else ""
        flags.set("truncated", f"cut to {max_seconds:g} s{of}")
    elif damaged is not None:
        flags.set("partial", f"damaged file: decoded only the first {got:.1f} s ({damaged})")
    elif declared and not still and got < declared - max(0.5, 0.1 * declared):
        flags.set("partial", f"damaged file: decoded only {got:.1f} s of {declared:.1f} s")
    return _Decoded(frames, fps, video_end, samples, rate, vs is not None, still, flags)


def _riff_is_cut(path: Path) -> bool:
    """True when a RIFF/WAVE file's data chunk claims more bytes than the file holds (a cut-off wav, which FFmpeg
    reads up to the cut without complaint)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return False
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk, n = f.read(4), int.from_bytes(f.read(4), "little")
            if chunk == b"data":
                return n not in (0, 0xFFFFFFFF) and pos + 8 + n > size  # 0 / max: a stream of unknown length
            pos += 8 + n + (n & 1)
    return False


def _finish_audio(samples: np.ndarray, rate: int, sample_rate: int, flags: MediaFlags) -> np.ndarray:
    """(S,) float32 mono at rate -> (S',) float32 mono at sample_rate, clipped to [-1, 1]."""
    if rate != sample_rate and samples.size:
        samples = _resample(samples, rate, sample_rate)
        flags.set("resampled", f"audio resampled from {rate} Hz to {sample_rate} Hz")
    return np.clip(samples, -1.0, 1.0).astype(np.float32, copy=False)


def load_audio(
    path: str | Path, sample_rate: int = 48000, max_seconds: float = 60.0
) -> tuple[np.ndarray, MediaFlags]:
    """Decode the first audio stream of a file (audio or video) to mono.

    Returns ((S,) float32 mono in [-1, 1] at sample_rate, flags). Any sample format (8/16/24/32-bit int, float,
    double), 1-8 channels (averaged) and any rate (resampled; flags.resampled). Only the first max_seconds are
    decoded (flags.truncated). Raises InvalidAudioError on NaN/inf samples, EmptyMediaError when no sample decodes,
    CorruptMediaError / UnsupportedMediaError when the file is not usable audio.
    """
    p = _check_file(path, "audio")
    d = _decode(p, "audio", video=False, audio=True, fps=1.0, max_seconds=max_seconds, max_side=1)
    if d.audio.size == 0:
        raise EmptyMediaError(f"audio file '{p.name}' holds no audio samples (zero duration)")
    return _finish_audio(d.audio, d.rate, sample_rate, d.flags), d.flags


def _pil_to_rgb(img) -> np.ndarray:
    """A PIL image of any mode -> (H, W, 3) uint8 RGB. Transparency is composited over white; 16-bit is scaled."""
    mode = img.mode
    if mode in ("P", "PA"):
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode.startswith("I") or mode == "F":  # 16/32-bit integer or float grey
        a = np.asarray(img).astype(np.float64)
        if mode == "F":
            scale = 1.0 if a.size and np.nanmax(a) <= 1.0 else 255.0
        else:
            scale = 65535.0 if mode.startswith("I;16") or (a.size and a.max() > 255) else 255.0
        a = np.clip(np.nan_to_num(a) / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=-1)  # (H, W) -> (H, W, 3)
    if mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = np.asarray(img.convert("RGBA")).astype(np.float32)  # (H, W, 4)
        alpha = rgba[..., 3:] / 255.0
        return (rgba[..., :3] * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    if mode != "RGB":
        img = img.convert("RGB")
    return np.array(img, dtype=np.uint8)


def load_image(path: str | Path, max_side: int = 1024) -> tuple[np.ndarray, MediaFlags]:
    """Read an image file as ((H, W, 3) uint8 RGB, flags).

    Any PIL mode: grey, RGBA / LA (composited over white), palette, 16-bit and float grey, CMYK. EXIF rotation is
    applied. An image whose long side exceeds max_side is downscaled to it (flags.downscaled). A 1x1 image is valid.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = _check_file(path, "image")
    flags = MediaFlags()
    try:
        with Image.open(p) as img:
            if img.format == "JPEG":
                img.draft(img.mode, (max_side, max_side))  # decode big JPEGs at a reduced size when possible
            img = ImageOps.exif_transpose(img)
            rgb = _pil_to_rgb(img)
    except UnidentifiedImageError:
        raise CorruptMediaError(f"image file '{p.name}' is damaged or not an image") from None
    except Image.DecompressionBombError:
        raise UnsupportedMediaError(f"image file '{p.name}' is too large to open safely") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise CorruptMediaError(f"image file '{p.name}' could not be decoded ({err})") from None
    h, w = rgb.shape[:2]
    nw, nh = _fit(w, h, max_side)
    if (nw, nh) != (w, h):
        rgb = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.Resampling.LANCZOS, reducing_gap=3.0))
        flags.set("downscaled", f"image downscaled from {w}x{h} to {nw}x{nh}")
    return np.ascontiguousarray(rgb), flags


def _silence(duration: float, sample_rate: int, flags: MediaFlags, why: str) -> np.ndarray:
    flags.set("silent", why)
    return np.zeros(int(round(duration * sample_rate)), np.float32)


def _still_clip(
    img: np.ndarray, flags: MediaFlags, audio: np.ndarray | None, *, fps: float, sample_rate: int, duration: float,
    source: str
) -> Clip:
    """A clip that holds one image for `duration` seconds; frames are a read-only broadcast view of the image."""
    flags.set("still_image", "frames repeat one still image")
    if audio is None:
        audio = _silence(duration, sample_rate, flags, "no audio: the audio is silence")
    n = max(1, int(np.ceil(duration * fps - 1e-6)))
    frames = np.broadcast_to(img, (n, *img.shape))  # (T, H, W, 3), no copy
    return Clip(frames, np.arange(n) / fps, fps, audio, sample_rate, duration, flags, source)


def load_clip(
    video: str | Path | None = None,
    *,
    image: str | Path | None = None,
    audio: str | Path | None = None,
    fps: float = 8.0,
    sample_rate: int = 48000,
    max_seconds: float = 60.0,
    max_side: int = 1024,
    still_seconds: float | None = None,
) -> Clip:
    """Load a clip from a video file; or an image and an audio file; or an image alone; or audio alone.

    video: mp4, webm, mov, mkv or avi (decoded by content, so a misnamed file still works when it decodes). An
        image or audio file passed here is treated as such. With `audio` as well, that file replaces the video's
        own sound. A video without an audio stream gives a silent clip; one without a video stream an audio-only
        clip (T = 0, flags.no_video).
    image: a still image; the clip lasts as long as `audio`, else `still_seconds` (default 1 s), frames repeated
        at fps (a read-only broadcast view: copy before writing into it).
    fps: frames sampled per second (the source's rate when that is lower). sample_rate: audio rate (Hz), mono.
    max_seconds: longer inputs are cut here (flags.truncated); only that part is decoded.
    max_side: frames with a longer side are downscaled to it (flags.downscaled).
    Returns a Clip; raises the MediaError subclasses listed in the module docstring.
    """
    if fps <= 0 or sample_rate < 1000 or max_seconds <= 0 or max_side < 1:
        raise ValueError(f"bad media settings: fps={fps}, sample_rate={sample_rate}, max_seconds={max_seconds}, "
                         f"max_side={max_side}")
    if video is not None and image is not None:
        raise ValueError("give a video or an image, not both")
    if video is None and image is None and audio is None:
        raise ValueError("give a video, an image, or an audio file")
    if video is not None:  # an image or audio file given as `video` is loaded as what it is
        kind = _kind_of(Path(video))
        if kind == "image":
            video, image = None, video
        elif kind == "audio" and audio is None:
            video, audio = None, video

    if video is not None:
        return _load_video_clip(Path(video), audio, fps, sample_rate, max_seconds, max_side, still_seconds)
    if image is not None:
        img, flags = load_image(image, max_side)
        sound = None
        if audio is not None:
            sound, aflags = load_audio(audio, sample_rate, max_seconds)
            flags.merge(aflags)
            duration = sound.shape[0] / sample_rate
        else:
            duration = 1.0 if still_seconds is None else float(still_seconds)
            if duration <= 0:
                raise ValueError(f"still_seconds must be positive, got {still_seconds}")
            if duration > max_seconds:
                flags.set("truncated", f"cut to {max_seconds:g} s of {duration:g} s")
                duration = max_seconds
        source = Path(image).name + (f" + {Path(audio).name}" if audio is not None else "")
        return _still_clip(img, flags, sound, fps=fps, sample_rate=sample_rate, duration=duration, source=source)

    sound, flags = load_audio(audio, sample_rate, max_seconds)
    flags.set("no_video", "audio only: no video frames")
    empty = np.zeros((0, 0, 0, 3), np.uint8)
    return Clip(empty, np.zeros(0), fps, sound, sample_rate, sound.shape[0] / sample_rate, flags, Path(audio).name)


def _load_video_clip(
    path: Path, audio: str | Path | None, fps: float, sample_rate: int, max_seconds: float, max_side: int,
    still_seconds: float | None,
) -> Clip:
    p = _check_file(path, "video")
    d = _decode(p, "video", video=True, audio=audio is None, fps=fps, max_seconds=max_seconds, max_side=max_side)
    flags, source = d.flags, p.name
    sound = None
    if audio is not None:
        sound, aflags = load_audio(audio, sample_rate, max_seconds)
        flags.merge(aflags)
        source += f" + {Path(audio).name}"
    elif d.audio.size:
        sound = _finish_audio(d.audio, d.rate, sample_rate, flags)

    if d.still:  # an image file decoded by content: hold it like load_clip(image=...)
        duration = sound.shape[0] / sample_rate if sound is not None else (still_seconds or 1.0)
        duration = min(duration, max_seconds)
        return _still_clip(d.frames[0], flags, sound, fps=d.fps, sample_rate=sample_rate, duration=duration,
                           source=source)
    if not d.frames:
        if sound is None:
            raise EmptyMediaError(f"video file '{p.name}' has no frames and no audio (zero duration)")
        flags.set("no_video", "audio only: no video frames" if not d.has_video else "the video stream is empty")
        empty = np.zeros((0, 0, 0, 3), np.uint8)
        return Clip(empty, np.zeros(0), d.fps, sound, sample_rate, sound.shape[0] / sample_rate, flags, source)

    frames = np.stack(d.frames)  # (T, H, W, 3)
    duration = max(d.video_end, sound.shape[0] / sample_rate if sound is not None else 0.0)
    if sound is None:
        why = "no audio stream: the audio is silence" if audio is None else "the audio is silence"
        sound = _silence(duration, sample_rate, flags, why)
    times = np.arange(frames.shape[0]) / d.fps
    return Clip(frames, times, d.fps, sound, sample_rate, duration, flags, source)


def load_clip_from_config(
    cfg: MediaConfig, video: str | Path | None = None, *, image: str | Path | None = None,
    audio: str | Path | None = None,
) -> Clip:
    """``load_clip`` with fps, sample_rate, max_seconds and max_side taken from a MediaConfig."""
    return load_clip(video, image=image, audio=audio, fps=cfg.fps, sample_rate=cfg.sample_rate,
                     max_seconds=cfg.max_seconds, max_side=cfg.max_side)


# ----------------------------------------------------------------------------------------------------------------
# Writing


def _check_frames(frames: np.ndarray) -> np.ndarray:
    """Validate (T, H, W, 3|4) or grey (T, H, W) frames, uint8 or float in [0, 1]; returns them unconverted."""
    frames = np.asarray(frames)
    if (frames.ndim == 4 and frames.shape[-1] in (3, 4)) or frames.ndim == 3:
        if frames.dtype == np.uint8 or np.issubdtype(frames.dtype, np.floating):
            return frames
        raise ValueError(f"frames must be uint8, or float in [0, 1]; got {frames.dtype}")
    raise ValueError(f"frames must be (T, H, W, 3), got shape {frames.shape}")


def _frame_rgb24(img: np.ndarray) -> np.ndarray:
    """One frame (H, W, 3|4) or (H, W), uint8 or float in [0, 1] -> (H', W', 3) uint8 with even H' and W'."""
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)  # grey -> (H, W, 3)
    img = img[..., :3]
    if img.dtype != np.uint8:
        img = (np.clip(np.nan_to_num(img), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    # H.264 with yuv420p needs even sides: repeat the last row / column once when a side is odd.
    h, w = img.shape[:2]
    if h % 2 or w % 2:
        img = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")  # (H', W', 3)
    return np.ascontiguousarray(img)


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
    frames = _check_frames(frames)
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
            vstream.height, vstream.width = _frame_rgb24(frames[0]).shape[:2]
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
            vf = av.VideoFrame.from_ndarray(_frame_rgb24(img), format="rgb24")
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


def clip_to_mp4(clip: Clip, path: str | Path) -> Path:
    """Write a Clip as a browser-playable mp4 (its audio too, unless the clip is silent). Returns the path."""
    audio = None if clip.flags.silent else clip.audio
    return write_video(path, clip.frames, clip.fps, audio, clip.sample_rate)


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
