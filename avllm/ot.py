"""Batched entropic optimal transport on the caller's device: log-domain Sinkhorn and IPOT.

All solvers take a batch of cost matrices ``cost (B, N, M)`` and marginals ``a (B, N)``, ``b (B, M)`` (non-negative,
each row summing to the same mass, usually 1). A zero entry of a marginal is a padded token: its row/column of the
plan is exactly zero. A problem whose marginals are all zero (no valid token on one side) returns an all-zero plan.
There is no Python loop over the batch; the only loop is over iterations.

Gradients: both solvers are plain differentiable torch code, so autograd through the iterations works (memory grows
with ``iters``). For a transport *cost* the cheaper route is the envelope theorem: the gradient of the (entropic)
OT value with respect to the cost is the optimal plan itself, so ``wasserstein(cost, plan.detach())`` gives the
right gradient to ``cost`` with no backward pass through the solver. ``avllm.heads.align.AVOpT`` does that.

    plan = sinkhorn(cost, a, b, eps=0.1, iters=100)     # (B, N, M)
    w = wasserstein(cost, plan)                          # (B,)
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["masked_uniform", "sinkhorn", "ipot", "wasserstein"]


def masked_uniform(mask: Tensor) -> Tensor:
    """Uniform distribution over the valid entries of ``mask (B, N)`` bool; all-zero rows where nothing is valid.

    Returns float32 ``(B, N)`` whose rows sum to 1 (or 0).
    """
    m = mask.float()
    return m / m.sum(-1, keepdim=True).clamp_min(1.0)


def _prepare(cost: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Shape checks; masks of valid rows/columns; safe logs of the marginals.

    Problems with an empty side get uniform dummy marginals (so every log-sum-exp has a finite term) and are zeroed
    by ``keep`` at the end.
    """
    if cost.dim() != 3:
        raise ValueError(f"cost must be (B, N, M), got {tuple(cost.shape)}")
    B, N, M = cost.shape
    if a.shape != (B, N) or b.shape != (B, M):
        raise ValueError(
            f"marginals must be (B, N)=({B}, {N}) and (B, M)=({B}, {M}); got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    a = a.to(cost.dtype)
    b = b.to(cost.dtype)
    ma, mb = a > 0, b > 0  # (B, N), (B, M)
    keep = ma.any(-1) & mb.any(-1)  # (B,) problems with mass on both sides
    ma = torch.where(keep[:, None], ma, torch.ones_like(ma))
    mb = torch.where(keep[:, None], mb, torch.ones_like(mb))
    a = torch.where(keep[:, None], a, torch.full_like(a, 1.0 / N))
    b = torch.where(keep[:, None], b, torch.full_like(b, 1.0 / M))
    log_a = torch.where(ma, a, torch.ones_like(a)).log()  # (B, N), 0 on padded rows (never used there)
    log_b = torch.where(mb, b, torch.ones_like(b)).log()  # (B, M)
    return ma, mb, keep, log_a, log_b, a


def _finish(log_plan: Tensor, ma: Tensor, mb: Tensor, keep: Tensor) -> Tensor:
    valid = ma[:, :, None] & mb[:, None, :] & keep[:, None, None]  # (B, N, M)
    return torch.where(valid, log_plan.exp(), torch.zeros_like(log_plan))


def _masked_lse(x: Tensor, mask: Tensor, dim: int) -> Tensor:
    """log-sum-exp of ``x`` along ``dim`` over entries where ``mask`` (broadcastable) is True."""
    neg = torch.full_like(x, float("-inf"))
    return torch.logsumexp(torch.where(mask, x, neg), dim=dim)


def sinkhorn(cost: Tensor, a: Tensor, b: Tensor, eps: float, iters: int) -> Tensor:
    """Entropic OT plan by Sinkhorn iterations in the log domain (stable for small ``eps``).

    Solves ``min_P <P, C> - eps * H(P)`` s.t. ``P 1 = a``, ``P^T 1 = b`` (the problem of POT's ``ot.sinkhorn``).
    The plan is ``exp((f_i + g_j - C_ij) / eps)`` with dual potentials updated alternately; after the last
    iteration the column marginal is exact and the row marginal is within the solver's convergence.

    Args:
        cost: (B, N, M) float ground cost.
        a: (B, N) non-negative row marginal; zeros mark padded rows.
        b: (B, M) non-negative column marginal; zeros mark padded columns.
        eps: entropic regularisation (> 0).
        iters: number of (row, column) update pairs (>= 1).
    Returns:
        plan (B, N, M), same dtype as ``cost``, non-negative, zero on padded rows/columns.
    """
    if eps <= 0 or iters < 1:
        raise ValueError(f"sinkhorn needs eps > 0 and iters >= 1, got eps={eps}, iters={iters}")
    ma, mb, keep, log_a, log_b, _ = _prepare(cost, a, b)
    k = -cost / eps  # (B, N, M) log kernel
    # potentials / eps; -inf on padded tokens, so their terms drop out of every log-sum-exp with no masking of k
    neg_a, neg_b = torch.full_like(log_a, float("-inf")), torch.full_like(log_b, float("-inf"))
    g = torch.where(mb, torch.zeros_like(log_b), neg_b)  # (B, M)
    f = log_a
    for _ in range(iters):
        f = torch.where(ma, log_a - torch.logsumexp(k + g[:, None, :], dim=2), neg_a)  # (B, N)
        g = torch.where(mb, log_b - torch.logsumexp(k + f[:, :, None], dim=1), neg_b)  # (B, M)
    return _finish(k + f[:, :, None] + g[:, None, :], ma, mb, keep)


def ipot(cost: Tensor, a: Tensor, b: Tensor, beta: float, iters: int, inner: int = 1) -> Tensor:
    """Exact-OT plan by the inexact proximal point method IPOT (Xie et al., UAI 2019), in the log domain.

    Each outer step solves ``min_P <P, C> + beta * KL(P || P_t)`` with ``inner`` Sinkhorn projections, warm-started
    from the previous scaling. As ``iters`` grows the plan approaches the unregularised (EMD) plan, for any
    ``beta``; a smaller ``beta`` converges in fewer outer steps.

    Args:
        cost: (B, N, M) float ground cost.
        a, b: (B, N), (B, M) non-negative marginals; zeros mark padded tokens.
        beta: proximal step (> 0).
        iters: outer proximal steps (>= 1).
        inner: Sinkhorn projections per step (>= 1).
    Returns:
        plan (B, N, M), zero on padded rows/columns; column marginal exact.
    """
    if beta <= 0 or iters < 1 or inner < 1:
        raise ValueError(f"ipot needs beta > 0, iters >= 1, inner >= 1; got {beta}, {iters}, {inner}")
    ma, mb, keep, log_a, log_b, _ = _prepare(cost, a, b)
    k = -cost / beta  # (B, N, M) log of the proximal kernel exp(-C / beta)
    col_ok, row_ok = mb[:, None, :], ma[:, :, None]
    log_t = torch.zeros_like(cost)  # (B, N, M) log P_t, starts at the all-ones matrix
    v = torch.zeros_like(log_b)  # (B, M) log column scaling, carried across steps
    for _ in range(iters):
        log_q = k + log_t  # (B, N, M) log (G * P_t)
        for _ in range(inner):
            u = log_a - _masked_lse(log_q + v[:, None, :], col_ok, dim=2)  # (B, N)
            v = log_b - _masked_lse(log_q + u[:, :, None], row_ok, dim=1)  # (B, M)
        log_t = log_q + u[:, :, None] + v[:, None, :]
        # keep the log plan bounded: padded entries would otherwise drift by -C/beta each step
        log_t = torch.where(row_ok & col_ok, log_t, torch.zeros_like(log_t))
    return _finish(log_t, ma, mb, keep)


def wasserstein(cost: Tensor, plan: Tensor) -> Tensor:
    """Transport cost ``sum_ij plan_ij * cost_ij`` per problem: (B, N, M), (B, N, M) -> (B,)."""
    return (plan * cost).sum(dim=(-2, -1))
