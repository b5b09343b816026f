"""MEERKAT's AVOpT and AVACE: plans, attention maps, box masks, and which parameters each loss trains."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from avllm.config import AlignConfig, ConfigError
from avllm.heads.align import AVACE, AVOpT, box_mask_on_grid

D = 16


def _tokens(B=3, P=9, Ta=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(B, P, D, generator=g)
    aud = torch.randn(B, Ta, D, generator=g)
    mask = torch.ones(B, Ta, dtype=torch.bool)
    mask[1, 3:] = False
    return img, aud, mask


# ---------------------------------------------------------------------------------------------------------------
# box masks


def test_box_mask_exact_fractions():
    m = box_mask_on_grid(torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.125, 0.0, 0.375, 0.25]]), grid=4)
    assert m.shape == (2, 16)
    top_left = torch.zeros(4, 4)
    top_left[:2, :2] = 1
    torch.testing.assert_close(m[0], top_left.flatten())
    # second box: x in [0.125, 0.375], y in [0, 0.25] -> half of cell (0, 0) and half of cell (0, 1)
    expected = torch.zeros(16)
    expected[0] = expected[1] = 0.5
    torch.testing.assert_close(m[1], expected)


def _area(bx):
    return max(bx[2] - bx[0], 0) * max(bx[3] - bx[1], 0)


@settings(max_examples=40, deadline=None)
@given(
    coords=st.lists(st.floats(0, 1, allow_nan=False), min_size=8, max_size=8),
    grid=st.integers(1, 9),
)
def test_box_mask_union_area(coords, grid):
    b1 = [min(coords[0], coords[1]), min(coords[2], coords[3]), max(coords[0], coords[1]), max(coords[2], coords[3])]
    b2 = [min(coords[4], coords[5]), min(coords[6], coords[7]), max(coords[4], coords[5]), max(coords[6], coords[7])]
    inter = [max(b1[0], b2[0]), max(b1[1], b2[1]), min(b1[2], b2[2]), min(b1[3], b2[3])]
    union = _area(b1) + _area(b2) - _area(inter)
    m = box_mask_on_grid([torch.tensor([b1, b2])], grid)
    assert ((m >= 0) & (m <= 1)).all()
    assert abs(m.sum().item() / grid**2 - union) < 1e-5  # overlap is not counted twice
    single = box_mask_on_grid([torch.tensor([b1])], grid)
    assert (m >= single - 1e-6).all()  # a union covers at least each of its boxes
    fast = box_mask_on_grid(torch.tensor([b1]), grid)  # (B, 4): vectorised path
    assert abs(fast.sum().item() / grid**2 - _area(b1)) < 1e-5
    torch.testing.assert_close(fast, single, atol=1e-5, rtol=0)


def test_box_mask_list_tensor_and_empty():
    boxes = torch.tensor([[[0.1, 0.2, 0.6, 0.9]], [[0.3, 0.3, 0.4, 0.4]], [[0.5, -0.2, 1.3, 0.45]]])
    one_each = box_mask_on_grid(boxes[:, 0], 7)  # the vectorised one-box path
    torch.testing.assert_close(one_each, box_mask_on_grid(list(boxes), 7))  # the general union path
    torch.testing.assert_close(box_mask_on_grid(boxes, 7), one_each)
    empty = box_mask_on_grid([torch.zeros(0, 4), torch.tensor([[0.5, 0.5, 0.5, 0.9]])], 3)
    assert empty.abs().sum() == 0  # no boxes, and a zero-width box, cover nothing


# ---------------------------------------------------------------------------------------------------------------
# AVOpT


@pytest.mark.parametrize("solver", ["sinkhorn", "ipot"])
@pytest.mark.parametrize("cost", ["cosine", "sqeuclidean"])
def test_avopt_plan_marginals_and_gradients(solver, cost):
    img, aud, mask = _tokens()
    img.requires_grad_(True)
    aud.requires_grad_(True)
    out = AVOpT(D, AlignConfig(ot_solver=solver, ot_cost=cost, ot_iters=300, ot_eps=0.1))(img, aud, mask)
    assert out.plan.shape == (3, 9, 5) and out.loss.dim() == 0
    assert out.plan[1, :, 3:].abs().max() == 0  # padded audio tokens receive no mass
    torch.testing.assert_close(out.plan.sum(1), mask.float() / mask.sum(-1, keepdim=True), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.plan.sum(2), torch.full((3, 9), 1 / 9), atol=1e-3, rtol=0)
    out.loss.backward()
    assert img.grad.abs().sum() > 0 and aud.grad.abs().sum() > 0
    assert aud.grad[1, 3:].abs().max() == 0  # padded tokens get no gradient
    assert out.losses.keys() == {"ot"}


def test_avopt_sqeuclidean_is_twice_cosine():
    img, aud, mask = _tokens()
    c1 = AVOpT(D, AlignConfig(ot_cost="cosine")).cost(img, aud)
    c2 = AVOpT(D, AlignConfig(ot_cost="sqeuclidean")).cost(img, aud)
    torch.testing.assert_close(c2, 2 * c1, atol=1e-5, rtol=0)


def test_avopt_training_aligns_tokens():
    img, aud, mask = _tokens(seed=1)
    proj = nn.Linear(D, D)
    head = AVOpT(D, AlignConfig(ot_iters=30))
    opt = torch.optim.Adam(proj.parameters(), lr=0.05)
    first = None
    for _ in range(30):
        loss = head(proj(img), aud, mask).loss
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_avopt_sample_without_audio_is_ignored():
    img, aud, mask = _tokens()
    head = AVOpT(D, AlignConfig())
    full = head(img[:1], aud[:1], mask[:1]).loss
    mask2 = mask[:2].clone()
    mask2[1] = False
    both = head(torch.cat([img[:1], img[2:3]]), torch.cat([aud[:1], aud[2:3]]), mask2)
    torch.testing.assert_close(both.loss, full)
    assert both.plan[1].abs().max() == 0


# ---------------------------------------------------------------------------------------------------------------
# AVACE


def test_avace_attention_is_a_distribution_over_patches():
    img, aud, mask = _tokens()
    head = AVACE(D, AlignConfig(avace_heads=4)).eval()
    out = head(img, aud, mask)
    assert out.attn.shape == (3, 9) and out.context.shape == aud.shape and out.loss is None
    assert ((out.attn >= 0) & (out.attn <= 1)).all()
    torch.testing.assert_close(out.attn.sum(-1), torch.ones(3))
    aud2 = aud.clone()
    aud2[1, 3:] = 100.0  # padded audio tokens do not move the map
    torch.testing.assert_close(head(img, aud2, mask).attn, out.attn)
    assert out.losses == {}


def test_avace_empty_box_samples_contribute_nothing():
    img, aud, mask = _tokens()
    head = AVACE(D, AlignConfig())
    box = box_mask_on_grid(torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0], [0.3, 0.3, 1.0, 1.0]]), 3)
    assert box[1].sum() == 0
    loss = head(img, aud, mask, box).loss
    keep = [0, 2]
    torch.testing.assert_close(loss, head(img[keep], aud[keep], mask[keep], box[keep]).loss)
    nobox = head(img[1:2], aud[1:2], mask[1:2], box[1:2]).loss
    assert nobox.item() == 0.0 and nobox.requires_grad


def test_avace_margin_hinge():
    head = AVACE(D, AlignConfig(avace_margin=0.5))
    attn = torch.tensor([[0.7, 0.3]])
    box = torch.tensor([[1.0, 0.0]])
    # inside 0.7, outside 0.3: -log(0.7) + relu(0.5 + 0.3 - 0.7)
    expected = -torch.log(torch.tensor(0.7 + 1e-6)) + 0.1
    torch.testing.assert_close(head.box_loss(attn, box), expected)


def test_avace_training_moves_attention_into_the_box():
    img, aud, mask = _tokens(B=4, P=16, seed=2)
    box = box_mask_on_grid(torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]] * 2), 4)
    head = AVACE(D, AlignConfig(avace_heads=2))
    inside = lambda: (head(img, aud, mask).attn * box).sum(-1).mean().item()  # noqa: E731
    before = inside()
    opt = torch.optim.Adam(head.parameters(), lr=0.02)
    for _ in range(40):
        loss = head(img, aud, mask, box).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert inside() > max(0.8, before + 0.3)


# ---------------------------------------------------------------------------------------------------------------
# both losses on together


def test_both_meerkat_losses_reach_their_parameters_and_add_up():
    img, aud, mask = _tokens()
    box = box_mask_on_grid(torch.tensor([[0.0, 0.0, 0.6, 0.6]] * 3), 3)
    proj_img, proj_aud = nn.Linear(D, D), nn.Linear(D, D)  # stand-ins for the model's projectors
    avopt = AVOpT(D, AlignConfig())
    avace = AVACE(D, AlignConfig())
    params = [*proj_img.parameters(), *proj_aud.parameters(), *avace.parameters()]

    def grads(which):
        x, y = proj_img(img), proj_aud(aud)
        losses = {**avopt(x, y, mask).losses, **avace(x, y, mask, box).losses}
        assert set(losses) == {"ot", "avace"}  # two separate named terms, neither overwrites the other
        total = sum(losses[k] for k in which)
        return torch.autograd.grad(total, params, allow_unused=True)

    g_ot, g_ace, g_both = grads(["ot"]), grads(["avace"]), grads(["ot", "avace"])
    names = ["img.w", "img.b", "aud.w", "aud.b"] + [f"avace.{n}" for n, _ in avace.named_parameters()]
    by = lambda gs: dict(zip(names, gs))  # noqa: E731
    ot_g, ace_g = by(g_ot), by(g_ace)
    for n in ["img.w", "aud.w"]:
        assert ot_g[n].abs().sum() > 0 and ace_g[n].abs().sum() > 0  # both reach both projectors
    assert all(ot_g[n] is None for n in names if n.startswith("avace."))  # OT has no say in AVACE's weights
    for n in ["avace.q.weight", "avace.k.weight", "avace.norm_q.weight", "avace.norm_kv.weight"]:
        assert ace_g[n].abs().sum() > 0
    for a, b, both in zip(g_ot, g_ace, g_both):
        if both is None:
            continue
        expected = (a if a is not None else 0) + (b if b is not None else 0)
        torch.testing.assert_close(both, expected)


def test_bad_options_raise():
    with pytest.raises(ConfigError):
        AlignConfig(ot_solver="emd")
    with pytest.raises(ConfigError):
        AlignConfig(ot_cost="l1")
    cfg = AlignConfig()
    cfg.ot_solver = "emd"  # bypassing the dataclass check is caught by the module
    with pytest.raises(ValueError):
        AVOpT(D, cfg)
    with pytest.raises(ValueError):
        AVACE(D, AlignConfig(avace_heads=5))
