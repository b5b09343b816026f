"""The LM's copy head: the mixture is a distribution, the pointer never looks ahead, decoding with the cache equals
transformers' greedy search, a small LM with the head learns to copy tokens it never saw as answers, and the whole
model wires the box and segment proposals in as the sources."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from model_factory import synth_batch, tiny_model

from avllm.config import LMConfig, get_preset
from avllm.llm import CopyHead, build_llm, copy_mixture, next_token_loss
from avllm.model import INSTRUCT_LOSSES
from avllm.tokenizer import train_tokenizer

LOCS = [f"<loc_{i}>" for i in range(32)]
SMALL = LMConfig(hidden_size=64, layers=2, heads=4, kv_heads=2, intermediate_size=128, max_positions=128)


@pytest.fixture(scope="module")
def tok():
    corpus = [f"where is the {o}? it is {w}." for o in ("ball", "drum", "bell") for w in ("here", "there")]
    return train_tokenizer(corpus, vocab_size=300, special_tokens=LOCS)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 4), st.integers(0, 10_000))
def test_mixture_is_a_distribution_and_closed_gate_is_the_lm(b, n, s, seed):
    g = torch.Generator().manual_seed(seed)
    v = 11
    logits = torch.randn(b, n, v, generator=g) * 3
    attn = torch.softmax(torch.randn(b, n, s, generator=g), -1)
    gate = torch.rand(b, n, 1, generator=g) * 0.99
    ids = torch.randint(0, v, (b, s), generator=g)  # repeated ids add up
    logp = copy_mixture(logits, attn, gate, ids)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(b, n), atol=1e-5)
    copied = torch.zeros(b, n, v).scatter_add_(2, ids[:, None].expand(b, n, s), attn)
    assert torch.allclose(logp.exp(), (1 - gate) * torch.softmax(logits, -1) + gate * copied, atol=1e-5)
    closed = copy_mixture(logits, attn, torch.zeros_like(gate), ids)
    assert torch.allclose(closed, torch.log_softmax(logits, -1), atol=1e-5)


def test_pointer_sees_only_sources_at_or_before_each_position():
    torch.manual_seed(0)
    head = CopyHead(16, dim=8)
    h, src_h = torch.randn(2, 6, 16), torch.randn(2, 3, 16)
    src_pos = torch.tensor([[1, 2, 4], [0, 3, 5]])
    attn, gate = head(h, src_h, src_pos)  # (2, 6, 3), (2, 6, 1)
    seen = src_pos[:, None, :] <= torch.arange(6)[None, :, None]
    assert torch.all(attn[~seen] == 0)
    assert torch.allclose(attn.sum(-1), seen.any(-1).float(), atol=1e-6)
    assert gate[0, 0, 0] == 0 and gate[0, 1, 0] > 0 and gate[1, 0, 0] > 0
    one, _ = head(h[:, 4:5], src_h, src_pos, start=4)  # one position decoded alone, as with a cache
    assert torch.allclose(one, attn[:, 4:5], atol=1e-6)
    with pytest.raises(ValueError, match="copy sources"):
        head(h, torch.randn(2, 9, 16), torch.zeros(2, 9, dtype=torch.long))


def test_cached_greedy_decoding_equals_transformers_generate(tok):
    """Our decoding loop (left padding, positions from the first real token, the key/value cache) writes the same
    tokens as transformers' greedy search, on an untrained LM whose answers are arbitrary."""
    from transformers import GenerationConfig

    torch.manual_seed(3)
    lm = build_llm(SMALL, tok).eval()
    prompts = ["where is the ball?", "where is the drum that you can hear? it is here."]
    av = torch.randn(2, 3, lm.hidden_size)
    ours = lm.generate(prompts, av, max_new_tokens=10)
    batch = lm.build_inputs(prompts, None, 3)
    embeds = lm.splice(batch["input_ids"], av)
    gen = GenerationConfig(max_new_tokens=10, do_sample=False, pad_token_id=tok.pad_token_id,
                           eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    with torch.no_grad():
        ref = lm.lm.generate(inputs_embeds=embeds, attention_mask=batch["attention_mask"], generation_config=gen)
    texts = []
    for row in ref.tolist():
        row = row[: row.index(tok.eos_token_id)] if tok.eos_token_id in row else row
        texts.append(tok.decode([t for t in row if t != tok.pad_token_id], skip_special_tokens=False).strip())
    assert ours == texts
    assert any(ours)  # the untrained LM writes something, so the comparison is not of two empty strings
    sampled = [lm.generate(prompts, av, max_new_tokens=10, greedy=False,
                           generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert sampled[0] == sampled[1]  # sampling follows the generator it is given


def _copy_task(lm, tok, n: int, gen: torch.Generator):
    """Rows whose answer is four location tokens drawn at random; the AV prefix carries them (as their own
    embeddings) among two noise tokens, marked as copy sources."""
    loc_ids = torch.tensor(tok.convert_tokens_to_ids(LOCS))
    pick = loc_ids[torch.randint(0, len(LOCS), (n, 4), generator=gen)]  # (n, 4)
    emb = lm.lm.get_input_embeddings()
    av = torch.cat([torch.randn(n, 2, lm.hidden_size, generator=gen), emb(pick).detach()], 1)  # (n, 6, H)
    copy_ids = torch.cat([torch.full((n, 2), -1), pick], 1)  # (n, 6)
    answers = ["".join(tok.convert_ids_to_tokens(r)) for r in pick.tolist()]
    return av, copy_ids, answers


@pytest.mark.parametrize("copy", [True, False])
def test_copy_head_learns_to_copy_tokens_it_never_saw_as_answers(tok, copy):
    """Trained on fresh random boxes every step, the LM with the copy head writes the boxes of new rows exactly;
    the same LM without it, same budget, does not."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    lm = build_llm(dataclasses.replace(SMALL, copy=copy), tok)
    opt = torch.optim.AdamW(lm.parameters(), lr=3e-3)
    prompt = ["where is the ball?"] * 16
    for _ in range(150):
        av, copy_ids, answers = _copy_task(lm, tok, 16, gen)
        batch = lm.build_inputs(prompt, answers, num_av_tokens=6)
        # As the whole model trains: the mixture's loss, and with the head the vocabulary half's own beside it.
        scores, vocab = lm.scores(batch["input_ids"], batch["attention_mask"], av, None, copy_ids)
        loss = next_token_loss(scores, batch["labels"])
        if copy:
            loss = loss + next_token_loss(vocab, batch["labels"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    av, copy_ids, answers = _copy_task(lm, tok, 32, gen)
    out = lm.generate(prompt * 2, av, max_new_tokens=6, av_copy_ids=copy_ids)
    exact = sum(o.replace(" ", "") == a for o, a in zip(out, answers)) / len(answers)
    if copy:
        assert exact >= 0.9, list(zip(out, answers))[:4]
    else:
        assert exact <= 0.2, list(zip(out, answers))[:4]


def test_vocabulary_half_is_the_plain_lm_and_forward_scores_the_mixture(tok):
    torch.manual_seed(3)
    gen = torch.Generator().manual_seed(3)
    lm = build_llm(dataclasses.replace(SMALL, copy=True), tok).eval()
    av, copy_ids, answers = _copy_task(lm, tok, 3, gen)
    batch = lm.build_inputs(["where is the drum?"] * 3, answers, num_av_tokens=6)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        scores, vocab = lm.scores(ids, mask, av, None, copy_ids)
        plain, same = lm.scores(ids, mask, av)  # no sources: no mixture
        fwd, loss = lm(ids, mask, av, batch["labels"], None, copy_ids)
    assert plain is same and torch.allclose(vocab, plain, atol=1e-5)
    assert not torch.allclose(scores, vocab.log_softmax(-1), atol=1e-3)  # the gate is open a little everywhere
    assert torch.equal(fwd, scores) and torch.allclose(loss, next_token_loss(scores, batch["labels"]))


def test_copy_model_round_trips_through_a_checkpoint(tmp_path):
    from avllm import checkpoint

    cfg = get_preset("tiny")
    cfg = dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, copy=True))
    torch.manual_seed(1)
    model = tiny_model(cfg)
    checkpoint.save(model, tmp_path / "ckpt")
    back = checkpoint.load(tmp_path / "ckpt")
    assert back.cfg.lm.copy and back.lm.copy is not None
    for name, t in model.lm.copy.state_dict().items():
        assert torch.equal(t, back.lm.copy.state_dict()[name]), name


def test_model_copies_from_its_box_and_segment_proposals():
    cfg = get_preset("tiny")
    cfg = dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, copy=True))
    torch.manual_seed(0)
    model = tiny_model(cfg)
    batch = synth_batch(4, cfg=cfg)
    out = model(batch)
    assert torch.allclose(out.lm_logits.exp().sum(-1), torch.ones(out.lm_logits.shape[:2]), atol=1e-4)
    # Two next-token terms with the head, both trained in the instruction stage: the mixture's and the vocabulary's.
    assert {"lm", "lm_vocab"} <= set(out.losses) and {"lm", "lm_vocab"} <= set(INSTRUCT_LOSSES)
    assert out.losses["lm_vocab"].item() != pytest.approx(out.losses["lm"].item(), rel=1e-4)
    no_copy = dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, copy=False))
    assert "lm_vocab" not in tiny_model(no_copy)(batch).losses
    out.losses["lm"].backward()
    assert model.lm.copy.q.weight.grad.abs().sum() > 0 and model.lm.copy.gate.bias.grad.abs() > 0
    model.eval()
    with torch.no_grad():
        f = model.encode(batch["frames"], batch["frame_times"], batch["audio"], batch["audio_len"],
                         key_index=batch["key_index"])
        prefix, ids = model.prefix_and_copy_ids(f)
        assert ids.shape == prefix.shape[:2]
        sources = ids[0][ids[0] >= 0]
        box = model.codec.loc_ids(f.box.view(-1, 2, 2)).view(-1, 4)[0]
        seg = model.codec.time_ids(model.proposed_segments(f))[0]
        assert sources.tolist() == box.tolist() + seg.tolist()
        assert len(model.generate(f, ["Where is the object making the sound?"] * 4, max_new_tokens=6)) == 4


@pytest.fixture(scope="module")
def bins():
    from avllm.model import TokenCodec

    times = [f"<t_{j}>" for j in range(8)]
    tok = train_tokenizer(["at a place, at a time."], vocab_size=300, special_tokens=LOCS + times)
    codec = TokenCodec(tok, loc_bins=32, time_bins=8, time_step=0.5)
    return codec, codec.neighbours(len(tok))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 12), st.floats(0.0, 1.0), st.integers(0, 10_000))
def test_jitter_moves_only_bins_where_asked_and_only_to_the_next_bin(bins, b, n, p, seed):
    from avllm.model import jitter_bins

    codec, table = bins
    runs = [codec._loc.tolist(), codec._time.tolist()]
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, table.shape[0], (b, n), generator=gen)
    where = torch.rand(b, n, generator=gen) < 0.7
    before = ids.clone()
    out = jitter_bins(ids, where, table, p, gen)
    assert torch.equal(ids, before)  # the input is left as it was
    for i, (a, z) in enumerate(zip(ids.flatten().tolist(), out.flatten().tolist())):
        if a == z:
            continue
        assert where.flatten()[i]
        run = next(r for r in runs if a in r)
        assert z in run and abs(run.index(z) - run.index(a)) == 1
    if p == 0:
        assert torch.equal(out, ids)


def test_jitter_at_one_moves_every_inner_bin(bins):
    from avllm.model import jitter_bins

    codec, table = bins
    inner = torch.cat([codec._loc[1:-1], codec._time[1:-1]])[None]  # (1, 36): every bin with two neighbours
    out = jitter_bins(inner.repeat(50, 1), torch.ones(50, inner.shape[1], dtype=torch.bool), table, 1.0,
                      torch.Generator().manual_seed(0))
    assert bool((out != inner).all())
    # Below and above about equally often.
    up = (out > inner).float().mean()
    assert 0.4 < float(up) < 0.6
    assert table[codec._loc[0], 0] == codec._loc[0] and table[codec._time[-1], 1] == codec._time[-1]


def test_jitter_acts_in_training_only_and_leaves_the_targets():
    cfg = get_preset("tiny")
    batch = synth_batch(4, cfg=cfg)
    losses = {}
    for p in (0.0, 1.0):
        c = dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, copy=True, copy_jitter=p))
        torch.manual_seed(0)
        model = tiny_model(c)
        for mode in ("train", "eval"):
            getattr(model, mode)()
            torch.manual_seed(1)
            with torch.no_grad():
                losses[p, mode] = model(batch).losses["lm"].item()
    assert losses[0.0, "eval"] == pytest.approx(losses[1.0, "eval"], abs=1e-6)
    assert losses[0.0, "train"] != pytest.approx(losses[1.0, "train"], abs=1e-4)
