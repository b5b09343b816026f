"""Predict on one clip from the command line: the demo's images, overlay video and JSON, written to a folder.

    python -m avllm.predict clip.mp4 --out out/
    python -m avllm.predict --image dog.png --audio bark.wav --checkpoint runs/tiny/step_0001000 \\
        --claim "A dog barks." --question "How many objects make sound?" --out out/

Writes ``out/<name>.png`` for every image of ``avllm.render.IMAGE_NAMES``, ``out/overlay.mp4`` and
``out/prediction.json``, prints a short summary, and exits with status 2 and a one-line message on bad input
(a file that cannot be read, a missing checkpoint). The checkpoint resolution, the ground-truth lookup of the
example clips and ``run_prediction`` are shared with the demo.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from avllm.checkpoint import CheckpointError

if TYPE_CHECKING:
    from avllm.media import Clip
    from avllm.predictor import Prediction, Predictor
    from avllm.record import Record

__all__ = [
    "REPO_ROOT",
    "DEFAULT_CHECKPOINT",
    "EXAMPLES_JSON",
    "NoDefaultCheckpoint",
    "CheckpointKind",
    "checkpoint_kind",
    "resolve_checkpoint",
    "ExampleIndex",
    "Analysis",
    "run_prediction",
    "main",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHECKPOINT = "assets/avllm-tiny"  # the shipped default, relative to the repository root
EXAMPLES_JSON = REPO_ROOT / "examples" / "examples.json"
HUB_UNREACHABLE = "cannot reach the model hub; download the checkpoint and give its local directory"
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.\-]*/[\w.\-]+")


class NoDefaultCheckpoint(CheckpointError):
    """The shipped default checkpoint is not present (the media views still work without it)."""


def _local_candidates(text: str) -> list[Path]:
    p = Path(text).expanduser()
    return [p] if p.is_absolute() else [Path.cwd() / p, REPO_ROOT / p]


CheckpointKind = Literal["local", "default_missing", "hub", "missing"]


def checkpoint_kind(text: str | None) -> tuple[CheckpointKind, Path | None]:
    """What a typed checkpoint is, without loading or fetching anything: ("local", its directory),
    ("default_missing", None) for the absent default, ("hub", None) for an ``owner/name`` id that is no local path,
    ("missing", None) otherwise. Empty text means the default."""
    text = (text or "").strip() or DEFAULT_CHECKPOINT
    for p in _local_candidates(text):
        if p.exists():
            return "local", p.resolve()
    if text.rstrip("/") == DEFAULT_CHECKPOINT:
        return "default_missing", None
    if _HUB_ID.fullmatch(text) and not text.startswith((".", "~")):
        return "hub", None
    return "missing", None


def resolve_checkpoint(text: str | None) -> Path:
    """A checkpoint directory from what a person typed: empty -> the default ``assets/avllm-tiny``; a local
    directory (relative to the working directory or to the repository); else a model hub id ``owner/name``,
    fetched with huggingface_hub when the hub is reachable.

    Raises NoDefaultCheckpoint when the default is asked for and absent, CheckpointError (a readable message)
    for anything else that cannot be used.
    """
    kind, path = checkpoint_kind(text)
    if kind == "local":
        return path
    if kind == "default_missing":
        raise NoDefaultCheckpoint(
            f"no default checkpoint is present ({DEFAULT_CHECKPOINT} is missing): give the directory of a "
            "checkpoint to see the model's predictions"
        )
    if kind == "hub":
        return _from_hub(text.strip())
    raise CheckpointError(f"checkpoint not found: {text.strip()} (give the directory of an avllm checkpoint)")


def _from_hub(repo_id: str) -> Path:
    """Download (or find in the local cache) the checkpoint files of ``repo_id``; CheckpointError when the hub
    cannot be reached or has no such repository."""
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"])
    except Exception as err:  # noqa: BLE001 — offline mode, network and repository errors all mean "cannot fetch"
        reason = type(err).__name__
        raise CheckpointError(
            f"'{repo_id}' is not a local directory, and it cannot be fetched as a model hub id: {HUB_UNREACHABLE} "
            f"({reason})"
        ) from None
    return Path(path)


# ----------------------------------------------------------------------------------------------------------------
# Ground truth of the example clips


class ExampleIndex:
    """The example clips of ``examples/examples.json``, found by content: a file whose SHA-256 matches an example
    gets that example's ground-truth record (a renamed copy too; a different file of the same name does not)."""

    MAX_BYTES = 5_000_000  # larger files are no example: not hashed

    def __init__(self, path: str | Path = EXAMPLES_JSON):
        self.path = Path(path)
        self.entries: list[dict] = []
        if self.path.is_file():
            self.entries = json.loads(self.path.read_text()).get("examples", [])
        self._by_hash = {e["sha256"]: e for e in self.entries if "sha256" in e}

    def files(self) -> list[Path]:
        """The example files that exist next to the index, in its order."""
        return [self.path.parent / e["file"] for e in self.entries if (self.path.parent / e["file"]).is_file()]

    def entry_for(self, file: str | Path | None) -> dict | None:
        if not file or not self._by_hash:
            return None
        p = Path(file)
        if not p.is_file() or p.stat().st_size > self.MAX_BYTES:
            return None
        return self._by_hash.get(hashlib.sha256(p.read_bytes()).hexdigest())

    def record_for(self, file: str | Path | None) -> Record | None:
        """The ground-truth Record of ``file`` when it is one of the examples, else None."""
        from avllm.record import Record

        e = self.entry_for(file)
        return Record.from_dict(e["record"]) if e is not None else None


# ----------------------------------------------------------------------------------------------------------------
# Prediction


@dataclass
class Analysis:
    """One clip through the model: the prediction and the SSL map of every sampled frame."""

    prediction: Prediction
    frame_maps: np.ndarray  # (T, g, g) float32 in [0, 1], at prediction.frame_times


def run_prediction(
    predictor: Predictor, clip: Clip, claim: str | None = None, question: str | None = None
) -> Analysis:
    """Encode ``clip`` (cached in the predictor), answer every task, read the maps. Times each stage into
    ``prediction.timings`` (encode, generate, frame_maps)."""
    predictor.set_clip(clip)
    pred = predictor.predict(claim=(claim or "").strip() or None, question=(question or "").strip() or None)
    t0 = time.perf_counter()
    fmaps = predictor.frame_maps().astype(np.float32)
    pred.timings["frame_maps"] = round(time.perf_counter() - t0, 4)
    return Analysis(pred, fmaps)


def _media_config(predictor: Predictor):
    from avllm.config import MediaConfig

    return MediaConfig(sample_rate=predictor.model.cfg.audio.sample_rate)


# ----------------------------------------------------------------------------------------------------------------
# CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m avllm.predict",
        description="Run the model on one clip and write its images, overlay video and prediction.json.",
    )
    p.add_argument("video", nargs="?", help="a video file (mp4, webm, mov, mkv, avi)")
    p.add_argument("--image", help="a still image (with --audio, or alone)")
    p.add_argument("--audio", help="an audio file (with --image, or alone)")
    p.add_argument("--checkpoint", default=os.environ.get("AVLLM_CHECKPOINT") or DEFAULT_CHECKPOINT,
                   help=f"checkpoint directory or hub id (default: $AVLLM_CHECKPOINT or {DEFAULT_CHECKPOINT})")
    p.add_argument("--claim", help="a claim to fact-check against the clip")
    p.add_argument("--question", help="a question about the clip (AVQA)")
    p.add_argument("--out", required=True, type=Path, help="output folder (created)")
    p.add_argument("--examples", type=Path, default=EXAMPLES_JSON,
                   help="examples index: an example clip gets its ground truth drawn (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    return p


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """The CLI; returns the exit status (0 ok, 2 bad input or checkpoint)."""
    args = _parser().parse_args(argv)
    if args.video and args.image:
        return _fail("give a video, or --image with --audio, not both")
    if not (args.video or args.image or args.audio):
        return _fail("give a video, or --image and/or --audio")
    import torch
    from PIL import Image

    from avllm.media import MediaError, load_clip_from_config
    from avllm.predictor import Predictor
    from avllm.render import render_all, summary_lines

    torch.set_num_threads(min(torch.get_num_threads(), os.cpu_count() or 1))
    try:
        predictor = Predictor.from_checkpoint(resolve_checkpoint(args.checkpoint), device=args.device)
    except CheckpointError as err:
        return _fail(str(err))
    try:
        clip = load_clip_from_config(_media_config(predictor), args.video, image=args.image, audio=args.audio)
    except MediaError as err:
        return _fail(str(err))
    record = ExampleIndex(args.examples).record_for(args.video or args.image)
    analysis = run_prediction(predictor, clip, args.claim, args.question)
    out = render_all(clip, analysis.prediction, analysis.frame_maps, args.out, record=record)
    for name, img in out.images.items():
        Image.fromarray(img).save(args.out / f"{name}.png")
    print(f"{clip.source}: {clip.duration:.2f} s, {clip.num_frames} frames"
          + (" (ground truth: examples index)" if record is not None else ""))  # fmt: skip
    for note in clip.flags.notes + out.notes:
        print(f"note: {note}")
    for line in summary_lines(analysis.prediction):
        print(f"  {line}")
    print(f"wrote {len(out.images)} images, {out.video.name if out.video else 'no video'} and "
          f"{out.json_path.name} to {args.out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
