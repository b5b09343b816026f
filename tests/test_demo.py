"""Demo handlers on CPU with media the tests write: good input gives images, bad input a readable gr.Error."""

import logging
import shutil

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from avllm.media import write_audio, write_video
from demo import handlers, layout

SR = 48000


def _tone(seconds=2.0, hz=440.0):
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _nan_wav(path):
    """A 32-bit float wav holding one NaN sample (write_audio refuses NaN, so write it with PyAV directly)."""
    import av

    x = np.zeros((1, 16000), np.float32)
    x[0, 100] = np.nan
    with av.open(str(path), "w", format="wav") as c:
        s = c.add_stream("pcm_f32le", rate=16000)
        s.layout = "mono"
        f = av.AudioFrame.from_ndarray(x, format="flt", layout="mono")
        f.sample_rate = 16000
        for p in [*s.encode(f), *s.encode(None)]:
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(0)
    frames = np.zeros((16, 64, 80, 3), np.uint8)
    for i in range(16):
        frames[i, 10:30, 4 * i : 4 * i + 20] = (220, 40, 40)  # a red square moving right
    m = {
        "ok": write_video(d / "ok.mp4", frames, 8.0, _tone(), SR),
        "no_audio": write_video(d / "no_audio.mp4", frames, 8.0),
        "wav": write_audio(d / "tone.wav", _tone(), SR),
        "corrupt": d / "corrupt.mp4",
        "empty": d / "empty.mp4",
        "one_px": d / "one.png",
        "not_image": d / "not_image.png",
        "nan": _nan_wav(d / "nan.wav"),
    }
    m["corrupt"].write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    m["empty"].write_bytes(b"")
    Image.fromarray(np.array([[[10, 200, 30]]], np.uint8)).save(m["one_px"])
    m["not_image"].write_text("this is not an image")
    m["wav_named_mp4"] = shutil.copy(m["wav"], d / "wav_named.mp4")  # a lying extension
    m["png_named_mp4"] = shutil.copy(m["one_px"], d / "png_named.mp4")
    return {k: str(v) for k, v in m.items()}


def _check_result(result):
    strip, wave, spec, info = result
    for img in (strip, wave, spec):
        assert isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert img.std() > 8.0
    assert isinstance(info, str) and "duration" in info
    return info


def _error_message(call) -> str:
    """Run call; it must raise gr.Error (never another type). Returns its message."""
    with pytest.raises(gr.Error) as exc:
        call()
    msg = exc.value.message
    assert isinstance(msg, str) and 10 < len(msg) < 300
    assert "Traceback" not in msg and "Error(" not in msg
    return msg


def test_valid_clip_gives_images_and_info(media):
    info = _check_result(handlers.analyze(media["ok"], None, None))
    assert "2.00 s" in info and "16 at 8 fps" in info and "80x64" in info and "48000 Hz" in info
    assert "present" in info


def test_video_without_audio_works_and_says_silent(media):
    with pytest.warns(UserWarning, match="silence"):  # gr.Warning outside a request: a pop-up notice inside one
        info = _check_result(handlers.analyze(media["no_audio"], None, None))
    assert "silent" in info and "no audio" in info


def test_one_pixel_image_with_audio_works(media):
    info = _check_result(handlers.analyze(None, media["one_px"], media["wav"]))
    assert "1x1" in info and "still_image" in info and "2.00 s" in info


def test_audio_only_works_and_says_no_video(media):
    with pytest.warns(UserWarning, match="no video"):
        info = _check_result(handlers.analyze(None, None, media["wav"]))
    assert "no_video" in info


def test_lying_extensions_are_read_by_content(media):
    assert "no_video" in _check_result(handlers.analyze(media["wav_named_mp4"], None, None))
    assert "still_image" in _check_result(handlers.analyze(media["png_named_mp4"], None, None))


def test_video_wins_over_other_uploads_with_a_note(media):
    info = _check_result(handlers.analyze(media["ok"], media["one_px"], media["wav"]))
    assert "ignored" in info and "80x64" in info


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("corrupt", None, None), ["corrupt.mp4", "damaged"]),
        (("empty", None, None), ["empty.mp4", "empty"]),
        ((None, "not_image", "wav"), ["not_image.png", "not an image"]),
        ((None, "one_px", "nan"), ["nan.wav", "NaN"]),
    ],
    ids=["corrupt", "empty", "not-an-image", "nan-audio"],
)
def test_bad_files_give_readable_errors(media, args, words):
    paths = [media[a] if a else None for a in args]
    msg = _error_message(lambda: handlers.analyze(*paths))
    for w in words:
        assert w in msg


def test_nothing_uploaded_says_what_to_do():
    assert _error_message(lambda: handlers.analyze(None, None, None)) == handlers.NOTHING_GIVEN


def test_unexpected_failure_is_logged_and_generic(media, monkeypatch, caplog):
    def boom(*a, **k):
        raise RuntimeError("internal detail")

    monkeypatch.setattr(handlers.viz, "spectrogram_plot", boom)
    with caplog.at_level(logging.ERROR, logger=handlers.log.name):
        msg = _error_message(lambda: handlers.analyze(media["ok"], None, None))
    assert msg == handlers.GENERIC_FAILURE and "internal detail" not in msg
    assert any("internal detail" in (r.exc_text or "") or r.exc_info for r in caplog.records)
    monkeypatch.undo()
    _check_result(handlers.analyze(media["ok"], None, None))  # and the next request works


def test_info_markdown_lists_flags_and_notes(media):
    from avllm.media import load_clip

    clip = load_clip(media["no_audio"])
    info = handlers.media_info(clip, ["extra note"])
    assert info["flags"] == ["silent"] and info["frames"] == clip.num_frames
    md = handlers.info_markdown(info)
    assert "| flags | silent |" in md and "- extra note" in md


def _labels(demo: gr.Blocks) -> list[str]:
    return [getattr(b, "label", None) for b in demo.blocks.values()]


def test_build_demo_lists_examples_only_when_present(media, tmp_path, monkeypatch):
    # building reads no media: loading would fail loudly here
    monkeypatch.setattr(handlers, "load_clip_from_config", lambda *a, **k: pytest.fail("media loaded at build"))
    empty = layout.build_demo(examples_dir=tmp_path / "missing")
    assert "Example clips" not in _labels(empty)
    ex = tmp_path / "examples"
    ex.mkdir()
    shutil.copy(media["ok"], ex / "clip.mp4")
    with_examples = layout.build_demo(examples_dir=ex)
    assert "Example clips" in _labels(with_examples)
    assert layout.example_videos(ex) == [str(ex / "clip.mp4")]
    for d in (empty, with_examples):
        assert {"Video clip", "Image", "Audio", "Frames", "Waveform", "Spectrogram"} <= set(_labels(d))


def test_app_defines_a_queued_demo_without_launching():
    import app

    assert isinstance(app.demo, gr.Blocks)
    assert app.demo._queue.max_size == 32
    assert not getattr(app.demo, "is_running", False)
