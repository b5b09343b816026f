"""Joint Slot Attention head: normalisation, non-collapse, gradient routing, masking, k-reciprocal removal."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from avllm.config import SlotConfig
from avllm.heads.slots import (
    JointSlotAttention,
    attention_matching,
    k_reciprocal_false_negatives,
    random_token_keep,
    target_infonce,
)

D = 32


def small_cfg(**kw) -> SlotConfig:
    base = dict(iters=3, mlp_hidden=64, recon_hidden=64)
    base.update(kw)
    return SlotConfig(**base)


def make_inputs(B=4, g=4, Ta=6, pad_from=4):
    img = torch.randn(B, g * g, D)
    aud = torch.randn(B, Ta, D)
    mask = torch.ones(B, Ta, dtype=torch.bool)
    mask[0, pad_from:] = False
    return img, aud, mask


@settings(max_examples=12, deadline=None)
@given(
    B=st.integers(1, 3),
    g=st.integers(1, 4),
    Ta=st.integers(1, 5),
    S=st.integers(2, 4),
    iqr=st.booleans(),
    train=st.booleans(),
)
def test_shapes_normalisation_and_range(B, g, Ta, S, iqr, train):
    head = JointSlotAttention(D, small_cfg(num_slots=S, iqr=iqr, iters=2)).train(train)
    img, aud = torch.randn(B, g * g, D), torch.randn(B, Ta, D)
    mask = torch.ones(B, Ta, dtype=torch.bool)
    mask[0, Ta // 2 + 1 :] = False
    out = head(img, aud, mask, grid=g, compute_loss=True)
    assert out.img_slots.shape == out.aud_slots.shape == (B, S, D)
    assert out.img_attn.shape == (B, S, g * g) and out.aud_attn.shape == (B, S, Ta)
    assert out.ssl_map.shape == (B, g * g)
    torch.testing.assert_close(out.img_attn.sum(1), torch.ones(B, g * g))
    torch.testing.assert_close(out.aud_attn.sum(1), torch.ones(B, Ta))
    assert out.ssl_map.min() >= 0 and out.ssl_map.max() <= 1
    assert set(out.losses) == {"slot_nce", "slot_match", "slot_div", "slot_recon"}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in out.losses.values())


def test_no_losses_unless_asked_and_grid_checked():
    head = JointSlotAttention(D, small_cfg())
    img, aud, mask = make_inputs()
    assert head(img, aud, mask, grid=4).losses == {}
    with pytest.raises(ValueError, match="grid"):
        head(img, aud, mask, grid=3)


def test_ssl_map_is_audio_query_map_mixed_with_image_query_map():
    img, aud, mask = make_inputs()
    plain = JointSlotAttention(D, small_cfg(iqr=False)).eval()
    refined = JointSlotAttention(D, small_cfg(iqr=True, iqr_weight=0.25)).eval()
    refined.load_state_dict(plain.state_dict())
    a_av = plain(img, aud, mask, grid=4).ssl_map
    out = refined(img, aud, mask, grid=4)
    torch.testing.assert_close(out.ssl_map, 0.75 * a_av + 0.25 * out.img_attn[:, 0])
    # the audio-query map depends on the audio, the image-query map does not
    assert not torch.allclose(a_av, plain(img, torch.randn_like(aud), mask, grid=4).ssl_map)


def test_similarity_is_cosine_audio_by_image():
    head = JointSlotAttention(D, small_cfg())
    i, a = torch.randn(5, D), torch.randn(3, D)
    s = head.similarity(i, a)
    assert s.shape == (3, 5)
    torch.testing.assert_close(s[2, 4], F.cosine_similarity(a[2], i[4], dim=0))


def two_clusters(centres, B=8, N=16, noise=0.3):
    lab = torch.randint(0, 2, (B, N))
    return centres[lab] + noise * torch.randn(B, N, centres.shape[1]), lab


def cluster_purity(attn, lab):
    """Per sample: fraction of tokens whose arg-max slot agrees with the cluster split (up to relabelling)."""
    agree = (attn.argmax(1) == lab).float().mean(1)  # slot 0 <-> cluster 0
    return torch.maximum(agree, 1 - agree)


def test_two_slots_split_two_clusters():
    torch.manual_seed(0)
    centres = 3 * torch.randn(2, D)
    head = JointSlotAttention(D, small_cfg())
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    for _ in range(80):
        x, _ = two_clusters(centres)
        losses = head(x, x, grid=4, compute_loss=True).losses
        opt.zero_grad()
        (losses["slot_div"] + losses["slot_recon"]).backward()
        opt.step()
    head.eval()
    x, lab = two_clusters(centres)
    out = head(x, x, grid=4)
    purity = cluster_purity(out.img_attn, lab)
    assert purity.mean() > 0.95 and purity.min() > 0.8
    # both slots are used in every sample: neither takes all tokens
    share = (out.img_attn.argmax(1) == 0).float().mean(1)
    assert ((share > 0.15) & (share < 0.85)).all()


def grads_of(loss, *tensors):
    gs = torch.autograd.grad(loss, tensors, retain_graph=True, allow_unused=True)
    return [None if g is None else g.abs().sum().item() for g in gs]


def test_each_loss_reaches_its_parameters():
    head = JointSlotAttention(D, small_cfg(k_reciprocal=1)).eval()
    img, aud, mask = make_inputs()
    img.requires_grad_(True)
    aud.requires_grad_(True)
    out = head(img, aud, mask, grid=4, compute_loss=True)
    sa = head.slot_attn
    shared = [sa.init_slots, sa.gru.weight_hh, sa.to_q.weight, sa.to_k.weight, sa.to_v.weight]

    g = grads_of(out.losses["slot_nce"], *shared, img, aud, head.img_decoder[0].weight)
    assert all(x is not None and x > 0 for x in g[:-1]), g
    assert g[-1] is None  # decoders are for reconstruction only

    for name in ("slot_match", "slot_div", "slot_recon"):
        g = grads_of(out.losses[name], sa.init_slots, sa.gru.weight_hh, img, aud)
        assert all(x is not None and x > 0 for x in g), (name, g)
    g = grads_of(out.losses["slot_recon"], head.img_decoder[0].weight, head.aud_decoder[0].weight)
    assert all(x is not None and x > 0 for x in g)


def test_matching_target_is_stop_gradient():
    head = JointSlotAttention(D, small_cfg()).eval()
    img, aud, mask = make_inputs()
    out = head(img, aud, mask, grid=4, compute_loss=True)
    out.img_attn.retain_grad()
    out.aud_attn.retain_grad()
    out.losses["slot_match"].backward()
    # the intra-modal maps are the targets of slot_match: nothing flows back into them
    assert out.img_attn.grad is None and out.aud_attn.grad is None
    assert head.slot_attn.to_q.weight.grad.abs().sum() > 0

    cross = torch.rand(2, 5, requires_grad=True)
    intra = torch.rand(2, 5, requires_grad=True)
    valid = torch.tensor([[True] * 5, [True, True, False, False, False]])
    loss = attention_matching(cross, intra, valid)
    loss.backward()
    assert intra.grad is None and cross.grad.abs().sum() > 0
    expect = (cross - intra).abs()[valid].mean()
    torch.testing.assert_close(loss, expect)


def test_padding_is_ignored():
    head = JointSlotAttention(D, small_cfg()).eval()
    img, aud, mask = make_inputs(pad_from=3)
    a = head(img, aud, mask, grid=4, compute_loss=True)
    aud2 = aud.clone()
    aud2[0, 3:] = 100 * torch.randn_like(aud2[0, 3:])
    b = head(img, aud2, mask, grid=4, compute_loss=True)
    torch.testing.assert_close(a.aud_slots, b.aud_slots)
    torch.testing.assert_close(a.ssl_map, b.ssl_map)
    for k in a.losses:
        torch.testing.assert_close(a.losses[k], b.losses[k])


def test_token_masking_only_in_training():
    head = JointSlotAttention(D, small_cfg(token_mask_ratio=0.5))
    img, aud, mask = make_inputs()
    head.eval()
    e1, e2 = head(img, aud, mask, grid=4), head(img, aud, mask, grid=4)
    assert torch.equal(e1.img_slots, e2.img_slots) and torch.equal(e1.ssl_map, e2.ssl_map)
    head.train()
    t1, t2 = head(img, aud, mask, grid=4), head(img, aud, mask, grid=4)
    assert not torch.allclose(t1.img_slots, t2.img_slots)
    # with ratio 0 the training forward is the evaluation forward
    head0 = JointSlotAttention(D, small_cfg(token_mask_ratio=0.0)).train()
    head0.load_state_dict(head.state_dict())
    torch.testing.assert_close(head0(img, aud, mask, grid=4).img_slots, e1.img_slots)


def test_dropped_tokens_do_not_feed_the_slots():
    head = JointSlotAttention(D, small_cfg())
    x = torch.randn(2, 8, D)
    keep = torch.ones(2, 8, dtype=torch.bool)
    keep[:, 2] = False
    y = x.clone()
    y[:, 2] = 50 * torch.randn(2, D)
    torch.testing.assert_close(head.slot_attn(x, keep).slots, head.slot_attn(y, keep).slots)


@settings(max_examples=30, deadline=None)
@given(B=st.integers(1, 6), N=st.integers(1, 40), ratio=st.floats(0.0, 0.95), seed=st.integers(0, 10_000))
def test_random_token_keep(B, N, ratio, seed):
    torch.manual_seed(seed)
    valid = torch.rand(B, N) < 0.7
    valid[:, 0] = True
    keep = random_token_keep(valid, ratio)
    assert not (keep & ~valid).any()  # padding is never brought back
    assert keep.any(dim=1).all()  # no sample loses every token
    if ratio == 0:
        assert torch.equal(keep, valid)


def test_random_token_keep_drops_about_the_ratio():
    valid = torch.ones(64, 200, dtype=torch.bool)
    kept = random_token_keep(valid, 0.1).float().mean().item()
    assert 0.88 < kept < 0.92


def test_k_reciprocal_hand_built_batch():
    # samples 0 and 1 are each other's nearest neighbour in both spaces; 2 and 3 are far from everything
    img_t = torch.tensor([[1.0, 0.1, 0, 0], [1.0, -0.1, 0, 0], [0, 0, 1.0, 0], [0, 0, -0.2, 1.0]])
    aud_t = torch.tensor([[0, 1.0, 0.1, 0], [0, 1.0, -0.1, 0], [1.0, 0, 0, 0], [-0.2, 0, 0, 1.0]])
    fn = k_reciprocal_false_negatives(img_t, aud_t, k=1)
    expect = torch.zeros(4, 4, dtype=torch.bool)
    expect[0, 1] = expect[1, 0] = True
    assert torch.equal(fn, expect)

    # the InfoNCE with removal equals the one computed by hand without those two negatives
    tau = 0.1
    loss = target_infonce(img_t, aud_t, tau=tau, k_reciprocal=1)
    logits = F.normalize(aud_t, dim=-1) @ F.normalize(img_t, dim=-1).T / tau
    by_hand = 0.0
    for L in (logits, logits.T):
        for i in range(4):
            negatives = [j for j in range(4) if j != i and not expect[i, j]]
            row = torch.stack([L[i, i]] + [L[i, j] for j in negatives])
            by_hand = by_hand + (torch.logsumexp(row, 0) - L[i, i]) / 8
    torch.testing.assert_close(loss, by_hand)
    assert loss < target_infonce(img_t, aud_t, tau=tau, k_reciprocal=0)

    # mutual neighbours in the audio space only are not removed by the joint rule, but are by the audio-only rule
    img_other = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [1.0, 0, 0.2, 0], [0, 1.0, 0, 0.2]])  # 0-2, 1-3
    pairs = torch.zeros(4, 4, dtype=torch.bool)
    pairs[0, 2] = pairs[2, 0] = pairs[1, 3] = pairs[3, 1] = True
    assert torch.equal(k_reciprocal_false_negatives(img_other, k=1), pairs)
    assert not k_reciprocal_false_negatives(img_other, aud_t, k=1).any()
    assert torch.equal(k_reciprocal_false_negatives(aud_t, k=1), expect)


@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 8), k=st.integers(0, 9), seed=st.integers(0, 10_000))
def test_k_reciprocal_properties(B, k, seed):
    torch.manual_seed(seed)
    x, y = torch.randn(B, 6), torch.randn(B, 6)
    fn = k_reciprocal_false_negatives(x, y, k=k)
    assert fn.shape == (B, B) and torch.equal(fn, fn.T) and not fn.diagonal().any()
    if k == 0:
        assert not fn.any()
    if k >= B - 1:  # everyone is everyone's neighbour
        assert torch.equal(fn, ~torch.eye(B, dtype=torch.bool))
    # growing k never removes a false negative
    assert not (fn & ~k_reciprocal_false_negatives(x, y, k=k + 1)).any()


def test_k_reciprocal_in_the_head_keeps_loss_finite():
    head = JointSlotAttention(D, small_cfg(k_reciprocal=2))
    img, aud, mask = make_inputs(B=6)
    out = head(img, aud, mask, grid=4, compute_loss=True)
    assert torch.isfinite(out.losses["slot_nce"])
