"""avllm.media: every input kind becomes a Clip with the right frames, sound and flags; bad input gives a typed,
readable MediaError; write_video makes H.264 yuv420p + AAC mp4 that round-trips."""

from __future__ import annotations

import shutil
import time

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import media_factory as mf
from avllm.config import MediaConfig
from avllm.media import (
    Clip,
    CorruptMediaError,
    EmptyMediaError,
    InvalidAudioError,
    MediaError,
    MediaFlags,
    UnsupportedMediaError,
    clip_to_mp4,
    load_audio,
    load_clip,
    load_clip_from_config,
    load_image,
    write_audio,
    write_video,
)

COLOUR_TOL = 12.0  # per-channel mean after H.264 / VP8 / MPEG-4, solid colours
FREQ_TOL = 0.02  # relative error of the FFT peak
FLAG_NAMES = ("silent", "no_video", "still_image", "truncated", "partial", "downscaled", "resampled")


def mean_rgb(frame: np.ndarray) -> np.ndarray:
    return frame.reshape(-1, 3).mean(axis=0)


def assert_colour(frame: np.ndarray, colour, tol: float = COLOUR_TOL) -> None:
    got = mean_rgb(frame)
    assert np.all(np.abs(got - np.array(colour)) <= tol), f"mean {got.round(1)} vs {colour}"


def assert_tone(audio: np.ndarray, sample_rate: int, freq: float) -> None:
    got = mf.dominant_frequency(audio, sample_rate)
    assert abs(got - freq) <= FREQ_TOL * freq, f"peak at {got:.1f} Hz, expected {freq} Hz"


def assert_well_formed(clip: Clip) -> None:
    """Invariants every clip keeps, whatever it came from."""
    assert clip.frames.dtype == np.uint8 and clip.frames.ndim == 4 and clip.frames.shape[-1] == 3
    assert clip.times.dtype == np.float64 and clip.times.shape == (clip.num_frames,)
    np.testing.assert_allclose(clip.times, np.arange(clip.num_frames) / clip.fps)
    assert clip.audio.dtype == np.float32 and clip.audio.ndim == 1
    assert np.all(np.abs(clip.audio) <= 1.0)
    assert clip.duration > 0
    set_flags = [n for n in FLAG_NAMES if getattr(clip.flags, n)]
    assert len(clip.flags.notes) == len(set_flags), (set_flags, clip.flags.notes)
    if clip.flags.silent:
        assert not clip.has_audio and not np.any(clip.audio)
    assert clip.has_video == (not clip.flags.no_video)


def assert_readable(err: MediaError, *names: str) -> None:
    """A message for a person: names the file, carries no FFmpeg traceback or error number."""
    msg = str(err)
    for name in names:
        assert name in msg, msg
    assert "Traceback" not in msg and "Errno" not in msg
    assert err.__suppress_context__ or err.__cause__ is None or isinstance(err.__cause__, MediaError)


# ---------------------------------------------------------------------------------------------------------------
# Videos in every container


@pytest.mark.parametrize("ext", [".mp4", ".mov", ".mkv", ".webm", ".avi"])
def test_video_containers_give_colours_tone_and_times(tmp_path, ext):
    path = mf.make_video(tmp_path / f"v{ext}", colors=(mf.RED, mf.GREEN, mf.BLUE), fps=8, tone_hz=440.0)
    clip = load_clip(path, fps=8.0, sample_rate=48000)
    assert_well_formed(clip)
    assert clip.fps == 8.0 and clip.num_frames == 24
    assert abs(clip.duration - 3.0) < 0.05
    assert abs(clip.audio.shape[0] / 48000 - 3.0) < 0.05
    for k, colour in enumerate((mf.RED, mf.GREEN, mf.BLUE)):
        for i in range(8 * k, 8 * k + 8):
            assert_colour(clip.frames[i], colour)
    assert_tone(clip.audio, 48000, 440.0)
    assert not any(getattr(clip.flags, n) for n in FLAG_NAMES)
    assert clip.source == f"v{ext}"
    assert_colour(clip.key_frame(1.5), mf.GREEN)
    assert [clip.frame_at(t) for t in (2.0, 1.99, -1.0, 99.0)] == [16, 15, 0, 23]


def test_frames_are_sampled_at_the_requested_rate(tmp_path):
    # 30 fps source, 1 s red then 1 s green; sampled at 8 fps every frame shows what the source shows then
    path = mf.make_video(tmp_path / "v30.mp4", colors=(mf.RED, mf.GREEN), fps=30, tone_hz=None)
    clip = load_clip(path, fps=8.0)
    assert_well_formed(clip)
    assert clip.fps == 8.0 and clip.num_frames == 16
    for i, t in enumerate(clip.times):
        assert_colour(clip.frames[i], mf.RED if t < 1.0 else mf.GREEN)


def test_fps_is_the_source_rate_when_lower(tmp_path):
    path = mf.make_video(tmp_path / "v2.mp4", colors=(mf.RED, mf.BLUE), fps=2, tone_hz=None)
    clip = load_clip(path, fps=8.0)
    assert clip.fps == 2.0 and clip.num_frames == 4
    np.testing.assert_allclose(clip.times, [0.0, 0.5, 1.0, 1.5])
    assert_colour(clip.frames[1], mf.RED)
    assert_colour(clip.frames[2], mf.BLUE)


def test_video_without_audio_is_silent(tmp_path):
    clip = load_clip(mf.make_video(tmp_path / "mute.mp4", tone_hz=None), sample_rate=16000)
    assert_well_formed(clip)
    assert clip.flags.silent and not clip.has_audio and clip.has_video
    assert clip.audio.shape[0] == round(clip.duration * 16000)
    assert any("no audio" in n for n in clip.flags.notes)


def test_video_file_without_video_stream_is_audio_only(tmp_path):
    path = mf.encode(tmp_path / "sound.mp4", None, 8.0, mf.tone(330.0, 1.5), 48000)
    clip = load_clip(path)
    assert_well_formed(clip)
    assert clip.flags.no_video and not clip.has_video and clip.frames.shape[0] == 0
    assert_tone(clip.audio, 48000, 330.0)
    with pytest.raises(MediaError, match="no video frames"):
        clip.key_frame(0.0)


def test_replacing_the_sound_of_a_video(tmp_path):
    video = mf.make_video(tmp_path / "v.mp4", tone_hz=440.0)
    wav = mf.make_wav(tmp_path / "other.wav", mf.tone(1000.0, 3.0, 16000), 16000)
    clip = load_clip(video, audio=wav)
    assert_well_formed(clip)
    assert_tone(clip.audio, 48000, 1000.0)
    assert clip.flags.resampled and clip.source == "v.mp4 + other.wav"


def test_huge_frames_are_downscaled(tmp_path):
    path = mf.make_video(tmp_path / "big.mp4", colors=(mf.RED,), size=(120, 200), tone_hz=None)
    clip = load_clip(path, max_side=50)
    assert clip.frames.shape[1:] == (30, 50, 3)
    assert clip.flags.downscaled and "200x120 to 50x30" in clip.flags.notes[0]
    assert_colour(clip.frames[0], mf.RED)


# ---------------------------------------------------------------------------------------------------------------
# Long input: cut at max_seconds without decoding the rest


class PacketCounter:
    """Wraps avllm.media's container opener and counts the packets the reader pulls from each file."""

    def __init__(self, monkeypatch):
        import avllm.media as media

        self.packets = 0
        opener = media._open_container

        def counting_open(path, what):
            container = opener(path, what)
            demux = container.demux

            def counted(*streams):
                for packet in demux(*streams):
                    self.packets += 1
                    yield packet

            return _Proxy(container, counted)

        monkeypatch.setattr(media, "_open_container", counting_open)


class _Proxy:
    def __init__(self, container, demux):
        self._container, self.demux = container, demux

    def __getattr__(self, name):
        return getattr(self._container, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._container.close()


def test_hour_long_video_is_cut_without_decoding_it_all(tmp_path, monkeypatch):
    frames = np.broadcast_to(np.uint8(90), (3600, 16, 16, 3))
    # 1 fps, 16x16: an hour costs about a second to write; its sound stops after 5 s, so only the video stream
    # can tell the reader that the limit has passed
    path = mf.encode(tmp_path / "hour.mp4", frames, 1.0, mf.tone(440.0, 5.0, 8000), 8000)
    counter = PacketCounter(monkeypatch)
    start = time.perf_counter()
    clip = load_clip(path, fps=8.0, max_seconds=60.0)
    elapsed = time.perf_counter() - start
    assert_well_formed(clip)
    assert clip.fps == 1.0 and clip.num_frames == 60 and clip.duration == pytest.approx(60.0)
    assert clip.flags.truncated and "cut to 60 s of 3600 s" in clip.flags.notes
    assert abs(clip.audio.shape[0] / 48000 - 5.0) < 0.15  # one AAC frame at 8 kHz is 0.128 s
    # the file holds 3600 video + 40 audio packets; the reader stops within the 10 s interleaving margin
    assert 100 <= counter.packets <= 60 + 12 + 40, counter.packets
    assert elapsed < 2.0, f"loading the first minute took {elapsed:.2f} s"


def test_hour_long_wav_is_cut_without_decoding_it_all(tmp_path, monkeypatch):
    path = mf.make_long_wav(tmp_path / "hour.wav", 3600.0, sample_rate=8000, freq=440.0)
    counter = PacketCounter(monkeypatch)
    start = time.perf_counter()
    audio, flags = load_audio(path, sample_rate=8000, max_seconds=60.0)
    elapsed = time.perf_counter() - start
    assert audio.shape == (60 * 8000,)
    assert flags.truncated and "cut to 60 s of 3600 s" in flags.notes and not flags.resampled
    assert_tone(audio, 8000, 440.0)
    with av.open(str(path)) as c:
        hour_packets = sum(1 for p in c.demux(c.streams.audio[0]) if p.size)
    assert 0 < counter.packets <= hour_packets * 61 / 3600 + 2, (counter.packets, hour_packets)
    assert elapsed < 2.0, f"loading the first minute took {elapsed:.2f} s"


# ---------------------------------------------------------------------------------------------------------------
# Audio: bit depths, channels, rates


WAV_SUBTYPES = ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    subtype=st.sampled_from(WAV_SUBTYPES),
    channels=st.integers(1, 8),
    rate=st.sampled_from([8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000]),
    freq=st.floats(200.0, 2000.0),
)
def test_wav_of_any_depth_channels_and_rate_keeps_its_tone(tmp_path, subtype, channels, rate, freq):
    path = mf.make_wav(tmp_path / "a.wav", mf.tone(freq, 0.5, rate, amp=0.5), rate, subtype, channels)
    audio, flags = load_audio(path, sample_rate=16000)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.shape[0] - 8000) <= 2  # 0.5 s at 16 kHz
    assert flags.resampled == (rate != 16000)
    assert_tone(audio, 16000, freq)
    body = audio[400:-400]  # away from the resampler's edges
    assert abs(np.abs(body).max() - 0.5) < 0.03  # channels averaged, not summed; ints scaled to [-1, 1]


@pytest.mark.parametrize("subtype", WAV_SUBTYPES)
def test_every_wav_depth_reads_the_same_samples(tmp_path, subtype):
    ref = mf.tone(440.0, 0.25, 48000, amp=0.5)
    audio, flags = load_audio(mf.make_wav(tmp_path / "a.wav", ref, 48000, subtype, 2), sample_rate=48000)
    assert not flags.resampled and audio.shape == ref.shape
    tol = 1 / 64 if subtype == "PCM_U8" else 1e-4
    np.testing.assert_allclose(audio, ref, atol=tol)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_samples_are_refused(tmp_path, bad):
    samples = mf.tone(440.0, 0.5, 16000).astype(np.float64)
    samples[1234] = bad
    path = mf.make_wav(tmp_path / "bad.wav", samples, 16000, "FLOAT")
    with pytest.raises(InvalidAudioError) as err:
        load_audio(path)
    assert_readable(err.value, "bad.wav")
    with pytest.raises(InvalidAudioError, match="bad.wav"):
        load_clip(image=mf.make_image(tmp_path / "i.png"), audio=path)


@pytest.mark.parametrize("ext, rate", [(".mp3", 44100), (".m4a", 22050), (".flac", 96000), (".ogg", 48000)])
def test_compressed_audio_files(tmp_path, ext, rate):
    path = mf.encode(tmp_path / f"a{ext}", None, 8.0, mf.tone(700.0, 1.5, rate), rate)
    clip = load_clip(audio=path, sample_rate=16000)
    assert_well_formed(clip)
    assert clip.flags.no_video and clip.flags.resampled
    assert abs(clip.duration - 1.5) < 0.06  # codec priming / padding
    assert_tone(clip.audio, 16000, 700.0)


def test_audio_alone_gives_an_audio_only_clip(tmp_path):
    path = mf.make_wav(tmp_path / "a.wav", mf.tone(523.0, 1.25, 44100), 44100, "PCM_16", 2)
    for clip in (load_clip(audio=path), load_clip(path)):  # as audio=, or given where a video goes
        assert_well_formed(clip)
        assert clip.flags.no_video and clip.flags.resampled and clip.num_frames == 0
        assert clip.duration == pytest.approx(1.25, abs=1e-3)
        assert_tone(clip.audio, 48000, 523.0)


def test_write_audio_round_trip(tmp_path):
    ref = mf.tone(440.0, 0.5, 22050, amp=0.8)
    path = write_audio(tmp_path / "w.wav", ref, 22050)
    audio, flags = load_audio(path, sample_rate=22050)
    np.testing.assert_allclose(audio, ref, atol=1 / 16000)
    assert not flags.resampled
    with pytest.raises(InvalidAudioError):
        write_audio(tmp_path / "n.wav", np.array([0.0, np.nan]), 8000)


# ---------------------------------------------------------------------------------------------------------------
# Images


@pytest.mark.parametrize(
    "mode, suffix, expected",
    [
        ("RGB", ".png", mf.RED),
        ("RGB", ".jpg", mf.RED),
        ("RGB;16", ".png", mf.RED),
        ("RGBA", ".png", mf.RED),
        ("P", ".png", mf.RED),
        ("CMYK", ".tif", mf.RED),
        ("L", ".png", (87,) * 3),  # luminance of RED
        ("LA", ".png", (87,) * 3),
        ("I;16", ".png", (87,) * 3),
        ("F", ".tif", (87,) * 3),
        ("1", ".png", (0,) * 3),  # luminance 87 < 128 -> black
    ],
)
def test_image_modes_become_rgb(tmp_path, mode, suffix, expected):
    img, flags = load_image(mf.make_image(tmp_path / f"i{suffix}", mode=mode, size=(24, 40), color=mf.RED))
    assert img.dtype == np.uint8 and img.shape == (24, 40, 3)
    assert_colour(img, expected, tol=3 if suffix != ".jpg" else 8)
    assert not flags.downscaled


def test_transparent_pixels_become_white(tmp_path):
    img, _ = load_image(mf.make_image(tmp_path / "t.png", mode="RGBA", color=mf.RED, alpha=0))
    assert_colour(img, mf.WHITE, tol=1)
    img, _ = load_image(mf.make_image(tmp_path / "h.png", mode="RGBA", color=(0, 0, 0), alpha=128))
    assert_colour(img, (127,) * 3, tol=2)


def test_one_pixel_image_is_valid(tmp_path):
    clip = load_clip(image=mf.make_image(tmp_path / "dot.png", size=(1, 1), color=mf.BLUE))
    assert_well_formed(clip)
    assert clip.frames.shape == (8, 1, 1, 3)
    assert_colour(clip.frames[0], mf.BLUE, tol=1)


def test_big_image_is_downscaled(tmp_path):
    img, flags = load_image(mf.make_image(tmp_path / "big.png", size=(700, 1400), color=mf.GREEN), max_side=1024)
    assert img.shape == (512, 1024, 3)
    assert flags.downscaled and flags.notes == ["image downscaled from 1400x700 to 1024x512"]
    assert_colour(img, mf.GREEN, tol=1)


def test_image_with_audio_lasts_as_long_as_the_audio(tmp_path):
    image = mf.make_image(tmp_path / "i.png", color=mf.GREEN)
    audio = mf.make_wav(tmp_path / "a.wav", mf.tone(880.0, 2.3, 24000), 24000)
    clip = load_clip(image=image, audio=audio, fps=4.0)
    assert_well_formed(clip)
    assert clip.duration == pytest.approx(2.3, abs=1e-3)
    assert clip.num_frames == 10  # ceil(2.3 * 4)
    assert clip.flags.still_image and clip.flags.resampled and not clip.flags.silent
    assert all(np.array_equal(f, clip.frames[0]) for f in clip.frames)
    assert_colour(clip.frames[-1], mf.GREEN, tol=1)
    assert_tone(clip.audio, 48000, 880.0)
    assert clip.source == "i.png + a.wav"


def test_image_alone_is_a_silent_still(tmp_path):
    image = mf.make_image(tmp_path / "i.png")
    clip = load_clip(image=image, fps=8.0)
    assert_well_formed(clip)
    assert clip.duration == 1.0 and clip.num_frames == 8 and clip.flags.silent and clip.flags.still_image
    clip = load_clip(image=image, fps=8.0, still_seconds=2.5, sample_rate=16000)
    assert clip.num_frames == 20 and clip.audio.shape == (40000,)
    clip = load_clip(image=image, still_seconds=100.0, max_seconds=5.0)
    assert clip.duration == 5.0 and clip.flags.truncated
    clip = load_clip(image, fps=8.0)  # an image given where a video goes
    assert clip.flags.still_image and clip.num_frames == 8


# ---------------------------------------------------------------------------------------------------------------
# Writing


def test_write_video_round_trip(tmp_path):
    frames = mf.color_frames((mf.RED, mf.BLUE), 6, size=(33, 47))  # odd sides, 7.5 fps
    audio = mf.tone(660.0, 1.6, 44100)
    path = write_video(tmp_path / "out" / "rt.mp4", frames, 7.5, audio, 44100)
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert v.codec_context.name == "h264" and v.codec_context.pix_fmt == "yuv420p"
        assert (v.width, v.height) == (48, 34)
        assert a.codec_context.name == "aac" and a.rate == 44100
    clip = load_clip(path, fps=30.0, sample_rate=44100)
    assert_well_formed(clip)
    assert clip.fps == 7.5 and clip.num_frames == 12 and clip.frames.shape[1:] == (34, 48, 3)
    assert clip.has_audio and abs(clip.duration - 1.6) < 0.05
    assert_tone(clip.audio, 44100, 660.0)
    for i in range(12):
        assert_colour(clip.frames[i], mf.RED if i < 6 else mf.BLUE)
    assert_colour(clip.frames[0, -1:, :-1], mf.RED)  # the padded row repeats the last one


def test_write_video_accepts_float_and_grey_frames_and_no_audio(tmp_path):
    grey = np.full((4, 16, 16), 0.5, np.float32)
    clip = load_clip(write_video(tmp_path / "g.mp4", grey, 8.0))
    assert clip.flags.silent and clip.num_frames == 4
    assert_colour(clip.frames[0], (128,) * 3, tol=3)
    with pytest.raises(ValueError):
        write_video(tmp_path / "x.mp4", np.zeros((2, 8, 8, 5), np.uint8), 8.0)
    with pytest.raises(ValueError):
        write_video(tmp_path / "x.mp4", np.zeros((2, 8, 8, 3), np.uint8), 0.0)
    with pytest.raises(EmptyMediaError):
        write_video(tmp_path / "x.mp4", np.zeros((0, 8, 8, 3), np.uint8), 8.0)


def test_clip_to_mp4_round_trips_still_and_audio_only_clips(tmp_path):
    image = mf.make_image(tmp_path / "i.png", size=(20, 30), color=mf.BLUE)
    audio = mf.make_wav(tmp_path / "a.wav", mf.tone(440.0, 1.0, 48000), 48000)
    still = load_clip(image=image, audio=audio, fps=8.0)
    back = load_clip(clip_to_mp4(still, tmp_path / "still.mp4"), fps=8.0)
    assert back.num_frames == still.num_frames and back.frames.shape[1:] == (20, 30, 3)
    assert_colour(back.frames[3], mf.BLUE)
    assert_tone(back.audio, 48000, 440.0)
    sound_only = load_clip(audio=audio)
    back = load_clip(clip_to_mp4(sound_only, tmp_path / "sound.mp4"))
    assert back.flags.no_video and abs(back.duration - 1.0) < 0.05
    silent = load_clip(image=image)
    with av.open(str(clip_to_mp4(silent, tmp_path / "silent.mp4"))) as c:
        assert len(c.streams.audio) == 0 and len(c.streams.video) == 1


def test_load_clip_from_config_uses_its_settings(tmp_path):
    path = mf.make_video(tmp_path / "v.mp4", colors=(mf.RED, mf.GREEN), size=(64, 96), fps=8)
    clip = load_clip_from_config(MediaConfig(fps=4.0, sample_rate=16000, max_seconds=1.5, max_side=48), path)
    assert clip.fps == 4.0 and clip.sample_rate == 16000 and clip.num_frames == 6
    assert clip.frames.shape[1:] == (32, 48, 3) and clip.flags.truncated and clip.flags.downscaled
    assert clip.audio.shape[0] == 24000


# ---------------------------------------------------------------------------------------------------------------
# Bad input


def test_missing_paths_are_named(tmp_path):
    missing = tmp_path / "nowhere" / "clip.mp4"
    for call in (
        lambda: load_clip(missing),
        lambda: load_clip(image=tmp_path / "nope.png"),
        lambda: load_clip(audio=tmp_path / "nope.wav"),
        lambda: load_audio(tmp_path / "nope.wav"),
    ):
        with pytest.raises(MediaError, match="not found") as err:
            call()
        assert str(tmp_path) in str(err.value)


@pytest.mark.parametrize("name", ["empty.mp4", "empty.png", "empty.wav"])
def test_empty_files(tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(EmptyMediaError) as err:
        load_clip(tmp_path / name)
    assert_readable(err.value, name)


def test_zero_duration_audio(tmp_path):
    path = mf.make_wav(tmp_path / "none.wav", np.zeros(0), 16000)
    with pytest.raises(EmptyMediaError, match="none.wav"):
        load_clip(audio=path)


@pytest.mark.parametrize("name", ["junk.mp4", "junk.webm", "junk.wav", "junk.png"])
def test_garbage_is_corrupt(tmp_path, name):
    path = mf.garbage(tmp_path / name, seed=len(name))
    with pytest.raises(CorruptMediaError) as err:
        load_clip(path)
    assert_readable(err.value, name)


def test_zip_renamed_mp4_is_corrupt(tmp_path):
    with pytest.raises(CorruptMediaError) as err:
        load_clip(mf.zip_archive(tmp_path / "archive.mp4"))
    assert_readable(err.value, "archive.mp4")


def test_lying_extensions_decode_by_content(tmp_path):
    wav = mf.make_wav(tmp_path / "a.wav", mf.tone(440.0, 1.0, 16000), 16000)
    clip = load_clip(shutil.copy(wav, tmp_path / "sound.mp4"))  # a wav named .mp4: audio only
    assert clip.flags.no_video and clip.duration == pytest.approx(1.0, abs=1e-3)
    assert_tone(clip.audio, 48000, 440.0)
    png = mf.make_image(tmp_path / "i.png", color=mf.GREEN)
    clip = load_clip(shutil.copy(png, tmp_path / "picture.mp4"), fps=8.0)  # a PNG named .mp4: a still
    assert_well_formed(clip)
    assert clip.flags.still_image and clip.flags.silent and clip.num_frames == 8
    assert_colour(clip.frames[0], mf.GREEN, tol=2)
    mkv = mf.make_video(tmp_path / "v.mkv", colors=(mf.BLUE,))
    clip = load_clip(shutil.copy(mkv, tmp_path / "really_mkv.mp4"))
    assert clip.num_frames == 8 and clip.has_audio
    assert_colour(clip.frames[0], mf.BLUE)


def test_unknown_extension_is_unsupported(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(UnsupportedMediaError, match="notes.txt"):
        load_clip(path)
    with pytest.raises(UnsupportedMediaError, match="v.mp4.* not an image file"):
        load_clip(image=mf.make_video(tmp_path / "v.mp4", tone_hz=None))


def test_no_usable_stream(tmp_path):
    mute = mf.make_video(tmp_path / "mute.mp4", tone_hz=None)
    with pytest.raises(UnsupportedMediaError, match="mute.mp4.*no audio stream"):
        load_audio(mute)
    subtitles = tmp_path / "subs.mkv"  # SubRip text: FFmpeg reads it by content, but it holds no video or audio
    subtitles.write_text("1\n00:00:00,000 --> 00:00:01,500\nhello\n\n2\n00:00:02,000 --> 00:00:03,000\nbye\n")
    with pytest.raises(UnsupportedMediaError, match="subs.mkv.*only subtitles"):
        load_clip(subtitles)


def test_truncated_video_gives_the_part_that_decodes(tmp_path):
    full = mf.make_video(tmp_path / "full.mp4", colors=(mf.RED, mf.GREEN, mf.BLUE), fps=8)
    clip = load_clip(mf.truncate(full, tmp_path / "cut.mp4", 0.55))
    assert_well_formed(clip)
    assert clip.flags.partial and 0.5 < clip.duration < 2.8
    assert any("damaged" in n for n in clip.flags.notes)
    assert_colour(clip.frames[0], mf.RED)
    assert_colour(clip.frames[min(10, clip.num_frames - 1)], mf.GREEN if clip.num_frames > 10 else mf.RED)
    with pytest.raises(CorruptMediaError, match="stub.mp4"):  # cut before any frame
        load_clip(mf.truncate(full, tmp_path / "stub.mp4", 0.01))


def test_truncated_video_without_index_is_corrupt(tmp_path):
    full = mf.make_video(tmp_path / "slow.mp4", faststart=False)  # index at the end, cut away
    with pytest.raises(CorruptMediaError) as err:
        load_clip(mf.truncate(full, tmp_path / "slow_cut.mp4", 0.8))
    assert_readable(err.value, "slow_cut.mp4")


def test_truncated_wav_is_partial(tmp_path):
    full = mf.make_wav(tmp_path / "full.wav", mf.tone(440.0, 2.0, 16000), 16000)
    audio, flags = load_audio(mf.truncate(full, tmp_path / "cut.wav", 0.5), sample_rate=16000)
    assert flags.partial and abs(audio.shape[0] / 16000 - 1.0) < 0.01
    assert_tone(audio, 16000, 440.0)
    _, flags = load_audio(full)
    assert not flags.partial


def test_image_with_broken_audio_names_the_audio_file(tmp_path):
    image = mf.make_image(tmp_path / "fine.png")
    broken = mf.garbage(tmp_path / "broken_sound.wav", seed=3)
    with pytest.raises(CorruptMediaError) as err:
        load_clip(image=image, audio=broken)
    assert_readable(err.value, "broken_sound.wav")
    (tmp_path / "hollow.wav").write_bytes(b"")
    with pytest.raises(EmptyMediaError, match="hollow.wav"):
        load_clip(image=image, audio=tmp_path / "hollow.wav")


def test_truncated_image_is_corrupt(tmp_path):
    full = mf.make_image(tmp_path / "big.png", size=(200, 300), mode="RGB", color=mf.RED)
    noisy = np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    from PIL import Image

    Image.fromarray(noisy).save(full)
    with pytest.raises(CorruptMediaError, match="half.png"):
        load_image(mf.truncate(full, tmp_path / "half.png", 0.5))


def test_bad_arguments_are_value_errors(tmp_path):
    image = mf.make_image(tmp_path / "i.png")
    with pytest.raises(ValueError):
        load_clip()
    with pytest.raises(ValueError):
        load_clip(image, image=image)
    with pytest.raises(ValueError):
        load_clip(image=image, fps=0)
    with pytest.raises(ValueError):
        load_clip(image=image, still_seconds=0.0)


def test_flags_merge_and_set():
    a, b = MediaFlags(), MediaFlags()
    a.set("silent", "no audio")
    b.set("resampled", "resampled 8 kHz")
    b.set("resampled", "resampled 8 kHz")
    assert b.notes == ["resampled 8 kHz"]
    a.merge(b)
    assert a.silent and a.resampled and a.notes == ["no audio", "resampled 8 kHz"]
    with pytest.raises(AttributeError):
        a.set("notes", "x")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    t=st.integers(1, 6),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    fps=st.sampled_from([1.0, 2.5, 7.5, 8.0, 12.0, 29.97]),
    colour=st.tuples(*[st.integers(20, 235)] * 3),
    with_audio=st.booleans(),
)
def test_write_video_then_load_keeps_frames_size_and_rate(tmp_path, t, h, w, fps, colour, with_audio):
    frames = np.broadcast_to(np.array(colour, np.uint8), (t, h, w, 3))
    audio = mf.tone(500.0, t / fps, 16000) if with_audio else None
    path = write_video(tmp_path / "p.mp4", frames, fps, audio, 16000)
    clip = load_clip(path, fps=30.0, sample_rate=16000)
    assert_well_formed(clip)
    assert clip.num_frames == t and clip.fps == pytest.approx(fps, rel=1e-3)
    assert clip.frames.shape[1:] == (h + h % 2, w + w % 2, 3)
    assert clip.has_audio == with_audio
    assert_colour(clip.frames[-1], colour, tol=6)


def test_codec_padding_is_neither_audio_nor_a_cut(tmp_path):
    # AAC codes whole frames of 1024 samples: a 2 s track at 48 kHz decodes to 2.005 s unless the padding is dropped
    path = mf.make_video(tmp_path / "v.mp4", colors=(mf.RED, mf.GREEN), fps=8)  # 2 s with a tone
    clip = load_clip(path, sample_rate=48000)
    assert clip.audio.shape[0] == 96000 and clip.duration == 2.0 and not clip.flags.truncated
    clip = load_clip(path, sample_rate=48000, max_seconds=2.0)  # the limit at the declared end cuts nothing
    assert clip.audio.shape[0] == 96000 and not clip.flags.truncated
    clip = load_clip(path, sample_rate=48000, max_seconds=1.5)
    assert clip.audio.shape[0] == 72000 and clip.flags.truncated
