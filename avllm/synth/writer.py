"""Writing the synthetic world to disk: ``DIR/clips/<id>.mp4`` (H.264 + AAC, browser-playable),
``DIR/masks/<id>_<k>.png`` (key-frame instance mask of object k), ``DIR/masks/<id>_ssl.png`` (key-frame SSL mask)
and ``DIR/manifest.jsonl`` (one ``Record.to_json()`` per line; paths relative to DIR)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avllm.synth.difficulty import Difficulty
from avllm.synth.speech import require_espeak
from avllm.synth.world import SynthClip, generate

__all__ = ["write_clip", "write_dataset"]


def _write_mask(path: Path, mask: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(path, optimize=False, compress_level=1)


def write_clip(clip: SynthClip, out: str | Path) -> str:
    """Write one clip's mp4 and masks under ``out`` and fill in the record's paths; returns its manifest line."""
    from avllm.media import write_video

    out = Path(out)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    rec = clip.record
    if len(clip.frames) != rec.meta["num_frames"]:
        raise ValueError("write_clip needs every frame (generate with frames='all' and no num_frames)")
    rec.video = f"clips/{rec.id}.mp4"
    write_video(out / rec.video, clip.frames, clip.fps, clip.audio, clip.sample_rate)
    for k, (obj, m) in enumerate(zip(rec.objects, clip.masks)):
        obj.mask = f"masks/{rec.id}_{k}.png"
        _write_mask(out / obj.mask, m)
    rec.ssl_mask = f"masks/{rec.id}_ssl.png"
    _write_mask(out / rec.ssl_mask, clip.ssl_mask)
    return rec.to_json()


def write_dataset(
    out: str | Path,
    split: str = "test",
    num: int = 200,
    seed: int = 0,
    difficulty: str | Difficulty = "standard",
    speech: bool = False,
    image_size: int = 224,
    fps: float = 8.0,
    duration: float = 4.0,
    start: int = 0,
    progress: bool = True,
    evidence: bool = False,
) -> Path:
    """Generate clips ``start .. start + num - 1`` of ``split`` and write them under ``out``; returns the manifest
    path. The manifest is written to a temporary name and renamed at the end, so a finished manifest is complete."""
    from tqdm import tqdm

    if speech:
        require_espeak()  # before anything is written
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.jsonl"
    tmp = out / "manifest.jsonl.partial"
    with tmp.open("w") as f:
        for i in tqdm(range(start, start + num), desc=f"synth {split}", unit="clip", disable=not progress):
            clip = generate(i, split=split, seed=seed, difficulty=difficulty, speech=speech,
                            image_size=image_size, fps=fps, duration=duration, evidence=evidence)  # fmt: skip
            f.write(write_clip(clip, out) + "\n")
    tmp.replace(manifest)
    return manifest
