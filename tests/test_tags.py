"""Class tags (seen / heard) from records to the head's loss, and the JSA slot anchor."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from avllm.data import GeneratedDataset, class_tags, collate
from avllm.heads.slots import slot_anchor_loss
from avllm.heads.tags import TagHead, TagOutput, tag_loss
from avllm.record import ObjectAnn, Record, SoundAnn
from avllm.synth import CLASS_NAMES, SynthWorld

CLASSES = ["bell", "clock", "bird", "engine"]


def _record(objects, sounds=()) -> Record:
    return Record(
        id="r", source="synth", duration=4.0,
        objects=[ObjectAnn(category=c, box=[0.1, 0.1, 0.5, 0.5], sounding=s) for c, s in objects],
        sounds=[SoundAnn(category=c) for c in sounds],
    )


def test_tags_follow_the_record():
    got = class_tags(_record([("bell", True), ("clock", False)], sounds=["bird", "speech"]), CLASSES)
    assert got["tags_valid"] == 1
    assert got["seen_tags"].tolist() == [1, 1, 0, 0]  # both objects are visible
    assert got["heard_tags"].tolist() == [1, 0, 1, 0]  # the silent clock is not heard; off-screen bird is
    unknown = class_tags(_record([("bell", True), ("violin", True)]), CLASSES)
    assert unknown["tags_valid"] == 0 and unknown["seen_tags"].sum() == 0  # incomplete labels teach nothing
    assert class_tags(_record([("bell", True)]), None)["seen_tags"].shape == (0,)


def test_synthetic_items_carry_tags_that_match_their_records():
    world = SynthWorld("train", seed=3, difficulty="standard", image_size=32, frames="key")
    ds = GeneratedDataset(world.__getitem__, 6, num_frames=1, image_size=32, tag_classes=CLASS_NAMES)
    batch = collate([ds[i] for i in range(6)])
    assert batch["seen_tags"].shape == (6, len(CLASS_NAMES)) and bool(batch["tags_valid"].all())
    for i in range(6):
        rec = world[i].record
        seen = {CLASS_NAMES[j] for j in batch["seen_tags"][i].nonzero().flatten().tolist()}
        heard = {CLASS_NAMES[j] for j in batch["heard_tags"][i].nonzero().flatten().tolist()}
        assert seen == {o.category for o in rec.objects}
        assert heard == {o.category for o in rec.objects if o.sounding} | {
            s.category for s in rec.sounds if s.category != "speech"
        }


def test_tag_loss_prefers_the_truth_and_skips_unlabelled():
    seen_t = torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0]])
    heard_t = torch.tensor([[1.0, 0, 0, 0], [0, 0, 1, 0]])
    valid = torch.tensor([True, True])
    pad = torch.zeros(2, 2)  # two unsupervised tag slots past the 4 classes
    right = TagOutput(seen=torch.cat([(seen_t * 2 - 1) * 5, pad], 1), heard=torch.cat([(heard_t * 2 - 1) * 5, pad], 1))
    wrong = TagOutput(seen=-right.seen, heard=-right.heard)
    assert float(tag_loss(right, seen_t, heard_t, valid)) < 0.01 < float(tag_loss(wrong, seen_t, heard_t, valid))
    assert tag_loss(right, seen_t, heard_t, torch.tensor([False, False])) is None
    # an unlabelled sample does not move the loss
    only_first = tag_loss(right, seen_t, heard_t, torch.tensor([True, False]))
    mixed = TagOutput(seen=right.seen.clone(), heard=right.heard.clone())
    mixed.seen[1] = -mixed.seen[1]
    assert torch.equal(only_first, tag_loss(mixed, seen_t, heard_t, torch.tensor([True, False])))
    with pytest.raises(ValueError, match="7 classes"):
        tag_loss(right, torch.zeros(2, 7), torch.zeros(2, 7), valid)


def test_tag_head_ignores_padded_audio():
    torch.manual_seed(0)
    head = TagHead(dim=16, num_tags=5).eval()
    img, aud = torch.randn(2, 9, 16), torch.randn(2, 6, 16)
    mask = torch.ones(2, 6, dtype=torch.bool)
    out = head(img, aud, mask)
    padded = torch.cat([aud, 100 * torch.randn(2, 3, 16)], 1)
    pmask = torch.cat([mask, torch.zeros(2, 3, dtype=torch.bool)], 1)
    out2 = head(img, padded, pmask)
    assert torch.allclose(out.heard, out2.heard, atol=1e-5) and torch.equal(out.seen, out2.seen)
    silent = head(img, aud, torch.zeros(2, 6, dtype=torch.bool))  # no valid token: finite, not NaN
    assert bool(torch.isfinite(silent.heard).all())


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_slot_anchor_is_lowest_on_the_target(b, seed):
    g = torch.Generator().manual_seed(seed)
    target = (torch.rand(b, 16, generator=g) > 0.6).float()
    target[0, 0] = 1.0  # at least one sample has something sounding
    exact = slot_anchor_loss(target, target)
    inverted = slot_anchor_loss(1 - target, target)
    other = slot_anchor_loss(torch.rand(b, 16, generator=g), target)
    assert float(exact) < float(other) < float(inverted)


def test_slot_anchor_skips_empty_targets_and_reaches_the_map_only():
    target = torch.zeros(3, 16)
    assert slot_anchor_loss(torch.rand(3, 16), target) is None
    target[1, 4:8] = 1.0
    ssl_map = torch.rand(3, 16, requires_grad=True)
    slot_anchor_loss(ssl_map, target).backward()
    assert ssl_map.grad[1].abs().sum() > 0
    assert ssl_map.grad[0].abs().sum() == 0 and ssl_map.grad[2].abs().sum() == 0  # nothing sounds there


def test_a_model_without_tags_has_no_tag_tokens():
    from avllm.config import get_preset
    from model_factory import synth_batch, tiny_model

    cfg = get_preset("tiny").replace(num_tags=0, tag_locate=False)
    model = tiny_model(cfg).eval()
    assert model.tag_head is None and model.to_lm_tags is None
    batch = synth_batch(batch_size=2)
    with torch.no_grad():
        f = model.encode(batch["frames"], batch["frame_times"], batch["audio"], batch["audio_len"])
        with_tags = tiny_model().eval()
        g = with_tags.encode(batch["frames"], batch["frame_times"], batch["audio"], batch["audio_len"])
        assert f.seen_tags is None
        assert model.av_prefix(f).shape[1] == with_tags.av_prefix(g).shape[1] - 2


# ----------------------------------------------------------------------------------------------------------------
# Tag words: a prompt word that names a class carries that class's probabilities


def test_tag_word_index_maps_single_token_words_only():
    from avllm.model import tag_word_index
    from model_factory import tiny_tokenizer

    tok = tiny_tokenizer()
    index = tag_word_index(tok, ["bell", "clock", "not a word here"])
    for variant in ("bell", " bell"):
        (tid,) = tok(variant, add_special_tokens=False)["input_ids"]
        assert int(index[tid]) == 0
    (tid,) = tok(" clock", add_special_tokens=False)["input_ids"]
    assert int(index[tid]) == 1
    assert int((index == 2).sum()) == 0  # several tokens: no entry
    expected = {}
    for i, w in enumerate(["bell", "clock"]):
        for variant in (w, f" {w}"):
            ids = tok(variant, add_special_tokens=False)["input_ids"]
            if len(ids) == 1:
                expected[ids[0]] = i
    got = {t: int(index[t]) for t in (index >= 0).nonzero().flatten().tolist()}
    assert got == expected


def _features_with_tags(model, seen, heard):
    from model_factory import synth_batch

    batch = synth_batch(batch_size=seen.shape[0])
    with torch.no_grad():
        f = model.encode(batch["frames"], batch["frame_times"], batch["audio"], batch["audio_len"])
    f.seen_tags, f.heard_tags = seen, heard
    return f


def test_word_vectors_land_on_named_classes_in_the_prompt_only():
    from model_factory import tiny_model

    model = tiny_model().eval()
    assert model.to_lm_words is not None
    c = len(CLASS_NAMES)
    seen = torch.randn(2, model.cfg.num_tags)
    heard = torch.randn(2, model.cfg.num_tags)
    f = _features_with_tags(model, seen, heard)
    prompts = ["Can you hear a bell and a bird?", "Where is the sound coming from?"]
    enc = model.lm.build_inputs(prompts, ["true", "false"], num_av_tokens=3)
    prompt_part = enc["labels"] == -100
    with torch.no_grad():
        w = model._word_embeds(f, enc["input_ids"], prompt_part, model.to_lm_words)
        named = model.word_tag[enc["input_ids"]] >= 0
        assert bool(named[0].any()) and not bool(named[1].any())
        assert bool((w.abs().sum(-1) > 0).eq(named & prompt_part).all())  # exactly the class words of the prompt
        # Changing the heard probability of one class moves only the words naming it.
        bird = CLASS_NAMES.index("bird")
        heard2 = heard.clone()
        heard2[:, bird] += 3.0
        w2 = model._word_embeds(_features_with_tags(model, seen, heard2), enc["input_ids"], prompt_part,
                                model.to_lm_words)  # fmt: skip
        moved = (w2 - w).abs().sum(-1) > 1e-6
        assert bool(moved.eq(model.word_tag[enc["input_ids"]] == bird).all())
    assert c <= model.cfg.num_tags


def test_lm_loss_reaches_the_word_projection_and_generation_uses_it():
    from model_factory import synth_batch, tiny_model

    model = tiny_model()
    batch = synth_batch(batch_size=4)
    batch["prompt"] = ["True or false: You can hear a bell."] * 4
    batch["answer"] = ["true", "false", "true", "false"]
    out = model(batch)
    out.losses["lm"].backward()
    grads = [p.grad for p in model.to_lm_words.parameters()]
    assert all(g is not None and float(g.abs().sum()) > 0 for g in grads)
    model.eval()
    calls = []
    real = model._word_embeds

    def spy(*a, **k):
        calls.append(a[1].shape)
        return real(*a, **k)

    model._word_embeds = spy
    with torch.no_grad():
        model.generate(out.features, ["Is the bell heard?"] * 4, max_new_tokens=2)
    assert calls and calls[0][0] == 4  # the prompt's ids went through the word path


def test_tag_words_must_fit_the_tags():
    from avllm.config import ConfigError, get_preset

    with pytest.raises(ConfigError, match="tag_words"):
        get_preset("tiny").replace(num_tags=2)
    with pytest.raises(ConfigError, match="distinct"):
        get_preset("tiny").replace(tag_words=["bell", "bell"])
    get_preset("tiny").replace(num_tags=0, tag_locate=False)  # no head: the words are unused, not an error
    from avllm.config import TrainConfig
    from avllm.trainutil import TrainingData

    with pytest.raises(ConfigError, match="classes in order"):
        TrainingData(TrainConfig(batch_size=2), get_preset("tiny").replace(tag_words=["clock", "bell"]))
