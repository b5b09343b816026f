"""Small media files for tests, written with PyAV, soundfile, wave and PIL (never with avllm.media itself).

    a = tone(440.0, seconds=1.0)                               # (48000,) float32 sine, amplitude 0.5
    v = make_video(tmp_path / "v.mp4", colors=[RED, GREEN])    # 1 s of red then 1 s of green, 8 fps, 440 Hz tone
    w = make_wav(tmp_path / "a.wav", a, 48000, subtype="PCM_24", channels=2)
    i = make_image(tmp_path / "i.png", mode="P", color=RED)
    dominant_frequency(audio, 48000)                           # Hz of the FFT peak

Video containers get the codecs a browser or a phone would give them: mp4 / mov / mkv H.264 + AAC, webm VP8 + Opus,
avi MPEG-4 + 16-bit PCM; audio files mp3, m4a (AAC), flac, ogg (Opus).
"""

from __future__ import annotations

import wave
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np

RED, GREEN, BLUE = (220, 30, 30), (30, 200, 40), (30, 40, 220)
WHITE, BLACK, GREY = (255, 255, 255), (0, 0, 0), (128, 128, 128)

_CODECS = {  # container extension -> (video codec, audio codec)
    ".mp4": ("libx264", "aac"),
    ".mov": ("libx264", "aac"),
    ".mkv": ("libx264", "aac"),
    ".webm": ("libvpx", "libopus"),
    ".avi": ("mpeg4", "pcm_s16le"),
    ".mp3": (None, "libmp3lame"),
    ".m4a": (None, "aac"),
    ".flac": (None, "flac"),
    ".ogg": (None, "libopus"),
}


def tone(freq: float, seconds: float, sample_rate: int = 48000, amp: float = 0.5) -> np.ndarray:
    """A sine: (round(seconds * sample_rate),) float32 in [-amp, amp]."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_frequency(audio: np.ndarray, sample_rate: int) -> float:
    """Frequency (Hz) of the largest FFT magnitude of a (S,) signal, Hann-windowed, with parabolic refinement."""
    x = np.asarray(audio, dtype=np.float64) * np.hanning(len(audio))
    mag = np.abs(np.fft.rfft(x))
    k = int(np.argmax(mag[1:])) + 1
    if 0 < k < len(mag) - 1:  # parabolic interpolation on log magnitude between bins
        a, b, c = np.log(mag[k - 1 : k + 2] + 1e-12)
        k = k + 0.5 * (a - c) / (a - 2 * b + c)
    return float(k * sample_rate / len(audio))


def color_frames(colors, frames_per_color: int, size: tuple[int, int] = (32, 48)) -> np.ndarray:
    """Solid-colour frames, ``frames_per_color`` of each colour in order: (T, H, W, 3) uint8."""
    h, w = size
    return np.concatenate([np.full((frames_per_color, h, w, 3), c, np.uint8) for c in colors])


def encode(
    path: str | Path,
    frames: np.ndarray | None,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = 48000,
    *,
    faststart: bool = True,
) -> Path:
    """Encode (T, H, W, 3) uint8 frames and/or (S,) float32 mono audio into the container the extension names
    (audio-only containers take frames=None)."""
    import av

    path = Path(path)
    vcodec, acodec = _CODECS[path.suffix.lower()]
    options = {"movflags": "+faststart"} if faststart and path.suffix.lower() in (".mp4", ".mov", ".m4a") else {}
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", options=options) as out:
        vs = as_ = None
        if frames is not None and len(frames):
            vs = out.add_stream(vcodec, rate=rate)
            vs.height, vs.width = frames.shape[1:3]
            vs.pix_fmt = "yuv420p"
        if audio is not None:
            as_ = out.add_stream(acodec, rate=sample_rate)
            as_.layout = "mono"
        chunks = []
        if as_ is not None:
            for s in range(0, len(audio), 1024):
                chunk = audio[None, s : s + 1024].astype(np.float32)  # (1, n)
                f = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                f.sample_rate, f.pts, f.time_base = sample_rate, s, Fraction(1, sample_rate)
                chunks.append(f)
        for i, img in enumerate(frames if vs is not None else []):  # interleaved, as real muxers write
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            f.pts, f.time_base = i, 1 / rate
            out.mux(vs.encode(f))
            while chunks and chunks[0].pts / sample_rate < (i + 1) / rate:
                out.mux(as_.encode(chunks.pop(0)))
        for f in chunks:
            out.mux(as_.encode(f))
        if vs is not None:
            out.mux(vs.encode(None))
        if as_ is not None:
            out.mux(as_.encode(None))
    return path


def make_video(
    path: str | Path,
    colors=(RED, GREEN, BLUE),
    seconds_per_color: float = 1.0,
    fps: float = 8.0,
    size: tuple[int, int] = (32, 48),
    tone_hz: float | None = 440.0,
    sample_rate: int = 48000,
    **kw,
) -> Path:
    """A video that shows each colour for seconds_per_color, with a tone of tone_hz (None: no audio stream)."""
    n = int(round(seconds_per_color * fps))
    frames = color_frames(colors, n, size)
    audio = tone(tone_hz, len(colors) * seconds_per_color, sample_rate) if tone_hz else None
    return encode(path, frames, fps, audio, sample_rate, **kw)


def make_wav(
    path: str | Path, audio: np.ndarray, sample_rate: int, subtype: str = "PCM_16", channels: int = 1
) -> Path:
    """Write (S,) mono audio as a wav of ``subtype`` (PCM_U8, PCM_16, PCM_24, PCM_32, FLOAT, DOUBLE), the signal
    copied to every one of ``channels`` channels."""
    import soundfile as sf

    data = np.repeat(np.asarray(audio, np.float64)[:, None], channels, axis=1)  # (S, C)
    sf.write(str(path), data, sample_rate, subtype=subtype, format="WAV")
    return Path(path)


def make_long_wav(path: str | Path, seconds: float, sample_rate: int = 8000, freq: float = 440.0) -> Path:
    """A long 16-bit mono wav written in chunks (an hour at 8 kHz is 58 MB on disk, little memory)."""
    chunk = tone(freq, 10.0, sample_rate)
    chunk = np.round(chunk * 32767).astype("<i2").tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        for _ in range(int(np.ceil(seconds / 10.0))):
            w.writeframes(chunk)
    return Path(path)


def make_image(
    path: str | Path, mode: str = "RGB", size: tuple[int, int] = (24, 40), color=RED, alpha: int = 255
) -> Path:
    """A solid image of ``color`` in PIL ``mode`` (RGB, RGBA, L, LA, P, I;16, 1, CMYK, F) or RGB;16 (48-bit PNG);
    size is (H, W).
    Grey modes get the colour's luminance; I;16 spans the full 16-bit range; RGBA / LA use ``alpha``."""
    from PIL import Image

    h, w = size
    grey = int(round(0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]))
    if mode == "I;16":
        img = Image.fromarray(np.full((h, w), grey * 257, np.uint16), mode="I;16")
    elif mode == "F":
        img = Image.fromarray(np.full((h, w), grey / 255.0, np.float32), mode="F")
    elif mode == "L":
        img = Image.new("L", (w, h), grey)
    elif mode == "1":  # thresholded at 128, no dithering
        img = Image.new("L", (w, h), grey).convert("1", dither=Image.Dither.NONE)
    elif mode == "LA":
        img = Image.new("LA", (w, h), (grey, alpha))
    elif mode == "RGBA":
        img = Image.new("RGBA", (w, h), (*color, alpha))
    elif mode == "P":
        img = Image.new("RGB", (w, h), color).quantize(colors=4)
    elif mode == "CMYK":
        img = Image.new("RGB", (w, h), color).convert("CMYK")
    elif mode == "RGB;16":  # 48-bit RGB PNG (PIL cannot write one; OpenCV can)
        import cv2

        bgr = np.full((h, w, 3), color[::-1], np.uint16) * 257
        cv2.imwrite(str(path), bgr)
        return Path(path)
    else:
        img = Image.new(mode, (w, h), color)
    fmt = "JPEG" if Path(path).suffix.lower() in (".jpg", ".jpeg") else ("TIFF" if mode in ("F", "CMYK") else None)
    img.save(str(path), format=fmt)
    return Path(path)


def truncate(src: str | Path, dst: str | Path, fraction: float) -> Path:
    """Copy the first ``fraction`` of src's bytes to dst."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return Path(dst)


def garbage(path: str | Path, nbytes: int = 20000, seed: int = 0) -> Path:
    """Random bytes."""
    Path(path).write_bytes(np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8).tobytes())
    return Path(path)


def zip_archive(path: str | Path) -> Path:
    """A real zip archive (whatever the name says)."""
    with zipfile.ZipFile(str(path), "w") as z:
        z.writestr("notes.txt", "not a video " * 500)
    return Path(path)


def subtitle_only_mkv(path: str | Path) -> Path:
    """A Matroska file whose only track is WebVTT subtitles (remuxed by PyAV from a WebVTT text)."""
    import av

    path = Path(path)
    vtt = path.with_suffix(".vtt")
    vtt.write_text("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nhello\n\n00:00:01.000 --> 00:00:02.000\nbye\n")
    with av.open(str(vtt)) as src, av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream_from_template(src.streams.subtitles[0])
        for packet in src.demux(src.streams.subtitles[0]):
            if packet.dts is None:  # the flush packet
                continue
            packet.stream = stream
            out.mux(packet)
    vtt.unlink()
    return path
