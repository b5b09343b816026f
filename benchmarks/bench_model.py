"""Model cost: parameters per part, forward and train-step time, peak memory.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_model.py                      # tiny, CPU
    PYTHONPATH=. python benchmarks/bench_model.py --preset base --device cuda --bf16   # on a GPU

Batches come from the in-memory synthetic world (generation is not timed). Prints a markdown table.
CPU peak memory is the process's maximum resident set size; GPU peak memory is torch's allocator peak.
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


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="tiny")
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    cfg = get_preset(a.preset)
    model = build_model(cfg, build_tokenizer_for(cfg, num_clips=60)).to(dev)
    parts = {n: sum(q.numel() for q in m.parameters()) for n, m in model.named_children()}
    total = sum(parts.values())
    data = TrainingData(TrainConfig(batch_size=a.batch), cfg)
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
    print(f"preset {a.preset}, device {dev}, bf16 {a.bf16}, threads {a.threads}, batch {a.batch}\n")
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


if __name__ == "__main__":
    main()
