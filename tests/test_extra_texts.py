"""More than one text per clip: the data draws a clip's other texts deterministically, the batch carries them flat
with the row of their clip, and the model reads them after the clip's one AV prefix exactly as it would read them
after that clip's own copy."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from avllm.config import ConfigError, TrainConfig, get_preset
from avllm.data import collate, pick_extras
from avllm.record import TextSample
from avllm.trainutil import TrainingData
from model_factory import tiny_model

TEXTS = [TextSample("factcheck", f"claim {i}", "true") for i in range(6)]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 8), chosen=st.sampled_from([None, *range(6)]), key=st.text(max_size=8))
def test_pick_extras_draws_distinct_others(n, chosen, key):
    primary = TEXTS[chosen] if chosen is not None else None
    got = pick_extras(TEXTS, primary, n, key)
    others = [t for t in TEXTS if t is not primary]
    assert len(got) == min(n, len(others))
    assert all(t is not primary for t in got)
    assert len({id(t) for t in got}) == len(got)  # without replacement
    assert got == pick_extras(TEXTS, primary, n, key)  # deterministic in the key


def data(extra: int, batch: int = 4) -> TrainingData:
    return TrainingData(TrainConfig(batch_size=batch, seed=3, extra_texts=extra), get_preset("tiny"))


@pytest.fixture(scope="module")
def batches():
    return data(0).batch(0), data(2).batch(0)


def test_extras_leave_the_clip_and_its_own_text_unchanged(batches):
    plain, extra = batches
    assert "extra_prompt" not in plain and "extra_clip" not in plain
    for k in ("prompt", "answer", "task", "id"):
        assert plain[k] == extra[k]
    assert torch.equal(plain["frames"], extra["frames"]) and torch.equal(plain["audio"], extra["audio"])


def test_extras_come_from_their_own_clip(batches):
    _, b = batches
    world = data(2).source.fn
    rows = b["extra_clip"].tolist()
    assert len(rows) == len(b["extra_prompt"]) == len(b["extra_answer"]) == len(b["extra_task"])
    assert rows == sorted(rows) and set(rows) == set(range(4))  # every clip here has at least three texts
    for r, p, a, t in zip(rows, b["extra_prompt"], b["extra_answer"], b["extra_task"]):
        texts = {(x.prompt, x.answer, x.task) for x in world(r).record.texts}
        assert (p, a, t) in texts
        assert (p, a) != (b["prompt"][r], b["answer"][r])  # another text than the clip's own
    for r in range(4):
        mine = [(p, a) for q, p, a in zip(rows, b["extra_prompt"], b["extra_answer"]) if q == r]
        assert len(mine) == 2 and len(set(mine)) == 2


def test_negative_extra_texts_is_a_config_error():
    with pytest.raises(ConfigError, match="extra_texts"):
        TrainConfig(extra_texts=-1)


def test_lm_reads_extras_as_it_reads_a_repeated_clip(batches):
    """The LM terms of a batch with extra texts equal those of the batch in which each extra text comes with its
    own copy of its clip (eval mode: no token masking, no jitter; token-averaged loss)."""
    _, b = batches
    model = tiny_model().eval()
    rows = torch.cat([torch.arange(4), b["extra_clip"]])
    flat = {}
    for k, v in b.items():
        if k.startswith("extra_"):
            continue
        if isinstance(v, torch.Tensor):
            flat[k] = v[rows]
        else:
            flat[k] = [v[i] for i in rows.tolist()]
    flat["prompt"], flat["answer"] = b["prompt"] + b["extra_prompt"], b["answer"] + b["extra_answer"]
    flat["task"] = b["task"] + b["extra_task"]
    flat["answer_index"] = torch.cat([b["answer_index"], torch.full((len(rows) - 4,), -1)])
    with torch.no_grad():
        got, want = model(b), model(flat)
    for term in ("lm", "lm_vocab"):
        assert torch.allclose(got.losses[term], want.losses[term], atol=1e-5), term
    assert got.lm_logits.shape[0] == len(rows)
    assert got.diagnostics.keys() == want.diagnostics.keys()
    for k, (total, n) in got.diagnostics.items():
        assert n == want.diagnostics[k][1] and total == pytest.approx(want.diagnostics[k][0], rel=1e-4)


def test_an_extra_text_reads_its_own_clip_only(batches):
    """The scores of an extra text depend on the frames of its clip and of no other clip of the batch."""
    _, b = batches
    model = tiny_model().eval()
    frames = b["frames"].clone().requires_grad_(True)
    out = model({**b, "frames": frames})
    for e in (0, len(b["extra_clip"]) - 1):
        frames.grad = None
        clip = int(b["extra_clip"][e])
        out.lm_logits[4 + e].float().pow(2).mean().backward(retain_graph=True)
        per_clip = frames.grad.abs().flatten(1).sum(1)  # (B,)
        assert per_clip[clip] > 0
        assert torch.count_nonzero(per_clip) == 1, per_clip


def test_collate_without_extras_adds_no_keys():
    items = [data(0).source[i] for i in range(2)]
    assert all(it["extra_prompt"] == [] for it in items)
    assert not any(k.startswith("extra_") for k in collate(items))
