"""Model cost: parameters per part, forward and train-step time, peak memory.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_model.py                      # tiny, CPU
    PYTHONPATH=. .venv/bin/python benchmarks/bench_model.py --extra-texts 2      # 3 texts per clip for the LM
    PYTHONPATH=. python benchmarks/bench_model.py --preset base --device cuda --bf16   # on a GPU

Batches come from the in-memory synthetic world (generation is not timed). Prints a markdown table.
CPU peak memory is the process's maximum resident set size; GPU peak memory is torch's allocator peak.

FLOPs per train step are counted once, on a step of their own (not timed), with
``torch.utils.flop_counter.FlopCounterMode`` over forward + backward: the matmul, convolution and attention
FLOPs that actually run (elementwise ops, norms, the STFT and the optimizer are not counted; frozen weights get no
weight-gradient matmuls, so a model with frozen parts runs less than the usual 6 x parameters x tokens).
Achieved FLOP/s = counted FLOPs / median step time. Model FLOPs utilisation (MFU) = achieved / ``--peak-tflops``;
on CUDA with ``--bf16`` the peak defaults to 989 TFLOP/s, the H100 SXM dense bf16 peak (H200: the same).
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import statistics
import time

import torch

from avllm.config import TrainConfig, get_preset
from avllm.model import build_model
from avllm.train import _param_groups, _set_trainable
from avllm.trainutil import TrainingData, build_tokenizer_for


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


H100_SXM_BF16_TFLOPS = 989.0  # dense (no sparsity) bf16 tensor-core peak of the H100 SXM (and of the H200)


def count_step_flops(model: torch.nn.Module, batch: dict, amp) -> tuple[int, int, dict[str, int]]:
    """FLOPs of the training loss on ``batch``: (forward + backward, forward alone, forward per top-level part).

    The parts come from a forward-only count: the module tracker does not attribute backward ops reliably.
    Gradients are cleared after."""
    from torch.utils.flop_counter import FlopCounterMode

    step = FlopCounterMode(display=False)
    with step:
        with amp:
            out = model(batch)
        out.loss.backward()
    model.zero_grad(set_to_none=True)
    fwd = FlopCounterMode(display=False, depth=1)
    with fwd, amp:  # with autograd on: the module tracker needs it
        model(batch)
    parts: dict[str, int] = {}
    for name, ops in fwd.get_flop_counts().items():
        if name.count(".") == 1:  # "<root class>.<child>"
            parts[name.split(".", 1)[1]] = sum(ops.values())
    return step.get_total_flops(), fwd.get_total_flops(), parts


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="tiny")
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--extra-texts", type=int, default=0, help="TrainConfig.extra_texts: more texts per clip")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--peak-tflops", type=float, default=None,
                   help=f"device peak for MFU (default on CUDA with --bf16: {H100_SXM_BF16_TFLOPS:g}, H100 SXM)")
    a = p.parse_args()
    if a.peak_tflops is None and a.device.startswith("cuda") and a.bf16:
        a.peak_tflops = H100_SXM_BF16_TFLOPS
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    cfg = get_preset(a.preset)
    model = build_model(cfg, build_tokenizer_for(cfg, num_clips=60)).to(dev)
    parts = {n: sum(q.numel() for q in m.parameters()) for n, m in model.named_children()}
    total = sum(parts.values())
    data = TrainingData(TrainConfig(batch_size=a.batch, extra_texts=a.extra_texts), cfg)
    batches = [_to(data.batch(i), dev) for i in range(a.repeats + 1)]
    amp = torch.autocast(dev.type, dtype=torch.bfloat16) if a.bf16 else contextlib.nullcontext()

    model.eval()
    fwd = []
    with torch.no_grad(), amp:
        for b in batches:
            _sync(dev)
            t0 = time.perf_counter()
            f = model.encode(b["frames"], b["frame_times"], b["audio"], b["audio_len"], key_index=b["key_index"])
            model.av_prefix(f)
            _sync(dev)
            fwd.append(time.perf_counter() - t0)
    model.train()
    _set_trainable(model, "joint")
    opt = torch.optim.AdamW(_param_groups(model, 0.05), lr=1e-4)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    flops, fwd_flops, flop_parts = count_step_flops(model, batches[0], amp)
    step = []
    for b in batches:
        _sync(dev)
        t0 = time.perf_counter()
        with amp:
            out = model(b)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(dev)
        step.append(time.perf_counter() - t0)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
        peak_s = f"{peak:.2f} GiB (GPU allocator peak)"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        peak_s = f"{peak:.2f} GiB (process max RSS)"
    fwd_m, step_m = statistics.median(fwd[1:]), statistics.median(step[1:])
    texts = a.batch + sum(len(b.get("extra_prompt", [])) for b in batches) / len(batches)
    print(f"preset {a.preset}, device {dev}, bf16 {a.bf16}, threads {a.threads}, batch {a.batch}, "
          f"extra texts {a.extra_texts} ({texts:.1f} texts per batch)\n")
    print("| part | parameters |\n|---|---:|")
    for n, c in sorted(parts.items(), key=lambda x: -x[1]):
        if c:
            print(f"| {n} | {c / 1e6:.2f} M |")
    print(f"| **total** | **{total / 1e6:.2f} M** |\n")
    print("| measure | median | per clip |\n|---|---:|---:|")
    print(f"| forward (encode + heads + AV prefix, no grad), batch {a.batch} | {fwd_m:.3f} s | "
          f"{fwd_m / a.batch * 1000:.1f} ms |")
    print(f"| train step (forward + backward + AdamW, all losses), batch {a.batch} | {step_m:.3f} s | "
          f"{step_m / a.batch * 1000:.1f} ms |")
    print(f"| training throughput | {a.batch / step_m:.1f} samples/s | |")
    print(f"| peak memory | {peak_s} | |")
    achieved = flops / step_m
    print(f"| FLOPs per train step (FlopCounterMode, forward + backward) | {flops / 1e12:.3f} TFLOP | "
          f"{flops / a.batch / 1e9:.1f} GFLOP |")
    print(f"| achieved | {achieved / 1e12:.3f} TFLOP/s | |")
    if a.peak_tflops:
        name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type
        mfu = achieved / (a.peak_tflops * 1e12)
        print(f"| MFU vs {a.peak_tflops:g} TFLOP/s peak ({name}) | {100 * mfu:.1f} % | |")
    if flop_parts:
        print(f"\n| part | forward FLOPs, batch {a.batch} | share of the forward |\n|---|---:|---:|")
        for n, c in sorted(flop_parts.items(), key=lambda x: -x[1]):
            if c:
                print(f"| {n} | {c / 1e9:.2f} GFLOP | {100 * c / fwd_flops:.0f} % |")
        ratio = (flops - fwd_flops) / fwd_flops
        print(f"| **forward** | **{fwd_flops / 1e9:.2f} GFLOP** | backward / forward: {ratio:.2f} |")


if __name__ == "__main__":
    main()
