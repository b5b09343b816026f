"""Items and batches: make_item, the file-backed and generated datasets, collate."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from avllm.data import (
    AVDataset,
    DataError,
    GeneratedDataset,
    collate,
    make_item,
    rasterize_boxes,
    select_frames,
)
from avllm.readers import read_avsbench, read_vggss
from avllm.record import ObjectAnn, Record, TextSample
from test_readers import make_avsbench, make_vggss, write_mask

S = 32  # image size of the items in these tests


def frames_ramp(t0=10, h=24, w=40) -> np.ndarray:
    """(T0, H, W, 3) uint8 frames whose red channel encodes the frame index."""
    f = np.zeros((t0, h, w, 3), np.uint8)
    f[..., 0] = (np.arange(t0) * 20)[:, None, None]
    return f


def record(**kw) -> Record:
    texts = [
        TextSample(task="ground", prompt="Where is the bell?", answer="It is at [0.10, 0.20, 0.50, 0.60]."),
        TextSample(task="temporal", prompt="When does it ring?", answer="From [0.50, 1.25]."),
        TextSample(task="factcheck", prompt="The bell rings. True?", answer="No, it does not."),
        TextSample(task="factcheck", prompt="A drum?", answer="maybe", meta={"label": True}),
        TextSample(task="avqa", prompt="How many bells?", answer="Two"),
    ]
    base = dict(id="r1", source="synth", duration=2.0, key_time=1.0, ssl_boxes=[[0.5, 0.5, 1.0, 1.0]], texts=texts,
                objects=[ObjectAnn(category="bell", box=[0.5, 0.5, 1.0, 1.0], sounding=True)])
    return Record(**(base | kw))


def build(rec, text, t0=10, **kw):
    times = np.arange(t0) * 0.2  # 5 fps over 2 s
    audio = np.linspace(-0.5, 0.5, 16000 * 2, dtype=np.float32)
    opts = dict(num_frames=4, image_size=S, target_rate=16000, audio_seconds=3.0) | kw
    return make_item(frames_ramp(t0), times, audio, 16000, rec, text, **opts)


# ----------------------------------------------------------------------------------------------------------------
# Pieces


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 40), st.integers(1, 8), st.floats(0, 12, allow_nan=False), st.sampled_from(["clip", "key"]))
def test_select_frames_always_shows_the_key_frame(t0, n, key_time, mode):
    ft = np.arange(t0) * 0.25
    idx, times, k = select_frames(ft, n, key_time, span=t0 * 0.25, mode=mode)
    assert idx.shape == (n,) and times.shape == (n,) and times.dtype == np.float32
    assert 0 <= idx.min() and idx.max() < t0 and np.all(np.diff(idx) >= 0)  # in range, in time order
    assert idx[k] == int(np.argmin(np.abs(ft - key_time)))  # the key frame is the one at key_index
    if t0 >= n and mode == "key":
        assert len(set(idx.tolist())) == n  # consecutive distinct frames when there are enough


def test_select_frames_spreads_over_the_clip():
    idx, times, k = select_frames(np.arange(80) / 8.0, 4, key_time=5.5, span=10.0)
    assert idx.tolist() == [10, 30, 44, 70] and k == 2  # 1.25, 3.75, [6.25 -> the key frame at 5.5], 8.75
    assert times.tolist() == [1.25, 3.75, 5.5, 8.75]
    idx, times, k = select_frames(np.zeros(1), 3, key_time=2.2, span=3.0)  # a still image: repeated
    assert idx.tolist() == [0, 0, 0] and times.tolist() == [0.5, 1.5, 2.5] and k == 2


def test_rasterize_boxes_rules():
    m = rasterize_boxes([[0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75]], 8, "union")
    assert m.shape == (8, 8) and m.dtype == torch.float32 and set(m.unique().tolist()) == {0.0, 1.0}
    assert m.sum() == 16 + 16 - 4
    f = rasterize_boxes([[0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75]], 8, "flickr")
    assert f[0, 0] == 0.5 and f[3, 3] == 1.0 and f[7, 7] == 0.0  # one annotator: half; two: full
    tiny = rasterize_boxes([[0.51, 0.51, 0.52, 0.52]], 8)
    assert tiny.sum() == 1 and tiny[4, 4] == 1


# ----------------------------------------------------------------------------------------------------------------
# make_item


def test_make_item_shapes_and_targets():
    rec = record()
    it = build(rec, rec.texts[0])
    assert it["frames"].shape == (4, 3, S, S) and it["frames"].dtype == torch.float32
    assert 0.0 <= it["frames"].min() and it["frames"].max() <= 1.0
    assert it["frame_times"].shape == (4,) and it["frame_times"][it["key_index"]] == pytest.approx(1.0)
    # the red channel tells which source frame was taken: the key frame (index 5, t = 1.0 s) is there
    assert it["frames"][it["key_index"], 0].mean() * 255 == pytest.approx(100, abs=1)
    assert it["audio"].shape == (48000,) and it["audio_len"] == 32000 and it["audio"][32000:].abs().sum() == 0
    assert (it["task"], it["prompt"], it["id"]) == ("ground", "Where is the bell?", "r1")
    assert torch.allclose(it["boxes"], torch.tensor([[0.1, 0.2, 0.5, 0.6]]))  # the answer's box, not ssl_boxes
    assert it["box_mask"].shape == (S, S) and it["box_mask"][S - 1, S - 1] == 1 and it["box_mask"][0, 0] == 0
    assert it["box_mask"].sum() == (S // 2) ** 2
    assert it["segments"].shape == (0, 2) and it["label"] == -1 and it["answer_index"] == -1


def test_make_item_per_task_targets():
    rec = record()
    t = build(rec, rec.texts[1])
    assert t["segments"].tolist() == [[0.5, 1.25]] and t["boxes"].tolist() == [[0.5, 0.5, 1.0, 1.0]]
    assert build(rec, rec.texts[2])["label"] == 0 and build(rec, rec.texts[3])["label"] == 1
    q = build(rec, rec.texts[4], answers=["one", "two", "three"])
    assert q["answer_index"] == 1
    assert build(rec, rec.texts[4], answers=["yes", "no"])["answer_index"] == -1
    none = build(rec, None)
    assert (none["task"], none["prompt"], none["answer"]) == ("", "", "")
    assert none["boxes"].shape == (1, 4) and none["label"] == -1


def test_make_item_audio_crop_and_resample():
    rec = record()
    it = build(rec, None, audio_seconds=1.0)
    assert it["audio"].shape == (16000,) and it["audio_len"] == 16000
    assert it["audio"][0] == pytest.approx(-0.5) and it["audio"][-1] < 0  # the first second, not the middle
    hi = make_item(frames_ramp(), np.arange(10) * 0.2, np.ones(8000, np.float32), 8000, rec, None,
                   image_size=S, target_rate=16000, audio_seconds=2.0)
    assert hi["audio_len"] == 16000 and hi["audio"][:16000].mean() == pytest.approx(1.0)  # 1 s at 8 kHz -> 1 s at 16 kHz
    stereo = make_item(frames_ramp(), np.arange(10) * 0.2, np.ones((4000, 2), np.float32), 16000, rec, None,
                       image_size=S, target_rate=16000, audio_seconds=1.0)
    assert stereo["audio_len"] == 4000


def test_make_item_masks_and_errors(tmp_path):
    write_mask(tmp_path / "m.png", size=(40, 20), box=(0, 0, 20, 10))  # top-left quarter
    rec = record(ssl_mask="m.png", meta={"gt_rule": "flickr"})
    it = build(rec, None, root=tmp_path)
    assert it["box_mask"].sum() == (S // 2) ** 2 and it["box_mask"][0, 0] == 1 and it["box_mask"][-1, -1] == 0
    fl = build(record(ssl_boxes=[[0, 0, 1, 1]], meta={"gt_rule": "flickr"}), None)
    assert fl["box_mask"].max() == 0.5  # a single annotator's box counts half
    with pytest.raises(DataError, match="nothere.png"):
        build(record(ssl_mask="nothere.png"), None, root=tmp_path)
    with pytest.raises(DataError, match="frames must be"):
        make_item(np.zeros((0, 4, 4, 3), np.uint8), np.zeros(0), np.zeros(10), 16000, rec, None)


# ----------------------------------------------------------------------------------------------------------------
# Datasets


def fake_load(calls):
    """A load_fn with load_clip's signature: 12 frames at 4 fps whose red channel is the frame index."""

    def load(video=None, *, image=None, audio=None, fps=8.0, sample_rate=48000, max_seconds=60.0, max_side=1024):
        calls.append({"video": video, "image": image, "audio": audio, "sample_rate": sample_rate})
        n = 0 if video is None and image is None else 12
        return SimpleNamespace(frames=frames_ramp(n, 16, 16) if n else np.zeros((0, 0, 0, 3), np.uint8),
                               times=np.arange(n) / 4.0, audio=np.full(sample_rate, 0.25, np.float32),
                               sample_rate=sample_rate, duration=3.0)

    return load


def test_avdataset_flattens_and_loads(tmp_path):
    vgg = read_vggss(make_vggss(tmp_path, [[0.1, 0.2, 0.5, 0.6]], [[0.0, 0.0, 0.5, 0.5]]))
    rec = record(image=vgg[0].image, audio=vgg[0].audio)
    calls = []
    ds = AVDataset([rec, *vgg], tasks=("ground", "factcheck"), image_size=S, sample_rate=8000, audio_seconds=2.0,
                   load_fn=fake_load(calls))
    assert len(ds) == 3 + 2  # three texts of rec + one text-less item per VGG-SS record
    assert [ds[i]["task"] for i in range(3)] == ["ground", "factcheck", "factcheck"]
    assert calls[0] == {"video": None, "image": rec.image, "audio": rec.audio, "sample_rate": 8000}
    it = ds[3]
    assert it["id"] == "a" and it["task"] == "" and torch.allclose(it["boxes"], torch.tensor([[0.1, 0.2, 0.5, 0.6]]))
    assert it["audio"].shape == (16000,) and it["audio_len"] == 8000
    assert len(AVDataset(vgg, textless=False, load_fn=fake_load([]))) == 0
    with pytest.raises(ValueError, match="unknown task"):
        AVDataset(vgg, tasks=("grounding",))


def test_avdataset_missing_media_named_at_load(tmp_path):
    rec = Record(id="gone", source="synth", video="clips/gone.mp4")
    ds = AVDataset([rec], root=tmp_path, load_fn=fake_load([]))
    with pytest.raises(DataError, match=r"clips/gone\.mp4.*'gone'"):
        ds[0]

    def broken(*a, **k):
        raise RuntimeError("moov atom not found")

    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "gone.mp4").write_bytes(b"junk")
    with pytest.raises(DataError, match="'gone'.*moov"):
        AVDataset([rec], root=tmp_path, load_fn=broken)[0]


def test_avdataset_avsbench_frames(tmp_path):
    recs = read_avsbench(make_avsbench(tmp_path / "s4"))
    calls = []
    ds = AVDataset(recs, num_frames=5, image_size=S, sample_rate=8000, audio_seconds=5.0, load_fn=fake_load(calls))
    it = ds[1]
    assert it["id"] == "vidB_2" and it["frame_times"].tolist() == [0.5, 1.5, 2.5, 3.5, 4.5] and it["key_index"] == 0
    red = (it["frames"][:, 0].mean(dim=(1, 2)) * 255).round().tolist()
    assert red == [40, 80, 120, 160, 200]  # the five frames in order
    assert calls[-1]["image"] is None and Path(calls[-1]["audio"]).name == "vidB_2.wav"  # only the audio decoded
    assert it["box_mask"].sum() > 0 and it["box_mask"].sum() < S * S  # from the key frame's mask


def test_avdataset_with_load_clip(tmp_path):
    media = pytest.importorskip("avllm.media")
    if not hasattr(media, "load_clip"):
        pytest.skip("avllm.media.load_clip is not there yet")
    a = read_vggss(make_vggss(tmp_path, [[0.1, 0.2, 0.5, 0.6]], []))[0]
    ds = AVDataset([a], image_size=S, sample_rate=16000, audio_seconds=1.0)
    it = ds[0]
    assert it["frames"].shape == (4, 3, S, S) and it["audio_len"] == 8000  # the fixture's wav lasts 0.5 s
    assert it["frames"][:, 0].mean() > it["frames"][:, 2].mean()  # the fixture image is red
    assert it["audio"][:8000].abs().max() > 0.1


def test_generated_dataset_object_and_tuple():
    def gen(i):
        rec = record(id=f"g{i}")
        return SimpleNamespace(frames=frames_ramp(16, 16, 16), audio=np.zeros(8000, np.float32), sample_rate=8000,
                               fps=8.0, record=rec)

    ds = GeneratedDataset(gen, 3, tasks=("ground", "avqa"), texts_per_clip=2, image_size=S, sample_rate=16000,
                          audio_seconds=1.0, answers=["one", "two"])
    assert len(ds) == 6
    items = [ds[i] for i in range(6)]
    assert [it["id"] for it in items] == ["g0", "g0", "g1", "g1", "g2", "g2"]
    assert {it["task"] for it in items} <= {"ground", "avqa"}
    assert [ds[i]["task"] for i in range(6)] == [it["task"] for it in items]  # deterministic
    assert all(it["audio_len"] == 16000 for it in items)  # resampled 8 kHz -> 16 kHz
    assert all(it["answer_index"] == 1 for it in items if it["task"] == "avqa")
    with pytest.raises(IndexError):
        ds[6]
    tup = GeneratedDataset(lambda i: (frames_ramp(8, 16, 16), np.zeros(4000, np.float32), record()), 1,
                           image_size=S, sample_rate=16000, audio_seconds=1.0)
    it = tup[0]
    assert it["frame_times"][it["key_index"]] == pytest.approx(1.0)  # frames spread over the 2 s clip
    assert it["audio_len"] == 4000


# ----------------------------------------------------------------------------------------------------------------
# collate


def test_collate_shapes_and_text_encoder():
    rec = record()
    items = [build(rec, rec.texts[0]), build(rec, rec.texts[1], audio_seconds=2.0), build(rec, None)]
    b = collate(items)
    assert b["frames"].shape == (3, 4, 3, S, S) and b["frames"].dtype == torch.float32
    assert b["frame_times"].shape == (3, 4) and b["box_mask"].shape == (3, S, S)
    assert b["audio"].shape == (3, 48000) and b["audio"][1, 32000:].abs().sum() == 0  # padded to the longest
    for k in ("key_index", "audio_len", "answer_index", "label"):
        assert b[k].shape == (3,) and b[k].dtype == torch.long
    assert b["audio_len"].tolist() == [32000, 32000, 32000]
    assert [x.shape for x in b["boxes"]] == [(1, 4), (1, 4), (1, 4)]
    assert [x.shape for x in b["segments"]] == [(0, 2), (1, 2), (0, 2)]
    assert b["task"] == ["ground", "temporal", ""] and b["id"] == ["r1"] * 3

    def encoder(prompts, answers):
        ids = torch.tensor([[len(p), len(a)] for p, a in zip(prompts, answers)])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.full_like(ids, -100)}

    e = collate(items, text_encoder=encoder)
    assert e["input_ids"][:, 0].tolist() == [len(it["prompt"]) for it in items]
    assert e["labels"].shape == (3, 2) and torch.equal(e["frames"], b["frames"])
    with pytest.raises(ValueError, match="already has"):
        collate(items, text_encoder=lambda p, a: {"frames": 0})
    with pytest.raises(ValueError):
        collate([])


def test_dataloader_end_to_end(tmp_path):
    rec = record()
    ds = GeneratedDataset(lambda i: (frames_ramp(), np.zeros(16000, np.float32), rec), 4, image_size=S,
                          sample_rate=16000, audio_seconds=1.0)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate)
    batches = list(loader)
    assert len(batches) == 2 and batches[0]["frames"].shape == (2, 4, 3, S, S)
    json.dumps(batches[0]["task"])  # plain strings


def test_generated_dataset_uses_in_memory_ssl_mask():
    mask = np.zeros((16, 16), bool)
    mask[:8, :4] = True  # differs from the record's ssl_boxes (bottom-right quarter)
    clip = SimpleNamespace(frames=frames_ramp(4, 16, 16), audio=np.zeros(100, np.float32), sample_rate=16000,
                           fps=2.0, record=record(), ssl_mask=mask)
    it = GeneratedDataset(lambda i: clip, 1, image_size=S, sample_rate=16000, audio_seconds=1.0)[0]
    want = torch.zeros(S, S)
    want[: S // 2, : S // 4] = 1
    assert torch.equal(it["box_mask"], want)


def test_generated_dataset_feeds_the_synthetic_world():
    world = pytest.importorskip("avllm.synth.world")
    clips = [world.generate(i, image_size=64, duration=2.0, num_frames=4) for i in range(3)]
    ds = GeneratedDataset(lambda i: clips[i], 3, texts_per_clip=3, image_size=S, audio_seconds=2.0)
    items = [ds[i] for i in range(len(ds))]
    b = collate(items)
    assert b["frames"].shape == (9, 4, 3, S, S) and b["audio"].shape == (9, 96000)
    for n, it in enumerate(items):
        clip = clips[n // 3]
        assert it["id"] == clip.record.id and it["audio_len"] == min(96000, clip.audio.shape[0])
        assert (it["box_mask"].sum() > 0) == bool(clip.ssl_mask.any())  # the world's own SSL mask
        text = next(t for t in clip.record.texts if (t.prompt, t.answer) == (it["prompt"], it["answer"]))
        if "boxes" in text.meta:
            assert torch.allclose(it["boxes"], torch.tensor(text.meta["boxes"], dtype=torch.float32))
        if "segments" in text.meta:
            assert torch.allclose(it["segments"], torch.tensor(text.meta["segments"], dtype=torch.float32))
        if text.task == "factcheck":
            assert it["label"] == int(text.meta["label"])
