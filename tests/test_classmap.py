"""Class maps: per-class targets from records, the head's shapes and invariants, its loss, and the tag words that
carry its features."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from avllm.data import GeneratedDataset, class_tags, collate
from avllm.heads.classmap import (
    WHEN_BINS, ClassMapHead, ClassMapOutput, ClassTargets, activity_targets, class_map_loss, sounding_map,
)  # fmt: skip
from avllm.record import ObjectAnn, Record, SoundAnn
from avllm.synth import CLASS_NAMES, SynthWorld

CLASSES = ["bell", "clock", "bird", "engine"]


def _located_model():
    """The tiny preset, whose class maps (``tag_locate``) are on; said again so the tests keep them if it changes."""
    from model_factory import tiny_model

    from avllm.config import get_preset

    return tiny_model(get_preset("tiny").replace(tag_locate=True))


def test_default_preset_has_class_maps_and_the_ablation_does_not():
    from model_factory import tiny_model

    from avllm.config import ModelConfig, get_preset

    assert tiny_model().class_map is not None  # the shipped checkpoint's architecture
    repo = Path(__file__).resolve().parents[1]
    variant = ModelConfig.load(repo / "avllm" / "presets" / "ablations" / "tiny-no-class-maps.json")
    assert not variant.tag_locate and tiny_model(variant).class_map is None
    assert variant.replace(name="tiny", tag_locate=True) == get_preset("tiny")


def test_class_targets_follow_the_record():
    rec = Record(
        id="r", source="synth", duration=4.0,
        objects=[
            ObjectAnn(category="bell", box=[0.0, 0.0, 0.2, 0.4], sounding=True, segments=[[2.0, 3.0], [0.5, 1.0]]),
            ObjectAnn(category="bell", box=[0.6, 0.2, 1.0, 0.6], sounding=False),
            ObjectAnn(category="clock", box=[0.4, 0.4, 0.6, 0.8], sounding=False),
        ],
        sounds=[SoundAnn(category="bird", segments=[[1.0, 2.5], [2.0, 3.5]]), SoundAnn(category="speech")],
    )  # fmt: skip
    got = class_tags(rec, CLASSES)
    assert got["sound_tags"].tolist() == [1, 0, 0, 0]  # the clock is seen but silent; the bird is not seen
    assert torch.allclose(got["class_centre"][0], torch.tensor([0.45, 0.3]))  # mean of the two bells' centres
    assert torch.allclose(got["class_centre"][1], torch.tensor([0.5, 0.6]))
    assert got["class_centre"][2:].abs().sum() == 0
    segs = got["class_segments"]
    assert segs.shape == (4, 4, 2)
    assert segs[0, :2].tolist() == [[0.5, 1.0], [2.0, 3.0]] and bool((segs[0, 2:] == -1).all())  # sorted
    assert segs[2, :1].tolist() == [[1.0, 3.5]] and bool((segs[2, 1:] == -1).all())  # overlapping ones merged
    assert bool((segs[1] == -1).all()) and bool((segs[3] == -1).all())


def test_synthetic_batches_carry_class_targets_consistent_with_the_tags():
    world = SynthWorld("train", seed=5, image_size=32)
    ds = GeneratedDataset(world.__getitem__, 6, num_frames=1, image_size=32, tag_classes=CLASS_NAMES)
    batch = collate([ds[i] for i in range(6)])
    c = len(CLASS_NAMES)
    assert batch["class_centre"].shape == (6, c, 2) and batch["class_segments"].shape[:2] == (6, c)
    assert bool((batch["sound_tags"] <= batch["seen_tags"]).all())  # sounding-and-visible implies seen
    assert bool((batch["sound_tags"] <= batch["heard_tags"]).all())
    has_seg = (batch["class_segments"][..., 1] > batch["class_segments"][..., 0]).any(-1)
    assert bool(has_seg.eq(batch["heard_tags"] > 0).all())  # a class has segments exactly when it is heard
    inside = (batch["class_centre"] >= 0) & (batch["class_centre"] <= 1)
    assert bool(inside.all())


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(2, 5), st.integers(1, 12), st.integers(0, 10_000))
def test_head_centres_lie_in_the_frame_and_padding_stays_silent(b, grid, ta, seed):
    torch.manual_seed(seed)
    d, c = 8, 3
    head = ClassMapHead(d, c)
    img, aud = torch.randn(b, grid * grid, d) * 3, torch.randn(b, ta, d)
    mask = torch.rand(b, ta) > 0.3
    out = head(img, aud, mask, grid=grid)
    assert out.centre.shape == (b, c, 2) and out.when.shape == (b, c, ta) and out.sounding.shape == (b, c)
    assert torch.allclose(out.img_attn.sum(-1), torch.ones(b, c), atol=1e-5)
    lo, hi = 0.5 / grid, 1 - 0.5 / grid  # a convex combination of patch centres
    assert bool(((out.centre >= lo - 1e-5) & (out.centre <= hi + 1e-5)).all())
    feats = head.word_features(out, mask)
    assert feats.shape == (b, c, 3 + WHEN_BINS)
    assert bool(((feats >= 0) & (feats <= 1)).all())
    if not bool(mask.any()):
        assert float(feats[..., 3:].abs().sum()) == 0.0
    # Padded tokens do not change what the real ones say.
    aud2 = aud.clone()
    aud2[~mask] = torch.randn(int((~mask).sum()), d) * 10
    out2 = head(img, aud2, mask, grid=grid)
    assert torch.allclose(out.when[mask[:, None].expand_as(out.when)], out2.when[mask[:, None].expand_as(out2.when)])


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(2, 5), st.integers(1, 6), st.integers(0, 10_000))
def test_sounding_map_weighs_each_class_attention_by_its_sounding_probability(b, grid, c, seed):
    torch.manual_seed(seed)
    p = grid * grid
    attn = torch.randn(b, c, p).softmax(-1)
    sounding = torch.randn(b, c) * 3
    out = ClassMapOutput(centre=torch.rand(b, c, 2), img_attn=attn, when=torch.zeros(b, c, 4), sounding=sounding)
    m = sounding_map(out)
    assert m.shape == (b, p) and bool((m >= 0).all())
    # it sums over the patches to the expected number of sounding classes
    assert torch.allclose(m.sum(-1), sounding.sigmoid().sum(-1), atol=1e-5)
    # one class sounds, the others are silent: the map is that class's attention
    k = seed % c
    loud = torch.full((b, c), -30.0)
    loud[:, k] = 30.0
    one = sounding_map(ClassMapOutput(centre=out.centre, img_attn=attn, when=out.when, sounding=loud))
    assert torch.allclose(one, attn[:, k], atol=1e-6)


def test_evaluation_scores_the_sounding_map_beside_the_jsa_map(tmp_path):
    from avllm.data import read_manifest
    from avllm.evaluate import evaluate
    from avllm.synth.writer import write_dataset

    write_dataset(tmp_path, split="test", num=2, seed=3, difficulty="standard", progress=False)
    m = evaluate(_located_model().eval(), read_manifest(tmp_path / "manifest.jsonl"), tmp_path, batch_size=2,
                 candidates=2, baselines=False, progress=False)
    for k in ("ciou50", "auc", "pointing"):
        assert 0.0 <= m[f"ssl.classmap.{k}"] <= 1.0


def test_activity_targets_mark_tokens_inside_segments():
    times = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.25])
    segs = torch.tensor([[[[0.5, 1.5], [2.0, 2.5]], [[-1.0, -1.0], [-1.0, -1.0]]]])  # (1, 2, 2, 2)
    got = activity_targets(segs, times)
    assert got.tolist() == [[[0, 1, 1, 0, 1], [0, 0, 0, 0, 0]]]


def _targets(b=2, c=3, valid=(True, True)):
    seen = torch.tensor([[1.0, 0.0, 1.0]] * b)[:, :c]
    return ClassTargets(
        seen=seen, sounding=torch.tensor([[1.0, 0.0, 0.0]] * b)[:, :c],
        centre=torch.tensor([[[0.2, 0.3], [0.0, 0.0], [0.8, 0.6]]] * b)[:, :c],
        segments=torch.tensor([[[[0.0, 1.0]], [[-1.0, -1.0]], [[1.0, 2.0]]]] * b)[:, :c],
        valid=torch.tensor(valid),
    )  # fmt: skip


def test_loss_prefers_the_truth_ignores_unseen_centres_and_skips_unlabelled():
    times = torch.tensor([0.5, 1.5])
    mask = torch.ones(2, 2, dtype=torch.bool)
    tg = _targets()
    when_true = torch.tensor([[[9.0, -9.0], [-9.0, -9.0], [-9.0, 9.0]]] * 2)

    def out(centre, when, sounding):
        return ClassMapOutput(centre=centre, img_attn=torch.zeros(2, 3, 4), when=when, sounding=sounding)

    right = out(tg.centre.clone(), when_true, torch.tensor([[9.0, -9.0, -9.0]] * 2))
    wrong = out(1 - tg.centre, -when_true, -right.sounding)
    lr, lw = class_map_loss(right, tg, times, mask), class_map_loss(wrong, tg, times, mask)
    assert set(lr) == {"tag_where", "tag_when", "tag_sounding"}
    for k in lr:
        assert float(lr[k]) < 0.01 < float(lw[k]), k
    # The unseen class's centre is not supervised.
    moved = out(tg.centre.clone(), when_true, right.sounding)
    moved.centre[:, 1] = 0.9
    assert float(class_map_loss(moved, tg, times, mask)["tag_where"]) == float(lr["tag_where"])
    assert class_map_loss(right, _targets(valid=(False, False)), times, mask) == {}
    # Padded audio tokens add nothing.
    mask2 = torch.tensor([[True, False], [True, False]])
    bad_pad = out(tg.centre.clone(), when_true.clone(), right.sounding)
    bad_pad.when[..., 1] = -bad_pad.when[..., 1]
    assert float(class_map_loss(bad_pad, tg, times, mask2)["tag_when"]) < 0.01


def test_model_word_features_carry_the_class_maps():
    from model_factory import synth_batch, tiny_model

    model = _located_model().eval()
    assert model.class_map is not None
    batch = synth_batch(batch_size=2)
    with torch.no_grad():
        f = model.encode(batch["frames"], batch["frame_times"], batch["audio"], batch["audio_len"])
        feats = model.word_features(f)
        assert feats.shape == (2, model.cfg.num_tags, 5 + WHEN_BINS)
        enc = model.lm.build_inputs(["True or false: The bell is on the left side of the frame."], ["true"], 3)
        ids = enc["input_ids"][:1].expand(2, -1)
        prompt = (enc["labels"][:1] == -100).expand(2, -1)
        w = model._word_embeds(f, ids, prompt, model.to_lm_words)
        bell = CLASS_NAMES.index("bell")
        f.class_maps.centre[:, bell] = 1 - f.class_maps.centre[:, bell]  # the bell moves: only its word changes
        w2 = model._word_embeds(f, ids, prompt, model.to_lm_words)
        moved = (w2 - w).abs().sum(-1) > 1e-6
        assert bool(moved.any()) and bool(moved.eq(model.word_tag[ids] == bell).all())


def test_class_map_losses_train_the_head_from_a_batch():
    from model_factory import tiny_model

    from avllm.model import _batch_class_targets

    world = SynthWorld("train", seed=2, image_size=64)
    model = _located_model()
    ds = GeneratedDataset(world.__getitem__, 2, num_frames=model.cfg.num_frames, image_size=64,
                          tag_classes=CLASS_NAMES)  # fmt: skip
    batch = collate([ds[i] for i in range(2)])
    tg = _batch_class_targets(batch)
    assert tg is not None
    f = model.encode(batch["frames"], batch["frame_times"], batch["audio"], batch["audio_len"],
                     key_index=batch["key_index"], class_targets=tg, compute_loss=True)  # fmt: skip
    terms = {k: v for k, v in f.losses.items() if k.startswith("tag_")}
    assert set(terms) == {"tag_where", "tag_when", "tag_sounding"}
    sum(terms.values()).backward()
    assert float(model.class_map.q_img.grad.abs().sum()) > 0 and float(model.class_map.q_aud.grad.abs().sum()) > 0


def _fake_features(centre, when, sounding, aud_mask, aud_times):
    from types import SimpleNamespace

    cm = ClassMapOutput(centre=centre, img_attn=torch.zeros(*centre.shape[:2], 4), when=when, sounding=sounding)
    return SimpleNamespace(class_maps=cm, aud_mask=aud_mask, aud_times=aud_times)


def test_evaluation_rows_score_hand_made_cases():
    from collections import defaultdict

    from avllm.evaluate import _class_map_rows

    c = len(CLASS_NAMES)
    rec = Record(
        id="r", source="synth", duration=4.0,
        objects=[ObjectAnn(category="bell", box=[0.0, 0.0, 0.4, 0.4], sounding=True, segments=[[0.0, 2.0]]),
                 ObjectAnn(category="clock", box=[0.6, 0.6, 1.0, 1.0], sounding=False)],
    )  # fmt: skip
    truth = class_tags(rec, CLASS_NAMES)
    bell, clock = CLASS_NAMES.index("bell"), CLASS_NAMES.index("clock")
    centre = torch.full((1, c, 2), 0.5)
    centre[0, bell] = torch.tensor([0.2, 0.2])  # inside the bell's box
    centre[0, clock] = torch.tensor([0.2, 0.9])  # outside the clock's box
    times = torch.tensor([0.5, 1.5, 2.5, 3.5])
    when = torch.full((1, c, 4), -5.0)
    when[0, bell, :3] = 5.0  # says 0-3 s; truth 0-2 s: IoU 2/3
    sounding = torch.full((1, c), -5.0)  # the bell called silent (wrong), the clock silent (right)
    rows: dict[str, list[float]] = defaultdict(list)
    _class_map_rows(rows, _fake_features(centre, when, sounding, torch.ones(1, 4, dtype=torch.bool), times), 0,
                    rec, truth)  # fmt: skip
    assert rows["where.pointing"] == [1.0, 0.0]
    assert rows["sounding.label_acc"] == [0.0, 1.0]
    assert rows["when.iou"] == [pytest.approx(2 / 3)]


def test_select_features_indexes_the_class_maps():
    from model_factory import synth_batch, tiny_model

    from avllm.evaluate import select_features

    model = _located_model().eval()
    batch = synth_batch(batch_size=3)
    with torch.no_grad():
        f = model.encode(batch["frames"], batch["frame_times"], batch["audio"], batch["audio_len"])
    sub = select_features(f, [2, 0])
    assert torch.equal(sub.class_maps.centre, f.class_maps.centre[[2, 0]])
    assert torch.equal(sub.class_maps.when, f.class_maps.when[[2, 0]])
    assert torch.allclose(model.word_features(sub), model.word_features(f)[[2, 0]], atol=1e-6)
