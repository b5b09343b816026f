"""Demo latency: one 5-second clip from the file on disk to every output the page shows, stage by stage.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_demo.py --checkpoint assets/avllm-tiny [--runs 3]

The clip is a 5 s, 224 px, 8 fps synthetic clip (the `test` split, standard difficulty) written to a temporary mp4
first (not timed). Each run times: decode (file -> Clip), image and audio encoders, heads (the rest of the encoding:
projections, contextual block, slots, DenseAV, AVOpT, AVACE, Q-Former, proposals), generation (the five task
prompts in one batch + the CAD answer chain), map readout (maps, per-frame SSL maps, proposals), rendering (every
image and the JSON) and the overlay video (drawing + H.264/AAC writing). One warm-up run, then the median of
``--runs`` runs. The model is loaded once before (its load time is printed apart).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def _timed_modules(model, names: list[str]) -> dict[str, float]:
    """Accumulate the forward time of ``model.<name>`` for each name into the returned dict (seconds)."""
    acc = {n: 0.0 for n in names}
    for n in names:
        mod = getattr(model, n)
        start: dict[str, float] = {}
        mod.register_forward_pre_hook(lambda m, a, n=n, start=start: start.__setitem__(n, time.perf_counter()))
        mod.register_forward_hook(lambda m, a, o, n=n, start=start: acc.__setitem__(n, acc[n] + time.perf_counter()
                                                                                    - start[n]))  # fmt: skip
    return acc


def run_once(predictor, path: Path, out: Path, acc: dict[str, float]) -> dict[str, float]:
    from avllm.config import MediaConfig
    from avllm.media import load_clip_from_config
    from avllm.predict import run_prediction
    from avllm.render import render_all

    for k in acc:
        acc[k] = 0.0
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    clip = load_clip_from_config(MediaConfig(sample_rate=predictor.model.cfg.audio.sample_rate), path)
    t["decode"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    analysis = run_prediction(predictor, clip, "The bell rings before the clock.", "How many objects make a sound?")
    predict_wall = time.perf_counter() - t1
    pt = analysis.prediction.timings
    t["encoders"] = acc["image_encoder"] + acc["audio_encoder"]
    t["heads"] = pt["encode"] - t["encoders"]
    t["generation"] = pt["generate"]
    t["readout"] = predict_wall - pt["encode"] - pt["generate"]
    r = render_all(clip, analysis.prediction, analysis.frame_maps, out)
    t["rendering"] = r.timings["render"] + r.timings["json"]
    t["video"] = r.timings["video"]
    t["total"] = time.perf_counter() - t0
    return t


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="assets/avllm-tiny")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from avllm.media import write_video
    from avllm.predict import resolve_checkpoint
    from avllm.predictor import Predictor
    from avllm.synth import generate

    tmp = Path(tempfile.mkdtemp(prefix="bench_demo_"))
    c = generate(23, split="test", seed=0, difficulty="standard", image_size=224, fps=8.0, duration=5.0)
    path = write_video(tmp / "clip.mp4", c.frames, c.fps, c.audio, c.sample_rate)
    t0 = time.perf_counter()
    predictor = Predictor.from_checkpoint(resolve_checkpoint(args.checkpoint))
    print(f"model load (once): {time.perf_counter() - t0:.2f} s; clip: {path.stat().st_size / 1024:.0f} KB, 5 s")
    acc = _timed_modules(predictor.model, ["image_encoder", "audio_encoder"])
    run_once(predictor, path, tmp / "warmup", acc)
    runs = [run_once(predictor, path, tmp / f"run{i}", acc) for i in range(args.runs)]
    print(f"| stage | median of {args.runs} (s) | share |")
    print("|---|---:|---:|")
    total = statistics.median(r["total"] for r in runs)
    for k in runs[0]:
        med = statistics.median(r[k] for r in runs)
        print(f"| {k} | {med:.3f} | {100 * med / total:.0f} % |")


if __name__ == "__main__":
    main()
