"""Batched OT solvers against POT and against their own defining properties."""

import numpy as np
import ot
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from avllm.ot import ipot, masked_uniform, sinkhorn, wasserstein


def _problem(seed: int, B: int, N: int, M: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    cost = torch.rand(B, N, M, generator=g, dtype=dtype)
    a = torch.rand(B, N, generator=g, dtype=dtype) + 0.1
    b = torch.rand(B, M, generator=g, dtype=dtype) + 0.1
    return cost, a / a.sum(-1, keepdim=True), b / b.sum(-1, keepdim=True)


@settings(max_examples=25, deadline=None)
@given(
    B=st.integers(1, 4),
    N=st.integers(1, 9),
    M=st.integers(1, 9),
    eps=st.sampled_from([0.05, 0.1, 0.5]),
    seed=st.integers(0, 10_000),
)
def test_sinkhorn_meets_marginals(B, N, M, eps, seed):
    cost, a, b = _problem(seed, B, N, M)
    plan = sinkhorn(cost, a, b, eps=eps, iters=1000)
    assert plan.shape == (B, N, M)
    assert (plan >= 0).all()
    torch.testing.assert_close(plan.sum(2), a, atol=1e-4, rtol=0)
    torch.testing.assert_close(plan.sum(1), b, atol=1e-4, rtol=0)


@settings(max_examples=15, deadline=None)
@given(N=st.integers(2, 8), M=st.integers(2, 8), eps=st.sampled_from([0.05, 0.2, 1.0]), seed=st.integers(0, 10_000))
def test_sinkhorn_matches_pot(N, M, eps, seed):
    cost, a, b = _problem(seed, 3, N, M)
    plan = sinkhorn(cost, a, b, eps=eps, iters=3000)
    for i in range(3):
        ref = ot.sinkhorn(a[i].numpy(), b[i].numpy(), cost[i].numpy(), eps, numItermax=20000, stopThr=1e-13)
        np.testing.assert_allclose(plan[i].numpy(), ref, atol=1e-9, rtol=0)


@settings(max_examples=15, deadline=None)
@given(N=st.integers(2, 7), M=st.integers(2, 7), seed=st.integers(0, 10_000))
def test_ipot_approaches_emd(N, M, seed):
    cost, a, b = _problem(seed, 2, N, M)
    exact = torch.tensor(
        [float((ot.emd(a[i].numpy(), b[i].numpy(), cost[i].numpy()) * cost[i].numpy()).sum()) for i in range(2)],
        dtype=torch.float64,
    )
    plan = ipot(cost, a, b, beta=0.5, iters=1500)
    gap = (wasserstein(cost, plan) - exact).abs()
    assert (gap < 5e-4).all()
    entropic = wasserstein(cost, sinkhorn(cost, a, b, eps=0.5, iters=500)) - exact  # the bias IPOT removes
    assert (gap < entropic.abs()).all()
    torch.testing.assert_close(plan.sum(2), a, atol=1e-3, rtol=0)
    torch.testing.assert_close(plan.sum(1), b, atol=1e-10, rtol=0)  # the last projection is onto columns


def test_ipot_beats_sinkhorn_on_exactness():
    cost, a, b = _problem(1, 2, 6, 5)
    w_exact = torch.tensor(
        [float((ot.emd(a[i].numpy(), b[i].numpy(), cost[i].numpy()) * cost[i].numpy()).sum()) for i in range(2)],
        dtype=torch.float64,
    )
    w_sink = wasserstein(cost, sinkhorn(cost, a, b, eps=0.1, iters=500))
    w_ipot = wasserstein(cost, ipot(cost, a, b, beta=0.1, iters=500))
    assert ((w_ipot - w_exact).abs() < (w_sink - w_exact).abs()).all()
    assert (w_sink >= w_exact - 1e-12).all()  # any feasible plan costs at least the optimum


@pytest.mark.parametrize("solver", ["sinkhorn", "ipot"])
def test_masked_marginals_zero_padded_tokens(solver):
    cost, _, _ = _problem(2, 3, 6, 5)
    ma = torch.tensor([[1, 1, 1, 1, 0, 0], [1] * 6, [1] * 6], dtype=torch.bool)
    mb = torch.tensor([[1, 1, 0, 1, 1], [1, 0, 0, 0, 0], [0] * 5], dtype=torch.bool)
    a, b = masked_uniform(ma).double(), masked_uniform(mb).double()
    fn = sinkhorn if solver == "sinkhorn" else ipot
    plan = fn(cost, a, b, 0.1, 500)
    assert torch.isfinite(plan).all()
    assert plan[0, 4:].abs().max() == 0 and plan[0, :, 2].abs().max() == 0
    assert plan[1, :, 1:].abs().max() == 0
    assert plan[2].abs().max() == 0  # no valid column: no mass moves
    torch.testing.assert_close(plan[:2].sum(2), a[:2], atol=1e-4, rtol=0)
    torch.testing.assert_close(plan[:2].sum(1), b[:2], atol=1e-4, rtol=0)
    # padding changes nothing for the valid part: same as the problem without the padded tokens
    sub = fn(cost[:1, :4][:, :, [0, 1, 3, 4]], a[:1, :4], b[:1, [0, 1, 3, 4]], 0.1, 500)
    torch.testing.assert_close(plan[:1, :4][:, :, [0, 1, 3, 4]], sub, atol=1e-12, rtol=0)


def test_batched_equals_one_by_one():
    cost, a, b = _problem(3, 5, 7, 4)
    batched = sinkhorn(cost, a, b, eps=0.1, iters=50)
    singles = torch.cat([sinkhorn(cost[i : i + 1], a[i : i + 1], b[i : i + 1], eps=0.1, iters=50) for i in range(5)])
    torch.testing.assert_close(batched, singles, atol=1e-14, rtol=0)


def test_small_eps_is_stable_in_float32():
    """exp(-C / eps) underflows to 0 at eps = 1e-3; the log domain does not care."""
    cost, a, b = _problem(4, 2, 30, 20, dtype=torch.float32)
    assert (torch.exp(-cost / 1e-3) == 0).any()
    plan = sinkhorn(cost, a, b, eps=1e-3, iters=1500)
    assert torch.isfinite(plan).all()
    torch.testing.assert_close(plan.sum(1), b, atol=1e-5, rtol=0)
    torch.testing.assert_close(plan.sum(2), a, atol=2e-3, rtol=0)
    # nearly unregularised: its cost is close to the exact optimum
    a64, b64, c64 = a.double().numpy(), b.double().numpy(), cost.double().numpy()
    exact = sum(float((ot.emd(a64[i], b64[i], c64[i]) * c64[i]).sum()) for i in range(2))
    assert abs(wasserstein(cost, plan).sum().item() - exact) < 2e-3


def test_autograd_through_solver_gives_the_envelope_gradient():
    """d/dC of the entropic objective <P*, C> - eps H(P*) is P* itself (envelope theorem)."""
    cost, a, b = _problem(5, 2, 5, 4)
    eps = 0.2
    c = cost.clone().requires_grad_(True)
    plan = sinkhorn(c, a, b, eps=eps, iters=300)
    value = (plan * c).sum() + eps * (plan * (plan.log() - 1)).sum()
    (grad,) = torch.autograd.grad(value, c)
    torch.testing.assert_close(grad, plan.detach(), atol=1e-7, rtol=0)


def test_wasserstein_shape_and_bad_arguments():
    cost, a, b = _problem(6, 3, 4, 5)
    assert wasserstein(cost, torch.ones_like(cost)).shape == (3,)
    with pytest.raises(ValueError):
        sinkhorn(cost, a, b, eps=0.0, iters=10)
    with pytest.raises(ValueError):
        ipot(cost, a, b, beta=0.1, iters=0)
    with pytest.raises(ValueError):
        sinkhorn(cost, b, a, eps=0.1, iters=10)
