"""Command line: write a split of the synthetic world as mp4 clips, PNG masks and a JSONL manifest.

    python -m avllm.synth --out data/synth_test --split test --num 200 --seed 0 [--difficulty standard] [--speech]
"""

from __future__ import annotations

import argparse
import sys

from avllm.synth.difficulty import DIFFICULTIES
from avllm.synth.scene import SPLITS
from avllm.synth.speech import SpeechUnavailable


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m avllm.synth", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output folder (clips/, masks/, manifest.jsonl)")
    p.add_argument("--split", default="test", choices=SPLITS)
    p.add_argument("--num", type=int, default=200, help="number of clips")
    p.add_argument("--start", type=int, default=0, help="first clip index")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--difficulty", default="standard", choices=list(DIFFICULTIES))
    p.add_argument("--speech", action="store_true", help="add a spoken phrase naming an object (needs espeak-ng)")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--fps", type=float, default=8.0)
    p.add_argument("--duration", type=float, default=4.0, help="seconds per clip")
    p.add_argument("--evidence", action="store_true", help="fact-check answers give their evidence before the verdict")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    if a.num < 0:
        p.error("--num must be >= 0")

    from avllm.synth.writer import write_dataset

    try:
        manifest = write_dataset(a.out, split=a.split, num=a.num, seed=a.seed, difficulty=a.difficulty,
                                 speech=a.speech, image_size=a.image_size, fps=a.fps, duration=a.duration,
                                 start=a.start, progress=not a.quiet, evidence=a.evidence)  # fmt: skip
    except SpeechUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {a.num} {a.difficulty} {a.split} clips (seed {a.seed}) to {a.out}: clips/*.mp4, masks/*.png, "
          f"{manifest.name}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
