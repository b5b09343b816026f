"""``python -m avllm.predict`` writes the images, the overlay video and prediction.json, and fails cleanly on bad
input; the pieces it shares with the demo (checkpoint resolution, example lookup, map interpolation, ground truth)
hold their properties."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from model_factory import tiny_model
from PIL import Image

from avllm import predict, render
from avllm.checkpoint import CheckpointError, save
from avllm.media import write_audio, write_video
from avllm.record import ObjectAnn, Record, TextSample
from avllm.synth import CLASS_NAMES

REPO = Path(__file__).resolve().parent.parent
SR = 48000


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return str(save(tiny_model(), tmp_path_factory.mktemp("model") / "ckpt"))


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    d = tmp_path_factory.mktemp("clip")
    frames = np.zeros((12, 48, 64, 3), np.uint8)
    for i in range(12):
        frames[i, 8:24, 3 * i : 3 * i + 16] = (40, 200, 60)
    t = np.arange(int(1.5 * SR)) / SR
    return write_video(d / "square.mp4", frames, 8.0, (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), SR)


def test_cli_writes_every_file(ckpt, clip_path, tmp_path, capsys):
    out = tmp_path / "out"
    code = predict.main([str(clip_path), "--checkpoint", ckpt, "--claim", "A green square hums.",
                         "--question", "How many objects are there?", "--out", str(out)])  # fmt: skip
    assert code == 0
    for name in render.IMAGE_NAMES:
        img = np.asarray(Image.open(out / f"{name}.png").convert("RGB"))
        assert img.shape[0] > 100 and img.std() > 8.0, name
    with av.open(str(out / "overlay.mp4")) as c:
        assert {s.type: s.codec_context.name for s in c.streams} == {"video": "h264", "audio": "aac"}
        assert c.streams.video[0].frames == 12
    doc = json.loads((out / "prediction.json").read_text())
    assert doc["media"]["source"] == "square.mp4" and doc["media"]["frames"] == 12
    assert set(doc["prediction"]["answers"]) == {"ground", "temporal", "caption", "factcheck", "avqa"}
    assert "ground_truth" not in doc
    tags = doc["prediction"]["tags"]  # the class-tag head: probabilities, most likely first
    assert set(tags) == {"seen", "heard"}
    for probs in tags.values():
        values = list(probs.values())
        assert set(probs) <= set(CLASS_NAMES) and values == sorted(values, reverse=True)
        assert all(0.05 <= v <= 1.0 for v in values)
    classes = doc["prediction"]["classes"]  # the class maps of the likely classes
    times = doc["prediction"]["curves"]["times"]
    for name, v in classes.items():
        assert name in CLASS_NAMES and max(v["seen"], v["heard"]) >= 0.5
        assert all(0.0 <= x <= 1.0 for x in v["centre"]) and len(v["activity"]) == len(times)
    printed = capsys.readouterr().out
    assert re.search(r"square\.mp4: 1\.5\d s, 12 frames", printed)  # AAC may add a few ms
    assert "Fact-check:" in printed and "wrote 8 images" in printed


def test_cli_image_and_audio(ckpt, tmp_path, capsys):
    img, wav = tmp_path / "still.png", tmp_path / "tone.wav"
    Image.fromarray(np.full((40, 30, 3), 120, np.uint8)).save(img)
    write_audio(wav, np.zeros(SR, np.float32) + 0.1 * np.sin(np.arange(SR) / 9.0), SR)
    args = ["--image", str(img), "--audio", str(wav), "--checkpoint", ckpt, "--out", str(tmp_path / "o")]
    assert predict.main(args) == 0
    assert (tmp_path / "o" / "overlay.mp4").is_file() and "still.png + tone.wav" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda d: d / "missing.mp4", ["not found", "missing.mp4"]),
        (lambda d: (d / "garbage.mp4").write_bytes(os.urandom(3000)) and d / "garbage.mp4", ["garbage.mp4"]),
        (lambda d: (d / "empty.webm").write_bytes(b"") or d / "empty.webm", ["empty.webm", "empty"]),
    ],
    ids=["missing", "garbage", "empty"],
)
def test_cli_bad_media_exits_2_with_a_message(ckpt, tmp_path, capsys, make, words):
    path = make(tmp_path)
    assert predict.main([str(path), "--checkpoint", ckpt, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    for w in words:
        assert w in err
    assert not (tmp_path / "o" / "prediction.json").exists()


def test_cli_bad_arguments_and_checkpoints(clip_path, tmp_path, capsys, monkeypatch):
    out = ["--out", str(tmp_path / "o")]
    assert predict.main(out) == 2 and "give a video" in capsys.readouterr().err
    assert predict.main([str(clip_path), "--image", "x.png", *out]) == 2 and "not both" in capsys.readouterr().err
    assert predict.main([str(clip_path), "--checkpoint", str(tmp_path / "none"), *out]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert predict.main([str(clip_path), "--checkpoint", "someone/avllm-base", *out]) == 2
    assert "cannot reach the model hub" in capsys.readouterr().err


def test_module_runs_as_a_program_and_fails_cleanly(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "avllm.predict", str(tmp_path / "nothing.mp4"), "--checkpoint",
         str(tmp_path / "no_ckpt"), "--out", str(tmp_path / "o")],
        check=False, capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2 and "error: checkpoint not found" in proc.stderr and "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------------------------------------------
# Shared pieces


def test_checkpoint_kinds(tmp_path, monkeypatch):
    monkeypatch.setattr(predict, "REPO_ROOT", tmp_path)
    monkeypatch.chdir(tmp_path)
    assert predict.checkpoint_kind("") == ("default_missing", None)
    with pytest.raises(predict.NoDefaultCheckpoint):
        predict.resolve_checkpoint(None)
    (tmp_path / "assets" / "avllm-tiny").mkdir(parents=True)
    assert predict.checkpoint_kind("") == ("local", (tmp_path / "assets" / "avllm-tiny").resolve())
    assert predict.checkpoint_kind("org/model-1.5")[0] == "hub"
    assert predict.checkpoint_kind("./org/model")[0] == "missing"
    assert predict.checkpoint_kind("a/b/c")[0] == "missing"
    with pytest.raises(CheckpointError, match="not found"):
        predict.resolve_checkpoint("a/b/c")


def test_example_index_matches_content_not_names(tmp_path):
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"some clip bytes")
    rec = Record(id="x1", source="synth", duration=2.0)
    entry = {"file": "a.mp4", "sha256": hashlib.sha256(clip.read_bytes()).hexdigest(), "record": rec.to_dict()}
    (tmp_path / "examples.json").write_text(json.dumps({"examples": [entry]}))
    index = predict.ExampleIndex(tmp_path / "examples.json")
    assert index.files() == [clip]
    renamed = Path(shutil.copy(clip, tmp_path / "b.mp4"))
    assert index.record_for(renamed).id == "x1"
    clip.write_bytes(b"other bytes")  # same name, other content
    assert index.record_for(clip) is None and index.record_for(None) is None
    assert predict.ExampleIndex(tmp_path / "missing.json").record_for(renamed) is None


@settings(max_examples=40, deadline=None)
@given(
    t=st.integers(1, 6), seed=st.integers(0, 10_000),
    at=st.lists(st.floats(-2.0, 12.0, allow_nan=False), min_size=1, max_size=10),
)  # fmt: skip
def test_interpolated_maps_pass_through_the_samples_and_stay_between_them(t, seed, at):
    rng = np.random.default_rng(seed)
    times = np.sort(rng.choice(np.arange(0, 10, 0.25), size=t, replace=False))
    maps = rng.random((t, 3, 4)).astype(np.float32)
    exact = render.interpolate_maps(maps, times, times)
    np.testing.assert_allclose(exact, maps, atol=1e-6)
    got = render.interpolate_maps(maps, times, np.asarray(at))
    assert got.shape == (len(at), 3, 4)
    assert np.all(got >= maps.min(0) - 1e-6) and np.all(got <= maps.max(0) + 1e-6)
    for a, g in zip(at, got):  # held constant outside the sampled span
        if a <= times[0]:
            np.testing.assert_allclose(g, maps[0], atol=1e-6)
        elif a >= times[-1]:
            np.testing.assert_allclose(g, maps[-1], atol=1e-6)


def test_interpolated_map_halfway_is_the_mean():
    maps = np.stack([np.zeros((2, 2)), np.ones((2, 2))]).astype(np.float32)
    np.testing.assert_allclose(render.interpolate_maps(maps, [1.0, 3.0], [2.0]), 0.5)
    with pytest.raises(ValueError):
        render.interpolate_maps(maps, [1.0], [2.0])


def test_ground_truth_of_a_record():
    objs = [
        ObjectAnn("bell", [0.1, 0.1, 0.4, 0.4], True, [[1.0, 2.0]], frame_boxes=[[0.0, 0.0, 0.2, 0.2],
                                                                                  [0.5, 0.5, 0.7, 0.7]]),
        ObjectAnn("clock", [0.6, 0.6, 0.9, 0.9], False),
    ]
    texts = [TextSample("ground", "Where?", "[0.10, 0.10, 0.40, 0.40]"),
             TextSample("factcheck", "True or false? The bell rings.", "true", {"claim": "The bell rings."}),
             TextSample("avqa", "How many sounds?", "1")]  # fmt: skip
    rec = Record(id="r", source="synth", duration=2.0, objects=objs, texts=texts)
    assert render.gt_boxes(rec) == ([[0.1, 0.1, 0.4, 0.4]], ["GT bell"])
    assert render.gt_boxes(rec, t=1.5) == ([[0.5, 0.5, 0.7, 0.7]], ["GT bell"])  # the frame shown at 1.5 s
    assert render.gt_segments(rec) == [[1.0, 2.0]] and render.gt_segments(None) is None
    from avllm.predictor import Prediction, TextAnswer

    answers = {"ground": TextAnswer("Where is it?", "x"), "factcheck": TextAnswer(
        "Is this claim true or false? the bell rings", "true"), "avqa": TextAnswer("How many colours?", "2")}
    pred = Prediction(2.0, 1.0, [0.5, 1.5], answers, None, [0, 0, 1, 1], [0, 1], None, {}, {}, {})
    assert render.gt_answers(rec, pred) == {"ground": "[0.10, 0.10, 0.40, 0.40]", "factcheck": "true"}
    pred.classes = {"bell": {"seen": 0.9, "heard": 0.8, "sounding": 0.7, "centre": [0.25, 0.75], "activity": []},
                    "bird": {"seen": 0.1, "heard": 0.9, "sounding": 0.2, "centre": [0.5, 0.5], "activity": []}}
    md = render.answers_markdown(pred)
    assert "class maps, where: bell at (0.25, 0.75), sounding" in md and "bird at" not in md  # the bird is unseen


def test_readme_scripting_snippet_runs(ckpt, tmp_path, monkeypatch):
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Scripting"):]
    code = re.findall(r"```python\n(.*?)```", section, flags=re.S)[0]
    assert "render_all" in code and "assets/avllm-tiny" in code
    monkeypatch.chdir(REPO)  # the snippet reads examples/ relative to the repository
    code = code.replace('"assets/avllm-tiny"', repr(ckpt)).replace('"out/"', repr(str(tmp_path / "out")))
    scope: dict = {}
    exec(compile(code, "README.md:Scripting", "exec"), scope)
    assert set(scope["out"].images) == set(render.IMAGE_NAMES)
    assert (tmp_path / "out" / "overlay.mp4").is_file() and (tmp_path / "out" / "prediction.json").is_file()


def test_class_maps_of_a_located_model_reach_the_rendered_images(clip_path):
    import torch

    from avllm.config import get_preset
    from avllm.media import load_clip
    from avllm.predictor import Predictor

    torch.manual_seed(0)
    pred_ = Predictor(tiny_model(get_preset("tiny").replace(tag_locate=True)).eval())
    clip = load_clip(clip_path, fps=8.0)
    pred_.set_clip(clip)
    every = pred_.class_maps(min_prob=0.0)  # every class, whatever its probability
    m = pred_.maps()
    times = m["times"]
    assert set(every) == set(CLASS_NAMES)
    # the sounding map (class maps weighted by sounding probability) is drawn beside the SSL and AVACE maps
    assert m["sounding"].shape == m["ssl"].shape and 0.0 <= m["sounding"].min() and m["sounding"].max() <= 1.0
    for v in every.values():
        assert len(v["activity"]) == len(times) and all(0.0 <= x <= 1.0 for x in v["centre"] + v["activity"])
        assert all(0.0 <= v[k] <= 1.0 for k in ("seen", "heard", "sounding"))
    pred = pred_.predict()
    base = render.render_images(clip, pred)
    pred.classes = {"bell": {**every["bell"], "seen": 0.9, "heard": 0.9, "sounding": 0.9}}
    shown = render.render_images(clip, pred)
    assert not np.array_equal(shown["boxes"], base["boxes"])  # one more panel: the classes seen, marked
    assert not np.array_equal(shown["audio_slots"], base["audio_slots"])  # the bell's activity line
    pred.maps = {k: v for k, v in pred.maps.items() if k != "sounding"}
    assert render.render_images(clip, pred)["ssl"].shape[1] < shown["ssl"].shape[1]  # one map fewer in the row
    assert "class maps, where: bell at" in render.answers_markdown(pred)


def test_dense_head_roles_come_from_the_recorded_speech_evaluation(tmp_path):
    from avllm.predictor import dense_roles
    from avllm.render import head_name

    rec = tmp_path / "recorded_metrics.json"
    assert dense_roles(tmp_path, 2) == []  # nothing recorded: heads by number
    measured = {"seg.speech_head": 0.0, "seg.specialised": 1.0}
    rec.write_text(json.dumps({"ground.acc50": 0.7, "_speech_split": measured}))
    assert dense_roles(tmp_path, 2) == ["speech", "sound"]
    assert dense_roles(tmp_path, 3) == ["speech", "sound", ""]
    assert dense_roles(tmp_path, 1) == []
    rec.write_text(json.dumps({"_speech_split": {"seg.speech_head": 1.0, "seg.specialised": 0.0}}))
    assert dense_roles(tmp_path, 2) == []  # measured, but not specialised: no names
    rec.write_text(json.dumps({"_speech_split": {"seg.speech_head": 5.0, "seg.specialised": 1.0}}))
    assert dense_roles(tmp_path, 2) == []
    for broken in ("{not json", "[1, 2]", '{"_speech_split": 3}'):
        rec.write_text(broken)
        assert dense_roles(tmp_path, 2) == []
    assert head_name(1, ["sound", "speech"]) == "head 1 (speech)" and head_name(1) == "head 1"
    assert head_name(2, ["sound", "speech"]) == "head 2" and head_name(0, ["", "speech"]) == "head 0"
