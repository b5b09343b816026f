"""CAD: contextual block, temporal-alignment pre-training, answer chain."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from avllm.config import CADConfig, ConfigError
from avllm.heads.cad import AnswerChain, ContextualBlock, TemporalAlignment

D = 16


# ---------------------------------------------------------------------------------------------------------------
# contextual block


def test_contextual_block_shapes_eval_determinism_and_train_randomness():
    block = ContextualBlock(D, CADConfig(context_size=3, context_mask_ratio=0.3))
    x = torch.randn(2, 3, 16, D)
    block.eval()
    y1, y2 = block(x, grid=4), block(x, grid=4)
    assert y1.shape == x.shape and torch.equal(y1, y2)
    assert block(x[:, 0], grid=4).shape == (2, 16, D)  # (B, P, D) works too
    block.train()
    a = block(x, 4, generator=torch.Generator().manual_seed(1))
    b = block(x, 4, generator=torch.Generator().manual_seed(1))
    c = block(x, 4, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, y1)
    with pytest.raises(ValueError):
        block(x, grid=3)


def test_contextual_block_disabled_is_identity():
    block = ContextualBlock(D, CADConfig(contextual_block=False)).train()
    x = torch.randn(2, 3, 9, D)
    assert block(x, 3) is x
    assert len(list(block.parameters())) == 0


@settings(max_examples=20, deadline=None)
@given(row=st.integers(0, 4), col=st.integers(0, 4), size=st.sampled_from([1, 3, 5]))
def test_contextual_block_is_local(row, col, size):
    torch.manual_seed(0)
    block = ContextualBlock(D, CADConfig(context_size=size)).eval()
    g = 5
    x = torch.randn(1, g * g, D)
    x2 = x.clone()
    x2[0, row * g + col] += 1.0
    changed = (block(x, g) - block(x2, g)).abs().amax(-1)[0].view(g, g) > 0
    r = size // 2
    rows, cols = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
    near = ((rows - row).abs() <= r) & ((cols - col).abs() <= r)
    assert changed[row, col]
    assert not (changed & ~near).any()  # nothing outside the neighbourhood moves


def test_contextual_block_gradients():
    block = ContextualBlock(D, CADConfig()).train()
    x = torch.randn(2, 9, D, requires_grad=True)
    block(x, 3).pow(2).mean().backward()
    assert x.grad.abs().sum() > 0
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# ---------------------------------------------------------------------------------------------------------------
# temporal alignment


def _toy_clips(B, n_sec=4, fps=2, tps=4, P=4, seed=0, noise=0.1):
    """Each second s of each clip has a random content vector; frames show it, audio carries a fixed map of it."""
    g = torch.Generator().manual_seed(seed)
    content = torch.randn(B, n_sec, D, generator=g)  # (B, n_sec, D)
    mix = torch.linalg.qr(torch.randn(D, D, generator=torch.Generator().manual_seed(99)))[0]  # fixed audio map
    T, Ta = n_sec * fps, n_sec * tps
    frame_times = ((torch.arange(T) + 0.5) / fps)[None].repeat(B, 1)
    aud_times = (torch.arange(Ta) + 0.5) / tps
    f_sec, a_sec = frame_times[0].floor().long(), aud_times.floor().long()
    frames = content[:, f_sec, None, :] + noise * torch.randn(B, T, P, D, generator=g)  # (B, T, P, D)
    aud = content[:, a_sec] @ mix + noise * torch.randn(B, Ta, D, generator=g)  # (B, Ta, D)
    return frames, frame_times, aud, aud_times, torch.ones(B, Ta, dtype=torch.bool)


def test_temporal_sampling_is_deterministic_and_valid():
    cfg = CADConfig(temporal_seconds=4)
    head = TemporalAlignment(D, cfg)
    frames, ft, aud, at, mask = _toy_clips(256)
    mask[:8, at >= 2.0] = False  # the first clips hear nothing after 2 s

    def run(seed, dur):
        return head(frames, ft, aud, at, mask, duration=dur, generator=torch.Generator().manual_seed(seed))

    a, b, c = run(0, 4.0), run(0, 4.0), run(1, 4.0)
    assert torch.equal(a.second_audio, b.second_audio) and torch.equal(a.match, b.match)
    assert not torch.equal(a.second_audio, c.second_audio)
    assert a.second_logits_audio.shape == (256, 4) and a.second_logits_visual.shape == (256, 4)
    assert a.match_logits.shape == (256, 2) and a.loss.dim() == 0
    assert (a.second_audio[:8] < 2).all()  # never a second without audio
    pos = a.match == 1
    assert torch.equal(a.second_visual[pos], a.second_audio[pos])
    assert (a.second_visual[~pos] != a.second_audio[~pos]).all()
    assert 0.5 < pos.float().mean() < 0.7  # CAD's 60:40
    short = run(0, 2.5)  # seconds 0, 1, 2 exist in a 2.5 s clip
    assert short.second_audio.max() <= 2 and short.second_visual.max() <= 2
    silent = head(frames[:2], ft[:2], aud[:2], at, torch.zeros(2, at.numel(), dtype=torch.bool), duration=4.0)
    assert (silent.second_audio == -1).all() and silent.loss.item() == 0.0


def test_temporal_classifier_learns_a_toy_world_and_trains_every_part():
    torch.manual_seed(0)
    head = TemporalAlignment(D, CADConfig(temporal_seconds=4))
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for step in range(100):
        frames, ft, aud, at, mask = _toy_clips(32, seed=step)
        out = head(frames, ft, aud, at, mask, duration=4.0, generator=gen)
        opt.zero_grad()
        out.losses["cad_temporal"].backward()
        if step == 0:
            for name, p in head.named_parameters():
                assert p.grad is not None and p.grad.abs().sum() > 0, name
        opt.step()
        losses.append(out.loss.item())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.5 * first, (first, last)


# ---------------------------------------------------------------------------------------------------------------
# answer chain


def _toy_avqa(B, seed, vocab=10, P=4, Ta=3):
    """Question 1 asks which sound (answer = audio class 0..3); question 2 which object (answer 4 + visual class)."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(8, D, generator=torch.Generator().manual_seed(7))  # 4 sound + 4 object prototypes
    a_cls = torch.randint(0, 4, (B,), generator=g)
    v_cls = torch.randint(0, 4, (B,), generator=g)
    aud = protos[a_cls][:, None, :] + 0.1 * torch.randn(B, Ta, D, generator=g)
    img = 0.1 * torch.randn(B, P, D, generator=g)
    img[torch.arange(B), torch.randint(0, P, (B,), generator=g)] += protos[4 + v_cls]  # object in one patch
    kind = torch.randint(1, 3, (B,), generator=g)
    ids = torch.stack([kind, torch.randint(3, vocab, (B,), generator=g), torch.zeros(B, dtype=torch.long)], 1)
    qmask = torch.tensor([True, True, False]).expand(B, -1)
    answer = torch.where(kind == 1, a_cls, 4 + v_cls)
    return ids, qmask, img, aud, answer


def test_answer_chain_learns_a_toy_task_and_trains_every_part():
    torch.manual_seed(0)
    chain = AnswerChain(D, CADConfig(num_answers=8, chain_layers=2), vocab_size=10)
    opt = torch.optim.Adam(chain.parameters(), lr=3e-3)
    losses = []
    for step in range(60):
        ids, qm, img, aud, ans = _toy_avqa(32, seed=step)
        out = chain(ids, qm, img, aud, None, ans)
        assert out.logits.shape == (32, 8)
        opt.zero_grad()
        out.losses["cad_avqa"].backward()
        if step == 0:
            for name, p in chain.named_parameters():
                if name.startswith("embed"):
                    assert p.grad[[1, 2]].abs().sum() > 0  # rows of the ids seen
                else:
                    assert p.grad is not None and p.grad.abs().sum() > 0, name
        opt.step()
        losses.append(out.loss.item())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.5 * first, (first, last)


def test_answer_chain_ignore_index_frames_and_padding():
    chain = AnswerChain(D, CADConfig(num_answers=8, chain_layers=1), vocab_size=10).eval()
    ids, qm, img, aud, ans = _toy_avqa(4, seed=0)
    assert chain(ids, qm, img, aud).loss is None
    ignored = chain(ids, qm, img, aud, None, torch.full((4,), -1))
    assert ignored.loss.item() == 0.0 and ignored.loss.requires_grad
    part = ans.clone()
    part[2:] = -1
    subset = chain(ids[:2], qm[:2], img[:2], aud[:2], None, ans[:2]).loss
    torch.testing.assert_close(chain(ids, qm, img, aud, None, part).loss, subset)
    frames = img[:, None].repeat(1, 3, 1, 1)  # (B, T, P, D) is accepted
    assert chain(ids, qm, frames, aud).logits.shape == (4, 8)
    ids2 = ids.clone()
    ids2[:, 2] = 9  # a padded question position does not matter
    amask = torch.tensor([[True, True, False]]).expand(4, -1)
    aud2 = aud.clone()
    aud2[:, 2] = 50.0  # nor does a padded audio token
    torch.testing.assert_close(chain(ids2, qm, img, aud2, amask).logits, chain(ids, qm, img, aud, amask).logits)
    with pytest.raises(ValueError):
        chain(ids + 10, qm, img, aud)


def test_bad_options_raise():
    with pytest.raises(ConfigError):
        CADConfig(contextual_block="yes")
    with pytest.raises(ConfigError):
        CADConfig(temporal_seconds=2.5)
    with pytest.raises(ValueError):
        ContextualBlock(D, CADConfig(context_size=4))
    with pytest.raises(ValueError):
        TemporalAlignment(D, CADConfig(temporal_seconds=1))
