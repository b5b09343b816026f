"""Media decode against the ffmpeg command line: the same files, comparable work, timed side by side.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_decode.py [--runs 5] [--max-side 640] [--profile]
        [--compare-with old_media.py]    # e.g. git show REV:avllm/media.py > old_media.py: one more row, side by side

Clips (written once to a temporary folder, not timed): synthetic clips of the `test` split at a source rate of
``--src-fps`` (24 fps), 48 kHz mono AAC, H.264 (libx264 veryfast, crf 20, yuv420p): 5 s, 30 s and 60 s at 224 px,
and one 1280x720 clip of ``--hd-seconds`` (the 720 px synthetic scene, reflect-padded to 16:9).

Per clip, in one interleaved loop (so load drifts hit every row alike), the median of ``--runs`` runs of:
  ours        ``avllm.media.load_clip_from_config`` with the demo's MediaConfig (8 fps, 48 kHz, max 60 s,
              max side 640): decodes every source frame, keeps the frame shown at each k / 8 s as (H, W, 3) uint8
              RGB (downscaled with AREA to fit max side), decodes the AAC track to float32 mono at 48 kHz; a
              numpy Clip in memory. Decoder threads as avllm.media sets them (frame threads, one per core).
  ffmpeg -t1  ``ffmpeg -threads 1 -filter_threads 1``: the same file to raw rgb24 frames through ``fps=8`` (and
              ``scale=W:H:flags=area`` when ours downscales) plus f32le mono 48 kHz audio, both to /dev/null.
  ffmpeg auto the same command with FFmpeg's own thread choice (frame threads, one per core).
Before timing, the frame and sample counts of ffmpeg's output (read from a pipe) are printed beside ours: the
frames agree; ffmpeg's audio keeps the AAC encoder's padding of the last frame (< 1024 samples), which ours drops.
Wall time is noisy on a shared machine; CPU time (user + system of all threads, ours in-process, ffmpeg's as a
child) much less. Every ffmpeg figure includes starting the process (printed apart as ``ffmpeg -version``).
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import io
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class BenchClip:
    name: str
    path: Path
    seconds: float
    width: int
    height: int


def make_clip(folder: Path, seconds: float, size: int, hd: bool, src_fps: float) -> BenchClip:
    """Write one synthetic clip; ``hd`` pads the square ``size`` scene to 1280x720 (size must be 720)."""
    from avllm.media import write_video
    from avllm.synth import generate

    c = generate(7, split="test", seed=0, difficulty="standard", image_size=size, fps=src_fps, duration=seconds)
    frames = c.frames  # (T, size, size, 3) uint8
    if hd:
        pad = (1280 - size) // 2
        frames = np.pad(frames, ((0, 0), (0, 0), (pad, pad), (0, 0)), mode="reflect")  # (T, 720, 1280, 3)
    h, w = frames.shape[1:3]
    name = f"{seconds:g} s, {w}x{h}"
    path = write_video(folder / f"clip_{seconds:g}s_{w}x{h}.mp4", frames, src_fps, c.audio, c.sample_rate)
    return BenchClip(name, path, seconds, w, h)


def ffmpeg_cmd(clip: BenchClip, fps: float, rate: int, max_seconds: float, out_size: tuple[int, int],
               threads: int | None, video_out: str = "/dev/null", audio_out: str = "/dev/null") -> list[str]:
    """The ffmpeg command that does our loader's work: frames sampled at fps, resized to out_size, rgb24; audio
    f32le mono at rate; the first max_seconds only. threads None = FFmpeg's own choice."""
    vf = f"fps={fps:g}"
    if out_size != (clip.width, clip.height):
        vf += f",scale={out_size[0]}:{out_size[1]}:flags=area"
    th = [] if threads is None else ["-threads", str(threads)]
    fth = [] if threads is None else ["-filter_threads", str(threads)]
    return ["ffmpeg", "-v", "error", "-nostdin", *fth, *th, "-t", f"{max_seconds:g}", "-i", str(clip.path),
            "-map", "0:v:0", "-vf", vf, "-pix_fmt", "rgb24", "-f", "rawvideo", "-y", video_out,
            "-map", "0:a:0", "-ac", "1", "-ar", str(rate), "-f", "f32le", "-y", audio_out]  # fmt: skip


def ffmpeg_counts(clip: BenchClip, fps: float, rate: int, max_seconds: float, out_size: tuple[int, int],
                  folder: Path) -> tuple[int, int]:
    """(frames, samples) that the ffmpeg command produces (video read from its stdout, audio from a file)."""
    wav = folder / "audio.f32"
    cmd = ffmpeg_cmd(clip, fps, rate, max_seconds, out_size, None, video_out="pipe:1", audio_out=str(wav))
    raw = subprocess.run(cmd, check=True, capture_output=True).stdout
    frames = len(raw) // (out_size[0] * out_size[1] * 3)
    samples = wav.stat().st_size // 4
    wav.unlink()
    return frames, samples


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of fn(): the CPU time of this process (all its threads) and of the children
    that ended meanwhile (the ffmpeg process, all its threads)."""
    def cpu() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    c0, t0 = cpu(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, cpu() - c0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--src-fps", type=float, default=24.0, help="frame rate of the written clips")
    parser.add_argument("--hd-seconds", type=float, default=10.0, help="length of the 1280x720 clip")
    parser.add_argument("--max-side", type=int, default=640, help="our loader's max_side (the demo's: 640)")
    parser.add_argument("--profile", action="store_true", help="cProfile the decode of the 60 s and the 720p clip")
    parser.add_argument("--keep", type=Path, default=None, help="write the clips here and keep them")
    parser.add_argument("--compare-with", type=Path, default=None,
                        help="another media.py (e.g. `git show REV:avllm/media.py > old.py`), timed as one more row")
    args = parser.parse_args(argv)
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg is not on PATH (apt-get install -y ffmpeg)")

    from avllm import media
    from avllm.config import MediaConfig
    from avllm.media import load_clip_from_config

    other = None
    if args.compare_with is not None:
        spec = importlib.util.spec_from_file_location("media_other", args.compare_with)
        other = importlib.util.module_from_spec(spec)
        sys.modules["media_other"] = other  # dataclasses look their module up there
        spec.loader.exec_module(other)
    cfg = MediaConfig(fps=8.0, sample_rate=48000, max_seconds=60.0, max_side=args.max_side)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_decode_"))
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    clips = [make_clip(folder, s, 224, False, args.src_fps) for s in (5.0, 30.0, 60.0)]
    clips.append(make_clip(folder, args.hd_seconds, 720, True, args.src_fps))
    version = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True).stdout.split()[2]
    print(f"clips written in {time.perf_counter() - t0:.1f} s to {folder}; source {args.src_fps:g} fps; "
          f"CPUs: {os.cpu_count()}; ffmpeg {version}; avllm.media from {Path(media.__file__).parent}")

    rows = []
    for c in clips:
        clip = load_clip_from_config(cfg, c.path)  # warm-up, and the shapes ffmpeg must match
        size = (clip.frames.shape[2], clip.frames.shape[1])
        nf, ns = ffmpeg_counts(c, cfg.fps, cfg.sample_rate, cfg.max_seconds, size, folder)
        check = f"frames ours {clip.num_frames} / ffmpeg {nf}, samples ours {clip.audio.shape[0]} / ffmpeg {ns}"
        cmds = {t: ffmpeg_cmd(c, cfg.fps, cfg.sample_rate, cfg.max_seconds, size, t) for t in (1, None)}
        for cmd in cmds.values():
            subprocess.run(cmd, check=True)  # warm-up
        if other is not None:
            old = other.load_clip_from_config(cfg, c.path)  # warm-up, and the same output?
            same = old.frames.shape == clip.frames.shape and np.array_equal(old.frames, clip.frames)
            check += f"; {args.compare_with.name} gives {'the same' if same else 'DIFFERENT'} frames"
        ours, ff1, ffa, before = [], [], [], []
        path, cmd1, cmd_auto = c.path, cmds[1], cmds[None]
        for _ in range(args.runs):
            ours.append(timed(lambda: load_clip_from_config(cfg, path)))  # noqa: B023 (called at once)
            ff1.append(timed(lambda: subprocess.run(cmd1, check=True)))  # noqa: B023
            ffa.append(timed(lambda: subprocess.run(cmd_auto, check=True)))  # noqa: B023
            if other is not None:
                before.append(timed(lambda: other.load_clip_from_config(cfg, path)))  # noqa: B023
        med = [tuple(statistics.median(r[i] for r in runs) for i in (0, 1)) if runs else (float("nan"),) * 2
               for runs in (ours, ff1, ffa, before)]
        rows.append((c, size, clip.num_frames, med, check))
    start = [timed(lambda: subprocess.run(["ffmpeg", "-v", "error", "-version"], capture_output=True, check=True))[0]
             for _ in range(args.runs)]

    print(f"\nmedian of {args.runs} runs; wall and CPU seconds (CPU: user + system, all threads); "
          "ratio = ours / ffmpeg\n")
    print("| clip | output | ours wall | ffmpeg 1 thread wall | ratio | ffmpeg auto wall | ratio "
          "| ours CPU | ffmpeg 1 thread CPU | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c, size, n, ((o, oc), (f1, f1c), (fa, _), _), _ in rows:
        print(f"| {c.name} ({c.path.stat().st_size / 2**20:.1f} MB) | {n} x {size[0]}x{size[1]} | {o:.3f} | "
              f"{f1:.3f} | {o / f1:.2f} | {fa:.3f} | {o / fa:.2f} | {oc:.3f} | {f1c:.3f} | {oc / f1c:.2f} |")
    print(f"\nffmpeg process start alone (ffmpeg -version), in every ffmpeg figure: {statistics.median(start):.3f} s")
    for c, *_, check in rows:
        print(f"{c.name}: {check}")
    if other is not None:
        print(f"\nours against {args.compare_with} (median of {args.runs}, interleaved with the rows above)\n")
        print("| clip | ours wall | other wall | other / ours | ours CPU | other CPU | other / ours |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for c, _, _, ((o, oc), _, _, (b, bc)), _ in rows:
            print(f"| {c.name} | {o:.3f} | {b:.3f} | {b / o:.2f} | {oc:.3f} | {bc:.3f} | {bc / oc:.2f} |")

    if args.profile:  # the longest 224 px clip and the 720p clip, ours (and the other media.py when given)
        loaders = {"ours": load_clip_from_config}
        if other is not None:
            loaders[args.compare_with.name] = other.load_clip_from_config
        for c in (clips[2], clips[3]):
            for name, load in loaders.items():
                prof = cProfile.Profile()
                prof.runcall(load, cfg, c.path)
                s = io.StringIO()
                pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(8)
                print(f"\ncProfile of {name} on {c.name} (by own time):\n{s.getvalue()}")
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
