"""FAVOR causal Q-Former: synchronisation, window bookkeeping, block-wise causality, diversity loss."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from avllm.config import ConfigError, QFormerConfig
from avllm.heads.qformer import CausalQFormer, frame_audio_assignment, window_layout

D = 16


def _inputs(B=2, T=5, P=4, Ta=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randn(B, T, P, D, generator=g)
    frame_times = (torch.arange(T).float() + 0.5)[None].repeat(B, 1) * 0.5  # 0.25, 0.75, ... s
    aud = torch.randn(B, Ta, D, generator=g)
    aud_times = (torch.arange(Ta).float() + 0.5) * (T * 0.5 / Ta)  # covers [0, T * 0.5) s
    mask = torch.ones(B, Ta, dtype=torch.bool)
    mask[-1, -3:] = False
    return frames, frame_times, aud, aud_times, mask


@settings(max_examples=60, deadline=None)
@given(T=st.integers(1, 20), k=st.integers(1, 6), s=st.integers(1, 6))
def test_window_layout(T, k, s):
    if s > k:
        with pytest.raises(ValueError):
            window_layout(T, k, s)
        return
    lay = window_layout(T, k, s)
    W = lay.shape[0]
    assert lay.shape == (W, k)
    assert (lay[:, 0] == torch.arange(W) * s).all()  # window w starts at w * stride
    assert lay.max() == T - 1  # the last frame is in the last window
    assert W == 1 or (W - 1) * s < T  # no window starts past the end
    assert W == 1 or (W - 2) * s + k < T  # the previous-to-last window did not already reach the end
    pad = lay == -1
    assert not pad[:-1].any()  # only the last window is padded, and only at its tail
    assert torch.equal(pad[-1], torch.arange(k) >= k - int(pad[-1].sum()))
    assert set(lay[lay >= 0].tolist()) == set(range(T))  # every frame is in some window


@settings(max_examples=40, deadline=None)
@given(
    gaps=st.lists(st.floats(0.05, 2.0), min_size=1, max_size=6),
    taus=st.lists(st.floats(-1.0, 10.0), min_size=1, max_size=12),
)
def test_audio_goes_to_the_nearest_frame(gaps, taus):
    ft = torch.tensor(gaps, dtype=torch.float64).cumsum(0)[None]  # (1, T) increasing
    at = torch.tensor(taus, dtype=torch.float64)
    mask = torch.ones(1, len(taus), dtype=torch.bool)
    mask[0, 0] = False
    assign = frame_audio_assignment(ft, at, mask)  # (1, T, Ta)
    assert (assign.sum(1)[0, 1:] == 1).all() and assign[0, :, 0].sum() == 0  # one frame each, none if masked
    dist = (ft[0, :, None] - at[None, :]).abs()  # (T, Ta)
    chosen = assign[0].float().argmax(0)
    d_chosen = dist.gather(0, chosen[None])[0]
    assert (d_chosen[1:] <= dist.min(0).values[1:] + 1e-9).all()


def test_shapes_and_synchronisation():
    frames, ft, aud, at, mask = _inputs()
    cfg = QFormerConfig(num_queries=3, window_frames=2, stride_frames=2, layers=1, heads=2)
    qf = CausalQFormer(D, cfg).eval()
    out = qf(frames, ft, aud, at, mask)
    assert out.queries.shape == (2, 3 * 3, D)  # T = 5 -> windows [0, 1], [2, 3], [4, pad]
    assert out.window_index.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert out.window_frames.tolist() == [[0, 1], [2, 3], [4, -1]]
    assert out.sync.shape == (2, 5, 4 + 1, D)
    assert out.losses == {}
    # the audio token of frame 0 (0.25 s, owns [-inf, 0.5)) is the mean of the audio tokens before 0.5 s
    pos0 = out.sync[:, 0, 0] - frames[:, 0, 0] - qf.visual_type  # frame 0's position embedding
    pooled0 = out.sync[:, 0, 4] - qf.audio_type - pos0
    torch.testing.assert_close(pooled0, aud[:, at < 0.5].mean(1), atol=1e-5, rtol=0)
    # the last frame of sample 1 averages only its valid audio tokens
    pos4 = out.sync[:, 4, 0] - frames[:, 4, 0] - qf.visual_type
    own = (at >= 2.0) & mask[1]
    torch.testing.assert_close(out.sync[1, 4, 4] - qf.audio_type - pos4[1], aud[1, own].mean(0), atol=1e-5, rtol=0)


def test_frame_without_audio_gets_the_no_audio_embedding():
    frames, ft, aud, at, mask = _inputs(B=1)
    qf = CausalQFormer(D, QFormerConfig(layers=1, heads=2)).eval()
    silent = mask.clone()
    silent[0, at >= 2.0] = False  # the last frame (2.25 s owns [2.0, inf)) hears nothing
    sync = qf.synchronise(frames, ft, aud, at, silent)
    other = qf.synchronise(frames, ft, aud * 5.0, at, silent)
    # what a silent frame's audio token holds does not depend on the audio at all
    torch.testing.assert_close(sync[0, 4, 4], other[0, 4, 4])
    base = qf.synchronise(frames, ft, torch.zeros_like(aud), at, torch.ones_like(silent))[0, 4, 4]
    torch.testing.assert_close(sync[0, 4, 4] - base, qf.no_audio.detach())


@pytest.mark.parametrize("window,stride", [(2, 2), (3, 1), (3, 2)])
def test_block_causal_mask_later_frames_do_not_leak(window, stride):
    """Changing frame t (and the audio it owns) leaves every window that ends before t exactly unchanged."""
    frames, ft, aud, at, mask = _inputs(T=7, Ta=28)
    cfg = QFormerConfig(num_queries=2, window_frames=window, stride_frames=stride, layers=2, heads=2)
    torch.manual_seed(0)
    causal = CausalQFormer(D, cfg).eval()
    full = CausalQFormer(D, cfg.replace(mask="full")).eval()
    full.load_state_dict(causal.state_dict())
    t = 5
    frames2, aud2 = frames.clone(), aud.clone()
    frames2[:, t:] += torch.randn_like(frames2[:, t:])
    owned = frame_audio_assignment(ft, at, mask)[:, t:].any(1)  # (B, Ta) audio of frames >= t
    aud2[owned] += torch.randn_like(aud2[owned])
    for model, leaks in [(causal, False), (full, True)]:
        a, b = model(frames, ft, aud, at, mask), model(frames2, ft, aud2, at, mask)
        layout = a.window_frames
        ends = layout.clamp_min(0).max(1).values  # last real frame of each window
        earlier = ends < t
        assert earlier.any() and (~earlier).any()
        sel = earlier[a.window_index]  # queries of windows that end before t
        if leaks:
            assert not torch.equal(a.queries[:, sel], b.queries[:, sel])  # FAVOR's released mask: a leak
        else:
            assert torch.equal(a.queries[:, sel], b.queries[:, sel])  # exactly equal
        assert not torch.equal(a.queries[:, ~sel], b.queries[:, ~sel])


def test_train_and_eval_agree():
    frames, ft, aud, at, mask = _inputs()
    qf = CausalQFormer(D, QFormerConfig(layers=1, heads=2))
    train_out = qf.train()(frames, ft, aud, at, mask).queries
    torch.testing.assert_close(train_out, qf.eval()(frames, ft, aud, at, mask).queries)


def test_diversity_loss_values_and_gradients():
    frames, ft, aud, at, mask = _inputs()
    qf = CausalQFormer(D, QFormerConfig(num_queries=4, layers=1, heads=2, diversity_tau=0.1))
    same = torch.ones(1, 1, 4, D)
    torch.testing.assert_close(qf.diversity_loss(same), torch.tensor(1.0))
    ortho = torch.eye(4, D)[None, None]
    torch.testing.assert_close(qf.diversity_loss(ortho), torch.tensor(0.0), atol=1e-6, rtol=0)

    out = qf(frames, ft, aud, at, mask, compute_loss=True)
    assert set(out.losses) == {"qformer_div"}
    out.losses["qformer_div"].backward()
    assert qf.query.grad.abs().sum() > 0
    assert qf.layers[0].cross_attn.q.weight.grad.abs().sum() > 0

    opt = torch.optim.Adam(qf.parameters(), lr=1e-2)
    first = None
    for _ in range(15):
        loss = qf(frames, ft, aud, at, mask, compute_loss=True).losses["qformer_div"]
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first - 0.2


def test_bad_options_raise():
    with pytest.raises(ConfigError):
        QFormerConfig(mask="block")
    cfg = QFormerConfig()
    cfg.mask = "blockwise"
    with pytest.raises(ValueError):
        CausalQFormer(D, cfg)
    with pytest.raises(ValueError):
        CausalQFormer(D, QFormerConfig(heads=3))
    with pytest.raises(ValueError):
        CausalQFormer(D, QFormerConfig(window_frames=2, stride_frames=3))
