"""DenseAV head: the volume einsum, aggregation, gradient into the image branch, temperature clamp,
disentanglement, and learning an easy pairing."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from avllm.config import DenseAVConfig
from avllm.heads.dense import DenseAV, aggregate, disentangle_loss, similarity_volume

D = 32


def small_cfg(**kw) -> DenseAVConfig:
    base = dict(num_heads=2, head_dim=16)
    base.update(kw)
    return DenseAVConfig(**base)


def naive_volume(a, v):
    """The volume written out as loops over plain Python numbers."""
    Ba, K, C, Ta = a.shape
    Bi, _, _, P = v.shape
    al, vl = a.tolist(), v.tolist()
    out = [
        [
            [[[sum(al[i][k][c][t] * vl[j][k][c][p] for c in range(C)) for t in range(Ta)] for p in range(P)]
             for k in range(K)]
            for j in range(Bi)
        ]
        for i in range(Ba)
    ]
    return torch.tensor(out, dtype=a.dtype).reshape(Ba, Bi, K, P, Ta)


@settings(max_examples=10, deadline=None)
@given(
    Ba=st.integers(1, 3), Bi=st.integers(1, 3), K=st.integers(1, 3), C=st.integers(1, 4),
    P=st.integers(1, 4), Ta=st.integers(1, 4), seed=st.integers(0, 1000),
)
def test_volume_equals_naive_loop(Ba, Bi, K, C, P, Ta, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(Ba, K, C, Ta, generator=g, dtype=torch.float64)
    v = torch.randn(Bi, K, C, P, generator=g, dtype=torch.float64)
    torch.testing.assert_close(similarity_volume(a, v), naive_volume(a, v))


def test_aggregate_is_max_over_space_then_mean_over_valid_time():
    vol = torch.randn(2, 3, 2, 5, 4)
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    got = aggregate(vol, mask)
    assert got.shape == (2, 3, 2)
    for a in range(2):
        n = int(mask[a].sum())
        for i in range(3):
            for k in range(2):
                expect = sum(max(vol[a, i, k, p, t].item() for p in range(5)) for t in range(n)) / n
                assert got[a, i, k].item() == pytest.approx(expect, abs=1e-5)
    # padding is ignored: whatever sits there does not change the result
    vol2 = vol.clone()
    vol2[1, ..., 2:] = 1e3
    torch.testing.assert_close(aggregate(vol2, mask), got)
    torch.testing.assert_close(aggregate(vol, None), vol.amax(3).mean(-1))


def make_inputs(B=4, g=3, Ta=5):
    img, aud = torch.randn(B, g * g, D), torch.randn(B, Ta, D)
    mask = torch.ones(B, Ta, dtype=torch.bool)
    mask[1, 3:] = False
    return img, aud, mask


def test_output_shapes_and_consistency():
    head = DenseAV(D, small_cfg(num_heads=3))
    img, aud, mask = make_inputs()
    out = head(img, aud, mask, grid=3, compute_loss=True)
    assert out.heatmaps.shape == (4, 3, 3, 3) and out.time_act.shape == (4, 3, 5) and out.scores.shape == (4, 4)
    assert set(out.losses) == {"dense_nce", "dense_disentangle"}
    assert all(torch.isfinite(x) for x in out.losses.values())
    # cosines: every map within [-1, 1], scores within [-K, K]
    assert out.heatmaps.abs().max() <= 1 + 1e-5 and out.time_act.abs().max() <= 1 + 1e-5
    assert out.scores.abs().max() <= 3 + 1e-5
    # heads and positions agree with the volume computed from the head's own features
    vol = similarity_volume(head.audio_features(aud), head.image_features(img))
    torch.testing.assert_close(out.scores, aggregate(vol, mask).sum(-1))
    own1 = vol[1, 1]  # (K, P, Ta) for clip 1, whose audio has 3 valid tokens
    torch.testing.assert_close(out.heatmaps[1], own1[..., :3].mean(-1).reshape(3, 3, 3))
    torch.testing.assert_close(out.time_act[1, :, :3], own1[..., :3].amax(1))
    assert (out.time_act[1, :, 3:] == 0).all()
    # patch p = row * g + col
    torch.testing.assert_close(out.heatmaps[1, 0, 2, 1], own1[0, 7, :3].mean())
    # own_volume is the diagonal of the pairwise volume (every clip with its own audio)
    torch.testing.assert_close(head.own_volume(img, aud), vol[torch.arange(4), torch.arange(4)])
    assert head(img, aud, mask, grid=3).losses == {}
    with pytest.raises(ValueError, match="grid"):
        head(img, aud, mask, grid=2)


def test_padding_does_not_change_anything():
    head = DenseAV(D, small_cfg())
    img, aud, mask = make_inputs()
    a = head(img, aud, mask, grid=3, compute_loss=True)
    aud2 = aud.clone()
    aud2[1, 3:] = 100 * torch.randn(2, D)
    b = head(img, aud2, mask, grid=3, compute_loss=True)
    for x, y in [(a.heatmaps, b.heatmaps), (a.scores, b.scores), (a.time_act, b.time_act)]:
        torch.testing.assert_close(x, y)
    for k in a.losses:
        torch.testing.assert_close(a.losses[k], b.losses[k])


def test_both_branches_get_gradient_from_dense_nce():
    head = DenseAV(D, small_cfg())
    img, aud, mask = make_inputs()
    img.requires_grad_(True)
    out = head(img, aud, mask, grid=3, compute_loss=True)
    out.losses["dense_nce"].backward()
    for p in (head.img_proj[1].weight, head.aud_proj[1].weight, head.log_temperature):
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert img.grad.abs().sum() > 0


def test_disentangle_reaches_both_projections():
    head = DenseAV(D, small_cfg())
    img, aud, mask = make_inputs()
    head(img, aud, mask, grid=3, compute_loss=True).losses["dense_disentangle"].backward()
    assert head.img_proj[1].weight.grad.abs().sum() > 0 and head.aud_proj[1].weight.grad.abs().sum() > 0


def test_temperature_stays_in_its_clamp():
    cfg = small_cfg(temperature_init=0.07, temperature_min=0.05, temperature_max=0.5)
    head = DenseAV(D, cfg)
    assert head.temperature.item() == pytest.approx(0.07)
    for value, expect in [(10.0, 0.5), (-10.0, 0.05)]:
        with torch.no_grad():
            head.log_temperature.fill_(value)
        assert head.temperature.item() == pytest.approx(expect)
    # a large learning rate pushes the raw parameter far; the temperature in use never leaves the clamp
    with torch.no_grad():
        head.log_temperature.fill_(math.log(0.07))
    opt = torch.optim.SGD(head.parameters(), lr=50.0)
    img, aud, mask = make_inputs()
    for _ in range(5):
        loss = head(img, aud, mask, grid=3, compute_loss=True).losses["dense_nce"]
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert 0.05 - 1e-6 <= head.temperature.item() <= 0.5 + 1e-6


def test_disentangle_lower_when_heads_fire_on_disjoint_clips():
    B, P, Ta = 6, 4, 5
    act = 0.9 * torch.ones(P, Ta)
    quiet = torch.zeros(P, Ta)
    disjoint = torch.stack([torch.stack([act, quiet]) if b % 2 else torch.stack([quiet, act]) for b in range(B)])
    together = torch.stack([torch.stack([act, act]) for _ in range(B)])  # (B, K=2, P, Ta)
    assert disentangle_loss(disjoint) == 0
    assert disentangle_loss(together) == pytest.approx(0.81)
    assert disentangle_loss(torch.randn(B, 1, P, Ta)) == 0  # one head: nothing to disentangle


@settings(max_examples=25, deadline=None)
@given(K=st.integers(2, 4), seed=st.integers(0, 10_000))
def test_disentangle_properties(K, seed):
    g = torch.Generator().manual_seed(seed)
    own = torch.rand(3, K, 4, 6, generator=g) * 2 - 1
    mask = torch.rand(3, 6, generator=g) < 0.7
    mask[:, 0] = True
    loss = disentangle_loss(own, mask)
    assert loss >= 0
    perm = torch.randperm(K, generator=g)
    torch.testing.assert_close(disentangle_loss(own[:, perm], mask), loss)  # no head is special
    # moving head 0's activity onto clips where the others are silent lowers the term
    split = own.clone()
    split[0, 1:] = 0
    split[1:, 0] = 0
    assert disentangle_loss(split, mask) <= loss + 1e-6


def toy_batch(img_codes, aud_codes, g=3, Ta=6, noise=0.3):
    """Clip i: its image has class i's code at one random patch, its audio class i's code in a random span."""
    n = img_codes.shape[0]
    img = noise * torch.randn(n, g * g, D)
    aud = noise * torch.randn(n, Ta, D)
    for i in range(n):
        img[i, torch.randint(0, g * g, ())] += img_codes[i]
        t0 = int(torch.randint(0, Ta - 2, ()))
        aud[i, t0 : t0 + 3] += aud_codes[i]
    return img, aud


def test_matching_pairs_score_above_non_matching_after_training():
    torch.manual_seed(0)
    n = 8
    img_codes, aud_codes = 2 * torch.randn(n, D), 2 * torch.randn(n, D)
    head = DenseAV(D, small_cfg())
    eye = torch.eye(n, dtype=torch.bool)

    def evaluate(batches=5):
        """Mean (matching - non-matching score) and audio->image R@1 over fresh positions and noise."""
        gaps, r1 = [], []
        with torch.no_grad():
            for _ in range(batches):
                s = head(*toy_batch(img_codes, aud_codes), grid=3).scores
                gaps.append((s[eye].mean() - s[~eye].mean()).item())
                r1.append((s.argmax(1) == torch.arange(n)).float().mean().item())
        return sum(gaps) / batches, sum(r1) / batches

    gap0, r0 = evaluate()
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(300):
        loss = head(*toy_batch(img_codes, aud_codes), grid=3, compute_loss=True).losses["dense_nce"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    gap1, r1 = evaluate()
    assert abs(gap0) < 0.15 and r0 < 0.5  # random projections: no pairing yet
    assert gap1 > 0.25 and r1 >= 0.8
