"""Batched entropic OT: avllm.ot.sinkhorn against POT's batched solver and a per-problem POT loop.

    python benchmarks/bench_ot.py                     # 32 problems of 196 x 32, eps 0.1, 100 iterations, CPU
    python benchmarks/bench_ot.py --device cuda --threads 4

Prints a markdown table: median wall time over ``--repeats`` runs (after one warm-up), the ratio to ours, and the
largest absolute difference between each reference plan and ours. All solvers run exactly ``--iters`` iterations
(POT's stopping thresholds are set to 0). The cost is ``1 - cos`` between random unit vectors, as in AVOpT.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import torch


def _timed(fn: Callable[[], torch.Tensor], repeats: int, device: torch.device) -> tuple[float, torch.Tensor]:
    out = fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    import ot  # POT, only needed here

    from avllm.ot import sinkhorn

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--n", type=int, default=196, help="rows per problem (image patches)")
    p.add_argument("--m", type=int, default=32, help="columns per problem (audio tokens)")
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="Sinkhorn did not converge")  # expected: the iterations are fixed
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)

    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(args.batch, args.n, 64, generator=g), dim=-1)
    y = torch.nn.functional.normalize(torch.randn(args.batch, args.m, 64, generator=g), dim=-1)
    cost = (1 - torch.einsum("bnd,bmd->bnm", x, y)).to(device=device, dtype=dtype)  # (B, N, M) in [0, 2]
    a = torch.full((args.batch, args.n), 1.0 / args.n, device=device, dtype=dtype)
    b = torch.full((args.batch, args.m), 1.0 / args.m, device=device, dtype=dtype)

    @torch.no_grad()
    def ours() -> torch.Tensor:
        return sinkhorn(cost, a, b, eps=args.eps, iters=args.iters)

    @torch.no_grad()
    def pot_batch() -> torch.Tensor:
        return ot.solve_batch(M=cost, reg=args.eps, a=a, b=b, max_iter=args.iters, tol=0.0, grad="detach").plan

    @torch.no_grad()
    def pot_loop() -> torch.Tensor:
        its = args.iters
        return torch.stack([ot.sinkhorn(a[i], b[i], cost[i], args.eps, numItermax=its, stopThr=0.0) for i in range(len(a))])

    t_ours, p_ours = _timed(ours, args.repeats, device)
    rows = [("avllm.ot.sinkhorn (log domain, batched)", t_ours, 0.0)]
    for name, fn in [
        ("ot.solve_batch (log Sinkhorn, torch backend)", pot_batch),
        ("ot.sinkhorn, one problem at a time", pot_loop),
    ]:
        t, plan = _timed(fn, args.repeats, device)
        rows.append((name, t, (plan - p_ours).abs().max().item()))

    print(
        f"{args.batch} problems of {args.n} x {args.m}, eps {args.eps}, {args.iters} iterations, {args.dtype}, "
        f"{device}, {args.threads} thread(s), median of {args.repeats} runs"
    )
    print()
    print("| solver | median time (ms) | time / ours | max abs plan difference vs ours |")
    print("|---|---:|---:|---:|")
    for name, t, diff in rows:
        print(f"| {name} | {t * 1e3:.1f} | {t / t_ours:.2f} | {diff:.2e} |")


if __name__ == "__main__":
    main()
