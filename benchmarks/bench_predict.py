"""Predict latency by clip length: one clip per length from the file on disk to every output the page shows.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_predict.py --checkpoint assets/avllm-tiny --seconds 5 10 30
    PYTHONPATH=. python benchmarks/bench_predict.py --preset base --device cuda --bf16 --seconds 5 10 30   # a GPU

Clips: synthetic clips (the `test` split, standard difficulty, 224 px, 8 fps, 48 kHz) of each ``--seconds``,
written to a temporary mp4 first (not timed). Stages, as in ``bench_demo.py``: decode (file -> Clip with the
demo's MediaConfig at the model's sample rate), image encoder, audio encoder (HTSAT, one pass per window of
``audio.window_seconds``), heads (the rest of ``model.encode``: input sampling and resizing, projections,
contextual block, slots, DenseAV, AVOpT, AVACE, Q-Former, proposals), generation (the five task prompts in one batch,
<= 60 new tokens, + the CAD answer chain), readout (maps, curves, per-frame SSL maps, proposals), rendering
(images + JSON) and the overlay video (drawing + H.264/AAC). One warm-up run per length, then the median of
``--runs``; the lengths are interleaved run by run so that load changes on a shared machine hit all alike.

``--checkpoint`` loads a trained model (the default, assets/avllm-tiny). ``--preset NAME`` builds that preset
with random weights instead (``--random-weights``, the default for a preset: image and audio encoders without
pretrained files, the LM built from its config with the project tokenizer, so nothing is downloaded); random
weights tend to run to the token limit, so their generation time is about the worst case. On CUDA every stage
boundary synchronises the device; ``--bf16`` runs the model under bf16 autocast (weights stay float32).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import torch

CLAIM = "The bell rings before the clock."
QUESTION = "How many objects make a sound?"
STAGES = ("decode", "image encoder", "audio encoder", "heads", "generation", "readout", "rendering", "video")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_modules(model: torch.nn.Module, names: list[str], device: torch.device) -> dict[str, float]:
    """Accumulate the forward time (s) of ``model.<name>`` for each name into the returned dict (device-synced)."""
    acc = {n: 0.0 for n in names}
    for n in names:
        start: dict[str, float] = {}

        def pre(_m, _a, n=n, start=start):
            _sync(device)
            start[n] = time.perf_counter()

        def post(_m, _a, _o, n=n, start=start):
            _sync(device)
            acc[n] += time.perf_counter() - start[n]

        mod = getattr(model, n)
        mod.register_forward_pre_hook(pre)
        mod.register_forward_hook(post)
    return acc


def run_once(predictor, path: Path, out: Path, acc: dict[str, float], amp) -> tuple[dict[str, float], dict]:
    """One clip through every stage; returns (seconds per stage + "total", sizes: frames, audio windows and tokens,
    LM prefix length, LM forward calls during generation). ``acc`` also counts the LM's calls under "lm_calls"."""
    from avllm.config import MediaConfig
    from avllm.media import load_clip_from_config
    from avllm.render import render_all

    dev = predictor.device
    for k in acc:
        acc[k] = 0.0
    t: dict[str, float] = {}
    _sync(dev)
    t0 = time.perf_counter()
    clip = load_clip_from_config(MediaConfig(sample_rate=predictor.model.cfg.audio.sample_rate, max_side=640), path)
    t["decode"] = time.perf_counter() - t0
    with amp:
        t1 = time.perf_counter()
        predictor.set_clip(clip)
        _sync(dev)
        encode = time.perf_counter() - t1
        t1 = time.perf_counter()
        pred = predictor.predict(claim=CLAIM, question=QUESTION)
        fmaps = predictor.frame_maps().astype("float32")
        _sync(dev)
        predict = time.perf_counter() - t1
    t["image encoder"] = acc["image_encoder"]
    t["audio encoder"] = acc["audio_encoder"]
    t["heads"] = encode - acc["image_encoder"] - acc["audio_encoder"]
    t["generation"] = pred.timings["generate"]
    t["readout"] = predict - pred.timings["generate"]
    r = render_all(clip, pred, fmaps, out)
    t["rendering"] = r.timings["render"] + r.timings["json"]
    t["video"] = r.timings["video"]
    t["total"] = time.perf_counter() - t0
    f = predictor.features
    with torch.no_grad(), amp:
        prefix = int(predictor.model.av_prefix(f).shape[1])
    sizes = {"frames": clip.num_frames, "samples": int(clip.audio.shape[0]), "audio_tokens": int(f.aud.shape[1]),
             "windows": int(f.aud.shape[1]) // predictor.model.cfg.audio.tokens_per_window,
             "model_frames": int(f.frames.shape[1]), "prefix": prefix, "lm_calls": int(acc["lm_calls"])}
    return t, sizes


def build_predictor(args: argparse.Namespace):
    """The Predictor of ``--checkpoint``, or of ``--preset`` with random weights, on ``--device``."""
    from avllm.predictor import Predictor

    if args.preset is None:
        from avllm.predict import resolve_checkpoint

        return Predictor.from_checkpoint(resolve_checkpoint(args.checkpoint), device=args.device)
    from avllm.config import get_preset
    from avllm.model import build_model
    from avllm.trainutil import build_tokenizer_for

    cfg = get_preset(args.preset)
    if args.random_weights:
        lm = cfg.lm.replace(arch="llama") if cfg.lm.arch == "hf" else cfg.lm
        cfg = cfg.replace(image=cfg.image.replace(pretrained=""), audio=cfg.audio.replace(pretrained=""), lm=lm)
    with torch.device(args.device):  # parameters are made on the device: a 7B LM is initialised there
        model = build_model(cfg, build_tokenizer_for(cfg, num_clips=60))
    return Predictor(model, device=args.device)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="assets/avllm-tiny")
    parser.add_argument("--preset", default=None, help="build this preset instead of loading --checkpoint")
    parser.add_argument("--random-weights", action=argparse.BooleanOptionalAction, default=True,
                        help="with --preset: no pretrained files, LM from its config (default: on)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    parser.add_argument("--seconds", type=float, nargs="+", default=[5.0, 10.0, 30.0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    amp = torch.autocast(dev.type, dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext()

    from avllm.media import write_video
    from avllm.synth import generate

    tmp = Path(tempfile.mkdtemp(prefix="bench_predict_"))
    paths = {}
    for s in args.seconds:
        c = generate(23, split="test", seed=0, difficulty="standard", image_size=224, fps=8.0, duration=s)
        paths[s] = write_video(tmp / f"clip_{s:g}s.mp4", c.frames, c.fps, c.audio, c.sample_rate)
    t0 = time.perf_counter()
    predictor = build_predictor(args)
    _sync(dev)
    what = args.checkpoint if args.preset is None else f"preset {args.preset} (random weights: {args.random_weights})"
    print(f"{what}; device {dev}, bf16 autocast {args.bf16}, torch threads {args.threads}; "
          f"model ready in {time.perf_counter() - t0:.1f} s")
    acc = timed_modules(predictor.model, ["image_encoder", "audio_encoder"], dev)
    acc["lm_calls"] = 0.0  # forward calls of the causal LM: one per generated token (batched), + the prefill
    predictor.model.lm.lm.register_forward_hook(lambda *_: acc.__setitem__("lm_calls", acc["lm_calls"] + 1))
    for s in args.seconds:  # warm-up
        run_once(predictor, paths[s], tmp / f"warm{s:g}", acc, amp)
    runs: dict[float, list[dict[str, float]]] = {s: [] for s in args.seconds}
    sizes = {}
    for i in range(args.runs):
        for s in args.seconds:
            t, sizes[s] = run_once(predictor, paths[s], tmp / f"run{i}_{s:g}", acc, amp)
            runs[s].append(t)

    med = {s: {k: statistics.median(r[k] for r in runs[s]) for k in (*STAGES, "total")} for s in args.seconds}
    base = args.seconds[0]
    print(f"\nmedian of {args.runs} runs, seconds; (x) = time / time of the {base:g} s clip\n")
    print("| stage | " + " | ".join(f"{s:g} s clip" for s in args.seconds) + " |")
    print("|---|" + "---:|" * len(args.seconds))
    for k in (*STAGES, "total"):
        cells = []
        for s in args.seconds:
            ratio = med[s][k] / med[base][k] if med[base][k] > 0 else float("nan")
            cells.append(f"{med[s][k]:.3f}" + ("" if s == base else f" ({ratio:.1f}x)"))
        name = f"**{k}**" if k == "total" else k
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    for s in args.seconds:
        z = sizes[s]
        print(f"{s:g} s: {z['frames']} decoded frames, {z['samples']} audio samples, {z['windows']} audio windows "
              f"({z['audio_tokens']} audio tokens), {z['model_frames']} frames into the model, LM prefix "
              f"{z['prefix']} tokens, {z['lm_calls']} LM forward calls "
              f"({1000 * med[s]['generation'] / max(z['lm_calls'], 1):.1f} ms of generation each)")


if __name__ == "__main__":
    main()
