"""A corpus of bad, odd and extreme inputs, written by code, for the resilience checks of every entry point.

    for case in CASES:                       # 40 named cases
        inputs = case.build(root)            # writes root/<case.name>/... and says which slots get which file
        inputs.video / inputs.image / inputs.audio   # paths (None where the slot stays empty)
        case.expect                          # "result" or "error"; case.words: what an error message must name

Each case writes its files into a folder of its own and puts them into the slots a person would: ``video`` (the
video upload / the CLI's positional argument) or ``image`` and / or ``audio`` (the Image + audio tab / the CLI's
--image and --audio). A bad image goes in with a good sound and a bad sound with a good image, so that each case
tests one thing. ``expect`` is what a careful reader of ``avllm.media`` predicts: a usable file gives a result
(with flags such as silent, truncated, downscaled), an unusable one a readable ``MediaError`` message that names the
file. Cases whose outcome depends on where an encoder's bytes happen to be cut say "either".

No file of the corpus is committed: every one is made by ``media_factory`` functions, PyAV, soundfile or PIL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import media_factory as mf
import numpy as np

Expect = Literal["result", "error", "either"]

GOOD_SECONDS = 1.0  # length of the good partner sound / the good clip


@dataclass(frozen=True)
class Inputs:
    """The files of one case, by slot (None: the slot stays empty)."""

    video: Path | None = None
    image: Path | None = None
    audio: Path | None = None

    def cli_args(self) -> list[str]:
        """The arguments of ``python -m avllm.predict`` that give these files (without --out)."""
        args = [str(self.video)] if self.video else []
        if self.image:
            args += ["--image", str(self.image)]
        if self.audio:
            args += ["--audio", str(self.audio)]
        return args

    def names(self) -> list[str]:
        return [p.name for p in (self.video, self.image, self.audio) if p is not None]


@dataclass(frozen=True)
class Case:
    """One bad input. ``make(folder)`` writes the files into an existing empty folder and returns the slots."""

    name: str
    make: Callable[[Path], Inputs]
    expect: Expect
    words: tuple[str, ...] = ()  # each must appear in the error message (besides the culprit file's name)
    culprit: str | None = None  # the file name an error must name (default: the first file of the case)
    what: str = ""

    def build(self, root: Path) -> Inputs:
        folder = Path(root) / self.name
        folder.mkdir(parents=True, exist_ok=True)
        return self.make(folder)

    def culprit_name(self, inputs: Inputs) -> str:
        return self.culprit or inputs.names()[0]


# ----------------------------------------------------------------------------------------------------------------
# Good partners and the good clip of the health checks


def good_clip(path: Path) -> Path:
    """A good 1 s clip (red then green, 8 fps, 440 Hz): the normal request between bad ones."""
    return mf.make_video(path, colors=(mf.RED, mf.GREEN), seconds_per_color=GOOD_SECONDS / 2, size=(48, 64))


def _good_wav(d: Path) -> Path:
    return mf.make_wav(d / "partner.wav", mf.tone(330.0, GOOD_SECONDS), 48000)


def _good_png(d: Path) -> Path:
    return mf.make_image(d / "partner.png", size=(48, 64), color=mf.BLUE)


def _with_partner_sound(image: Callable[[Path], Path]) -> Callable[[Path], Inputs]:
    return lambda d: Inputs(image=image(d), audio=_good_wav(d))


def _with_partner_image(audio: Callable[[Path], Path]) -> Callable[[Path], Inputs]:
    return lambda d: Inputs(image=_good_png(d), audio=audio(d))


def _video(make: Callable[[Path], Path]) -> Callable[[Path], Inputs]:
    return lambda d: Inputs(video=make(d))


# ----------------------------------------------------------------------------------------------------------------
# Writers for what media_factory does not make directly


def _cut(d: Path, fraction: float, faststart: bool = True) -> Path:
    full = mf.make_video(d / "full.mp4", seconds_per_color=1.0, size=(48, 64), faststart=faststart)
    cut = mf.truncate(full, d / f"cut_{round(fraction * 100):02d}.mp4", fraction)
    full.unlink()
    return cut


def _float_wav_with(d: Path, name: str, value: float) -> Path:
    samples = mf.tone(440.0, 0.5, 16000).astype(np.float64)
    samples[1234] = value
    return mf.make_wav(d / name, samples, 16000, "FLOAT")


def _write(path: Path, data: bytes | str) -> Path:
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


def _rename(src: Path, dst: Path) -> Path:
    src.rename(dst)
    return dst


def _zip_as_mp4(d: Path) -> Path:
    return mf.zip_archive(d / "archive.mp4")


def _one_frame(d: Path) -> Path:
    """One 20 fps frame with 0.05 s of sound: the shortest clip there is."""
    frames = mf.color_frames([mf.RED], 1, (48, 64))
    return mf.encode(d / "one_frame.mp4", frames, 20.0, mf.tone(440.0, 0.05), 48000)


def _huge_video(d: Path) -> Path:
    """Two 8000x6000 frames (0.25 s at 8 fps) with sound: H.264 far beyond any screen."""
    return mf.make_video(d / "huge.mp4", colors=(mf.RED,), seconds_per_color=0.25, size=(6000, 8000))


def _png_named(d: Path, name: str) -> Path:
    return mf.make_image(d / name, size=(48, 64), color=mf.GREEN)


# ----------------------------------------------------------------------------------------------------------------
# The corpus

CASES: list[Case] = [
    # --- not media at all, or broken beyond use
    Case("corrupt_bytes", _video(lambda d: mf.garbage(d / "noise.mp4", 20000)), "error",
         what="20 kB of random bytes named .mp4"),
    Case("text_as_mp4", _video(lambda d: _write(d / "notes.mp4", "this is not a video\n" * 200)), "error",
         what="a text file named .mp4"),
    Case("zip_as_mp4", _video(_zip_as_mp4), "error", what="a zip archive renamed .mp4"),
    Case("empty_mp4", _video(lambda d: _write(d / "empty.mp4", b"")), "error", ("empty",),
         what="a 0-byte .mp4"),
    Case("zero_byte_wav", _with_partner_image(lambda d: _write(d / "hollow.wav", b"")), "error", ("empty",),
         culprit="hollow.wav", what="a 0-byte .wav beside a good image"),
    Case("garbage_png", _with_partner_sound(lambda d: mf.garbage(d / "broken.png", 5000, seed=1)), "error",
         what="random bytes named .png beside a good sound"),
    Case("subtitle_only_mkv", _video(lambda d: mf.subtitle_only_mkv(d / "subs.mkv")), "error",
         ("subtitles",), what="a Matroska file whose only track is subtitles"),
    # --- cut short
    Case("truncated_mp4_02", _video(lambda d: _cut(d, 0.02)), "error", what="first 2 % of a 3 s mp4"),
    Case("truncated_mp4_30", _video(lambda d: _cut(d, 0.30)), "either", what="first 30 % of a 3 s mp4"),
    Case("truncated_mp4_60", _video(lambda d: _cut(d, 0.60)), "either", what="first 60 % of a 3 s mp4"),
    Case("truncated_mp4_95", _video(lambda d: _cut(d, 0.95)), "either", what="first 95 % of a 3 s mp4"),
    Case("truncated_mp4_no_index", _video(lambda d: _cut(d, 0.80, faststart=False)), "error",
         what="first 80 % of an mp4 whose index is at the end"),
    Case("truncated_wav", _with_partner_image(lambda d: mf.truncate(
        mf.make_wav(d / "full.wav", mf.tone(440.0, 2.0, 16000), 16000), d / "cut.wav", 0.5)), "result",
         what="first half of a 2 s wav beside a good image"),
    # --- the extension lies
    Case("wav_named_mp4", _video(lambda d: _rename(_good_wav(d), d / "sound.mp4")), "result",
         what="a wav named .mp4 (audio only)"),
    Case("mp4_named_png_as_video", _video(lambda d: _rename(good_clip(d / "clip.mp4"), d / "clip.png")), "error",
         what="an mp4 named .png, uploaded as the video"),
    Case("mp4_named_png_as_image", _with_partner_sound(lambda d: _rename(good_clip(d / "c.mp4"), d / "pic.png")),
         "error", what="an mp4 named .png, uploaded as the image"),
    Case("png_named_wav", _with_partner_image(lambda d: _rename(_png_named(d, "p.png"), d / "sound.wav")),
         "error", culprit="sound.wav", what="a png named .wav, uploaded as the sound"),
    # --- streams missing
    Case("video_without_audio", _video(lambda d: mf.make_video(d / "mute.mp4", tone_hz=None)), "result",
         what="H.264 mp4 with no audio stream"),
    Case("audio_without_video", _video(lambda d: mf.encode(d / "sound_only.mp4", None, 8.0,
                                                           mf.tone(440.0, 1.5), 48000)), "result",
         what="mp4 with only an AAC stream"),
    Case("audio_alone", lambda d: Inputs(audio=_good_wav(d)), "result", what="a wav with no image"),
    Case("image_alone", lambda d: Inputs(image=_good_png(d)), "result", what="an image with no sound"),
    # --- containers and extremes
    Case("webm", _video(lambda d: mf.make_video(d / "clip.webm")), "result", what="VP8 + Opus webm"),
    Case("mkv", _video(lambda d: mf.make_video(d / "clip.mkv")), "result", what="H.264 + AAC Matroska"),
    Case("one_frame", _video(_one_frame), "result", what="1 frame, 0.05 s"),
    Case("huge_video", _video(_huge_video), "result", what="8000x6000 H.264, 2 frames"),
    Case("huge_image", _with_partner_sound(lambda d: mf.make_image(d / "huge.png", size=(6000, 8000))), "result",
         what="8000x6000 png"),
    Case("hour_long_wav", _with_partner_image(lambda d: mf.make_long_wav(d / "hour.wav", 3600.0, 8000)), "result",
         what="an hour of 8 kHz 16-bit wav (58 MB)"),
    # --- sample rates, depths, channels, values
    *[Case(f"rate_{rate}", _with_partner_image(lambda d, r=rate: mf.make_wav(d / f"r{r}.wav",
                                                                             mf.tone(440.0, 1.0, r), r)),
           "result", what=f"{rate} Hz wav") for rate in (8000, 11025, 96000)],
    *[Case(f"depth_{sub.lower()}", _with_partner_image(lambda d, s=sub: mf.make_wav(d / f"{s.lower()}.wav",
                                                                                   mf.tone(440.0, 1.0), 48000, s)),
           "result", what=f"{sub} wav") for sub in ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")],
    Case("six_channels", _with_partner_image(lambda d: mf.make_wav(d / "surround.wav", mf.tone(440.0, 1.0), 48000,
                                                                   channels=6)), "result", what="6-channel wav"),
    Case("nan_audio", _with_partner_image(lambda d: _float_wav_with(d, "nan.wav", np.nan)), "error",
         ("NaN",), culprit="nan.wav", what="float wav with a NaN sample"),
    Case("inf_audio", _with_partner_image(lambda d: _float_wav_with(d, "inf.wav", np.inf)), "error",
         ("infinite",), culprit="inf.wav", what="float wav with an infinite sample"),
    Case("silence", _with_partner_image(lambda d: mf.make_wav(d / "quiet.wav", np.zeros(48000), 48000)), "result",
         what="1 s of digital silence"),
    # --- image modes and sizes
    *[Case(f"image_{label}", _with_partner_sound(lambda d, m=mode, f=file, s=size: mf.make_image(d / f, m, s)),
           "result", what=f"{label} image {size[1]}x{size[0]}")
      for label, mode, file, size in (
          ("grey", "L", "grey.png", (48, 64)), ("rgba", "RGBA", "rgba.png", (48, 64)),
          ("palette", "P", "palette.png", (48, 64)), ("16bit", "I;16", "deep.png", (48, 64)),
          ("rgb48", "RGB;16", "rgb48.png", (48, 64)), ("1x1", "RGB", "dot.png", (1, 1)),
          ("photo_size", "RGB", "photo.jpg", (480, 640)),
          ("cmyk", "CMYK", "cmyk.jpg", (48, 64)))],
]

NAMES = [c.name for c in CASES]
assert len(set(NAMES)) == len(NAMES), "case names must be unique"


def case(name: str) -> Case:
    """The case called ``name``."""
    for c in CASES:
        if c.name == name:
            return c
    raise KeyError(f"no case named {name!r}")
