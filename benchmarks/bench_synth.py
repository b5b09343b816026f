"""Throughput of the synthetic world: clips per second in memory (all frames, 4 frames, key frame) and written
to disk (mp4 + masks + manifest), one process, one thread.

    python benchmarks/bench_synth.py [--num 60] [--image-size 224] [--fps 8] [--duration 4]

Prints a markdown table (for docs/BENCHMARKS.md). Both wall-clock and process CPU time are shown: the CPU column
is what one core delivers; the wall column also pays for whatever else the machine is running.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


def _rate(fn, num: int) -> tuple[float, float]:
    """(clips/s by wall clock, clips/s by process CPU time) of fn(i) for i in range(num)."""
    fn(10_000)  # warm the caches (noise banks, textures, shape masks)
    w, c = time.perf_counter(), time.process_time()
    for i in range(num):
        fn(i)
    w, c = time.perf_counter() - w, time.process_time() - c
    return num / w, num / c


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num", type=int, default=60, help="clips per measurement")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--fps", type=float, default=8.0)
    p.add_argument("--duration", type=float, default=4.0)
    a = p.parse_args()

    from avllm.synth import generate
    from avllm.synth.writer import write_clip

    kw = dict(image_size=a.image_size, fps=a.fps, duration=a.duration)
    rows = []
    for diff in ("easy", "standard", "hard"):
        for label, extra in (("all frames", {}), ("4 frames", {"num_frames": 4}), ("key frame", {"frames": "key"})):
            wall, cpu = _rate(lambda i: generate(i, difficulty=diff, **kw, **extra), a.num)
            rows.append((diff, f"in memory, {label}", wall, cpu))
    with tempfile.TemporaryDirectory() as tmp:
        n_disk = max(5, a.num // 3)
        wall, cpu = _rate(lambda i: write_clip(generate(i, difficulty="standard", **kw), tmp), n_disk)
        rows.append(("standard", "to disk (mp4 + masks + record)", wall, cpu))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"synthetic world throughput: {a.image_size} px, {a.fps:g} fps, {a.duration:g} s clips, {a.num} clips "
          f"each; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {load:.1f} at the end")
    print()
    print("| difficulty | mode | clips/s (wall) | clips/s (one core, CPU time) |")
    print("|---|---|---|---|")
    for diff, mode, wall, cpu in rows:
        print(f"| {diff} | {mode} | {wall:.1f} | {cpu:.1f} |")


if __name__ == "__main__":
    main()
