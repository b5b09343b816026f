"""Regenerate the demo's example clips and ``examples/examples.json`` from the synthetic world (deterministic).

    python examples/make_examples.py            # writes next to this script
    python examples/make_examples.py --out DIR

Each example is one clip of the synthetic world's ``test`` split (seed 0): 224 px, 8 fps, 4 s, H.264 + AAC.
``examples.json`` holds, per file: a one-line description, a suggested claim and question (taken from the clip's
own fact-checking and AVQA texts, with their true answers), the file's SHA-256 (the demo and the CLI draw ground
truth only for a file whose bytes match) and the clip's full ground-truth record.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

# (file name, test-split index, difficulty, speech, what it shows); indices picked by reading the generator's records
CHOSEN = (
    ("one_of_two_sounding.mp4", 27, "standard", False, "two objects, only one of them makes sound"),
    ("offscreen_sound.mp4", 1, "standard", False, "a visible source, then a sound from something off-screen"),
    ("two_sources_take_turns.mp4", 23, "standard", False, "two visible sources sounding at different times"),
    ("hard_small_objects.mp4", 13, "hard", False, "hard: three small objects, clutter, noise, one late source"),
    ("speech_names_an_object.mp4", 2, "standard", True, "a voice names the silent object; the other one sounds"),
)
SEED = 0
SPLIT = "test"


@dataclass(frozen=True)
class Example:
    file: str
    index: int
    difficulty: str
    speech: bool
    description: str


def _suggested(record, task: str) -> tuple[str, str] | None:
    """(prompt text to type, true answer) of the record's first text for ``task``."""
    for t in record.texts:
        if t.task == task:
            text = t.meta.get("claim", t.prompt) if task == "factcheck" else t.prompt
            return text, t.answer
    return None


def make(out: Path) -> Path:
    """Write every chosen example under ``out``; returns the path of examples.json."""
    from avllm.media import write_video
    from avllm.synth import espeak_available, generate

    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for ex in (Example(*c) for c in CHOSEN):
        if ex.speech and not espeak_available():
            print(f"skipping {ex.file}: espeak-ng is not installed")
            continue
        clip = generate(ex.index, split=SPLIT, seed=SEED, difficulty=ex.difficulty, speech=ex.speech,
                        image_size=224, fps=8.0, duration=4.0)  # fmt: skip
        rec = clip.record
        rec.video = ex.file
        path = write_video(out / ex.file, clip.frames, clip.fps, clip.audio, clip.sample_rate)
        claim, question = _suggested(rec, "factcheck"), _suggested(rec, "avqa")
        caption = next((t.answer for t in rec.texts if t.task == "caption"), "")
        entries.append({
            "file": ex.file,
            "description": ex.description,
            "caption": caption,
            "claim": claim[0] if claim else "",
            "claim_answer": claim[1] if claim else "",
            "question": question[0] if question else "",
            "question_answer": question[1] if question else "",
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "bytes": path.stat().st_size,
            "generator": {"split": SPLIT, "seed": SEED, "index": ex.index, "difficulty": ex.difficulty,
                          "speech": ex.speech},
            "record": rec.to_dict(),
        })
        print(f"{ex.file}: {path.stat().st_size / 1024:.0f} KB  {caption}")
    index = out / "examples.json"
    index.write_text(json.dumps({"examples": entries}, indent=1) + "\n")
    return index


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    args = parser.parse_args(argv)
    print(f"wrote {make(args.out)}")


if __name__ == "__main__":
    main()
