"""The synthetic audio-visual world: procedural clips with exact ground truth for every task.

    from avllm.synth import generate, SynthWorld, ANSWERS
    clip = generate(0, split="train", seed=0, difficulty="standard")   # frames, audio, masks, record
    world = SynthWorld("train", seed=0, num_frames=4, length=10_000)    # in memory, for training
    python -m avllm.synth --out data/synth --split test --num 200       # mp4 + masks + manifest.jsonl

See docs/DATA.md for every field, the class catalogue, the difficulty presets and the splits.
"""

from avllm.synth.classes import CLASS_NAMES, CLASSES, LOOK_ALIKE, SOUND_ALIKE, SoundClass, get_class
from avllm.synth.difficulty import DIFFICULTIES, Difficulty, get_difficulty
from avllm.synth.scene import HELD_OUT_PAIRS, SPLITS, Scene, sample_scene
from avllm.synth.speech import SpeechUnavailable, espeak_available
from avllm.synth.avqa import ANSWERS
from avllm.synth.facts import POSITIONS, position_word
from avllm.synth.world import SynthClip, SynthWorld, generate

__all__ = [
    "ANSWERS",
    "POSITIONS",
    "CLASSES",
    "CLASS_NAMES",
    "LOOK_ALIKE",
    "SOUND_ALIKE",
    "HELD_OUT_PAIRS",
    "SPLITS",
    "DIFFICULTIES",
    "Difficulty",
    "Scene",
    "SoundClass",
    "SpeechUnavailable",
    "SynthClip",
    "SynthWorld",
    "espeak_available",
    "generate",
    "get_class",
    "get_difficulty",
    "position_word",
    "sample_scene",
]
