"""Demo handlers on CPU with an untrained tiny checkpoint written to tmp: every output of a valid clip, the chat,
the frame slider, checkpoint errors (missing, wrong, hub id offline, default absent), and bad media."""

import json
import logging
import shutil
from pathlib import Path

import av
import gradio as gr
import numpy as np
import pytest
from model_factory import tiny_model
from PIL import Image

from avllm import predict
from avllm.checkpoint import save
from avllm.media import write_audio, write_video
from demo import handlers, layout

SR = 48000
EXAMPLE = handlers.EXAMPLES_DIR / "one_of_two_sounding.mp4"


def _tone(seconds=2.0, hz=440.0):
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _nan_wav(path):
    """A 32-bit float wav holding one NaN sample (write_audio refuses NaN, so write it with PyAV directly)."""
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
def ckpt(tmp_path_factory):
    return str(save(tiny_model(), tmp_path_factory.mktemp("model") / "ckpt"))


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


@pytest.fixture(scope="module")
def result(media, ckpt):
    """One full analysis of the valid clip, shared by the tests that read its outputs."""
    return handlers.analyze(media["ok"], None, None, ckpt, "A red square is heard.", "How many objects are there?")


def _is_picture(img, min_std=8.0):
    assert isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.shape[0] > 100 and img.shape[1] > 200
    assert img.std() > min_std, "image looks blank"


def _streams(path):
    with av.open(str(path)) as c:
        return {s.type: s.codec_context.name for s in c.streams}


def _error_message(call) -> str:
    """Run call; it must raise gr.Error (never another type). Returns its message."""
    with pytest.raises(gr.Error) as exc:
        call()
    msg = exc.value.message
    assert isinstance(msg, str) and 10 < len(msg) < 400
    assert "Traceback" not in msg and "Error(" not in msg
    return msg


# ----------------------------------------------------------------------------------------------------------------
# A valid clip


def test_valid_clip_gives_every_output(result):
    for name in ("boxes", "ssl", "slots", "audio_slots", "dense", "dense_time", "waveform", "spectrogram", "frame"):
        _is_picture(getattr(result, name))
    assert "2.00 s" in result.info and "16 at 8 fps" in result.info and "80x64" in result.info
    assert _streams(result.overlay) == {"video": "h264", "audio": "aac"}
    with av.open(result.overlay) as c:
        assert c.streams.video[0].frames == 16 and c.duration / 1e6 > 1.9
    doc = json.loads(Path(result.json_file).read_text())
    assert {"media", "prediction", "frame_maps"} <= set(doc)
    pred = doc["prediction"]
    assert {"ground", "temporal", "caption", "factcheck", "avqa"} == set(pred["answers"])
    assert pred["avqa_choice"] and len(pred["proposal_box"]) == 4
    assert np.asarray(doc["frame_maps"]["ssl"]).shape == (len(pred["frame_times"]), 8, 8)
    for task in ("Grounding", "Temporal localization", "Fact-check", "AVQA", "Caption"):
        assert f"| {task} |" in result.answers
    assert "ground truth" not in result.answers  # an upload that is no example has no ground truth
    t = len(pred["frame_times"])
    assert result.slider["maximum"] == t - 1 and result.session.frame_maps.shape[0] == t
    assert result.chat == [] and "loaded" in result.status


def test_frame_slider_shows_each_sampled_frame(result):
    views = [handlers.show_frame(i, result.session) for i in range(len(result.session.frame_times))]
    for v in views:
        _is_picture(v)
    assert not np.array_equal(views[0], views[-1])  # other frame, other map, other title
    _is_picture(handlers.show_frame(99, result.session))  # clamped
    assert handlers.show_frame(0, None).std() > 1.0  # placeholder before Analyze


def test_chat_answers_about_the_analysed_clip(result):
    history, box = handlers.chat("Where is the sound coming from?", [], result.session)
    assert box == "" and [m["role"] for m in history] == ["user", "assistant"]
    assert history[0]["content"] == "Where is the sound coming from?" and history[1]["content"].strip()
    again, _ = handlers.chat("And when?", history, result.session)
    assert len(again) == 4 and again[:2] == history
    assert handlers.chat("   ", history, result.session) == (history, "")
    assert _error_message(lambda: handlers.chat("hello?", [], None)) == handlers.ANALYZE_FIRST


def test_example_clip_gets_its_ground_truth(ckpt, tmp_path):
    if not EXAMPLE.is_file():
        pytest.skip("examples/ not generated (python examples/make_examples.py)")
    renamed = shutil.copy(EXAMPLE, tmp_path / "renamed.mp4")  # found by content, not by name
    r = handlers.analyze(str(renamed), None, None, ckpt, "", "")
    assert "| ground truth |" in r.answers and "bell" in r.answers
    doc = json.loads(Path(r.json_file).read_text())
    assert doc["ground_truth"]["record"]["video"] == EXAMPLE.name
    assert "factcheck" not in doc["prediction"]["answers"]  # no claim typed, no fact-check


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints


def test_missing_and_wrong_checkpoints_give_readable_errors(media, tmp_path):
    msg = _error_message(lambda: handlers.analyze(media["ok"], None, None, str(tmp_path / "nope")))
    assert "checkpoint not found" in msg and "nope" in msg
    (tmp_path / "empty_dir").mkdir()
    msg = _error_message(lambda: handlers.analyze(media["ok"], None, None, str(tmp_path / "empty_dir")))
    assert "not an avllm checkpoint" in msg and "config.json" in msg
    (tmp_path / "weights.pt").write_bytes(b"\x80\x04junk")
    msg = _error_message(lambda: handlers.analyze(media["ok"], None, None, str(tmp_path / "weights.pt")))
    assert "pickle" in msg


def test_hub_id_says_the_hub_cannot_be_reached(media, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    msg = _error_message(lambda: handlers.analyze(media["ok"], None, None, "someone/avllm-base"))
    assert "cannot reach the model hub" in msg and "local directory" in msg and "someone/avllm-base" in msg
    assert "model hub" in handlers.checkpoint_status("someone/avllm-base")


def test_absent_default_checkpoint_still_shows_the_media(media, tmp_path, monkeypatch):
    monkeypatch.setattr(predict, "REPO_ROOT", tmp_path)  # a checkout without assets/avllm-tiny
    monkeypatch.chdir(tmp_path)
    assert "No default checkpoint is present" in handlers.checkpoint_status("")
    with pytest.warns(UserWarning, match="No default checkpoint"):
        r = handlers.analyze(media["ok"], None, None, predict.DEFAULT_CHECKPOINT)
    assert "No default checkpoint is present" in r.status and "80x64" in r.info
    for img in (r.boxes, r.waveform, r.spectrogram):
        _is_picture(img)
    assert r.overlay is None and r.json_file is None and r.session is None


def test_checkpoint_status_of_a_local_directory(ckpt):
    assert ckpt in handlers.checkpoint_status(ckpt)
    assert "not found" in handlers.checkpoint_status("./no/such/dir")


# ----------------------------------------------------------------------------------------------------------------
# Inputs


def test_video_without_audio_works_with_a_notice(media, ckpt):
    with pytest.warns(UserWarning, match="silence"):  # gr.Warning outside a request: a pop-up notice inside one
        r = handlers.analyze(media["no_audio"], None, None, ckpt)
    assert "silent" in r.info and _streams(r.overlay) == {"video": "h264"}
    _is_picture(r.boxes)


def test_one_pixel_image_with_audio_works(media, ckpt):
    r = handlers.analyze(None, media["one_px"], media["wav"], ckpt)
    assert "1x1" in r.info and "still_image" in r.info
    _is_picture(r.dense)
    assert _streams(r.overlay) == {"video": "h264", "audio": "aac"}


def test_audio_only_with_a_lying_extension_works_without_a_video(media, ckpt):
    with pytest.warns(UserWarning, match="no video"):
        r = handlers.analyze(media["wav_named_mp4"], None, None, ckpt)
    assert "no_video" in r.info and r.overlay is None
    _is_picture(r.waveform)
    assert json.loads(Path(r.json_file).read_text())["media"]["frames"] == 0


def test_long_clips_are_cut_with_a_notice(media, ckpt, monkeypatch):
    monkeypatch.setattr(handlers, "MAX_SECONDS", 1.0)
    with pytest.warns(UserWarning, match="cut to 1 s"):
        r = handlers.analyze(media["ok"], None, None, ckpt)
    assert "truncated" in r.info and "1.00 s" in r.info
    with av.open(r.overlay) as c:
        assert c.streams.video[0].frames == 8


def test_image_with_a_lying_extension_is_read_as_an_image(media, ckpt):
    with pytest.warns(UserWarning, match="silence"):
        r = handlers.analyze(media["png_named_mp4"], None, None, ckpt)
    assert "still_image" in r.info and "1x1" in r.info


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
def test_bad_files_give_readable_errors(media, ckpt, args, words):
    paths = [media[a] if a else None for a in args]
    msg = _error_message(lambda: handlers.analyze(*paths, ckpt))
    for w in words:
        assert w in msg


def test_nothing_uploaded_says_what_to_do(ckpt):
    assert _error_message(lambda: handlers.analyze(None, None, None, ckpt)) == handlers.NOTHING_GIVEN


def test_unexpected_failure_is_logged_and_generic(media, ckpt, monkeypatch, caplog):
    def boom(*a, **k):
        raise RuntimeError("internal detail")

    monkeypatch.setattr(handlers.render, "render_images", boom)
    with caplog.at_level(logging.ERROR, logger=handlers.log.name):
        msg = _error_message(lambda: handlers.analyze(media["ok"], None, None, ckpt))
    assert msg == handlers.GENERIC_FAILURE and "internal detail" not in msg
    assert any("internal detail" in (r.exc_text or "") or r.exc_info for r in caplog.records)


def test_info_markdown_lists_flags_and_notes(media):
    from avllm.media import load_clip

    clip = load_clip(media["no_audio"])
    info = handlers.media_info(clip, ["extra note"])
    assert info["flags"] == ["silent"] and info["frames"] == clip.num_frames
    md = handlers.info_markdown(info)
    assert "| flags | silent |" in md and "- extra note" in md


# ----------------------------------------------------------------------------------------------------------------
# The page


def _labels(demo: gr.Blocks) -> list[str]:
    return [getattr(b, "label", None) for b in demo.blocks.values()]


def test_build_demo_lists_examples_only_when_present(media, tmp_path, monkeypatch):
    # building loads no model and reads no media: either would fail loudly here
    monkeypatch.setattr(handlers, "load_clip_from_config", lambda *a, **k: pytest.fail("media loaded at build"))
    monkeypatch.setattr(handlers.MODELS, "get", lambda *a, **k: pytest.fail("model loaded at build"))
    empty = layout.build_demo(examples_dir=tmp_path / "missing")
    assert "Example clips" not in _labels(empty)
    ex = tmp_path / "examples"
    ex.mkdir()
    shutil.copy(media["ok"], ex / "clip.mp4")
    with_examples = layout.build_demo(examples_dir=ex)
    assert "Example clips" in _labels(with_examples)
    assert layout.example_rows(ex) == [[str(ex / "clip.mp4"), "", ""]]
    want = {"Video clip", "Image", "Audio", "Checkpoint", "Boxes", "Waveform", "Spectrogram", "Slot maps",
            "DenseAV heads", "Audio slots over time", "Sampled frame", "Ask about the clip"}  # fmt: skip
    for d in (empty, with_examples):
        assert want <= set(_labels(d))


def test_shipped_examples_carry_texts_and_ground_truth():
    rows = layout.example_rows()
    if not rows:
        pytest.skip("examples/ not generated")
    assert len(rows) >= 4 and all(claim and question for _, claim, question in rows)
    index = handlers.example_index()
    for entry, path in zip(index.entries, index.files()):
        assert path.stat().st_size < 300_000 and index.record_for(path).id == entry["record"]["id"]


def test_app_defines_a_queued_demo_without_launching():
    import app

    assert isinstance(app.demo, gr.Blocks)
    assert app.demo._queue.max_size == 32 and app.demo._queue.default_concurrency_limit == 2
    assert not getattr(app.demo, "is_running", False)
    api = [fn.api_name for fn in app.demo.fns.values() if fn.api_name]
    assert "analyze" in api
