"""What the trainer reads: deterministic batches (from the in-memory synthetic world or a manifest) and the tokenizer
of the ``tiny`` preset, trained on the synthetic instruction corpus.

Batches are a pure function of (seed, step, micro-step, rank): a resumed run sees exactly the data an uninterrupted
one would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from avllm.config import ConfigError, ModelConfig, TrainConfig
from avllm.data import AVDataset, GeneratedDataset, collate, read_any
from avllm.synth import ANSWERS, CLASS_NAMES, SynthWorld
from avllm.textformat import GroundingCodec

__all__ = ["TrainingData", "TRAIN_TASKS", "tokenizer_corpus", "build_tokenizer_for"]

TRAIN_TASKS = ("ground", "temporal", "factcheck", "avqa", "caption")


class TrainingData:
    """``batch(step, micro)`` → a collated batch of ``cfg.batch_size`` items for this process."""

    def __init__(self, cfg: TrainConfig, model_cfg: ModelConfig, *, rank: int = 0, world: int = 1):
        self.cfg, self.rank, self.world = cfg, rank, world
        words = list(model_cfg.tag_words)
        if words != list(CLASS_NAMES[: len(words)]):
            raise ConfigError(f"the model's tag_words {words} must name the data's classes in order: {CLASS_NAMES}")
        tasks = TRAIN_TASKS + (("speech",) if cfg.speech else ())
        opts: dict[str, Any] = dict(
            tasks=tasks, seed=cfg.seed, num_frames=model_cfg.num_frames, image_size=model_cfg.image.image_size,
            sample_rate=model_cfg.audio.sample_rate, audio_seconds=model_cfg.audio.window_seconds, answers=ANSWERS,
            tag_classes=CLASS_NAMES, extra_texts=cfg.extra_texts,
        )
        if cfg.data:
            records = read_any(cfg.data)
            self.source: Any = AVDataset(records, root=Path(cfg.data).parent, **opts)
            self.size = len(self.source)
        else:
            synth = SynthWorld(
                "train", seed=cfg.seed, difficulty=cfg.difficulty, speech=cfg.speech, speech_share=cfg.speech_share,
                image_size=model_cfg.image.image_size, sample_rate=model_cfg.audio.sample_rate,
                evidence=cfg.factcheck_evidence,
            )
            self.size = 1 << 40
            self.source = GeneratedDataset(synth.__getitem__, self.size, **opts)

    def indices(self, step: int, micro: int) -> list[int]:
        b = self.cfg.batch_size
        start = ((step * self.cfg.grad_accum + micro) * self.world + self.rank) * b
        if self.cfg.data:  # epochs over a finite manifest, shuffled per epoch
            out = []
            for j in range(start, start + b):
                epoch, pos = divmod(j, self.size)
                perm = np.random.default_rng((self.cfg.seed, epoch)).permutation(self.size)
                out.append(int(perm[pos]))
            return out
        return list(range(start, start + b))

    def batch(self, step: int, micro: int = 0) -> dict[str, Any]:
        return collate([self.source[i] for i in self.indices(step, micro)])


def tokenizer_corpus(num_clips: int = 400, seed: int = 12345, evidence: bool = False) -> Iterator[str]:
    """Prompts, answers and captions of ``num_clips`` clips of every difficulty (a seed no split uses for clips),
    plus the answer set and class names; ``evidence`` as in ``SynthWorld``."""
    yield from ANSWERS
    yield from CLASS_NAMES
    codec = GroundingCodec()
    for diff in ("easy", "standard", "hard"):
        world = SynthWorld("train", seed=seed, difficulty=diff, image_size=32, frames="key", evidence=evidence)
        for i in range(num_clips // 3 + 1):
            for t in world[i].record.texts:
                yield t.prompt
                yield codec.encode_text(t.answer)


def build_tokenizer_for(model_cfg: ModelConfig, num_clips: int = 400, evidence: bool = False):
    """The BPE tokenizer of a ``llama`` (from-scratch) LM: trained on the synthetic instruction corpus, with the
    location and time tokens added. An ``hf`` LM brings its own tokenizer (``build_model`` adds the grounding tokens
    to it), so this returns None for it."""
    from avllm.tokenizer import train_tokenizer

    lm = model_cfg.lm
    if lm.arch == "hf":
        return None
    specials = GroundingCodec(lm.loc_bins, lm.time_bins, lm.time_step).special_tokens()
    return train_tokenizer(tokenizer_corpus(num_clips, evidence=evidence), vocab_size=lm.vocab_size, special_tokens=specials)
