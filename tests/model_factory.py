"""Shared builders for model-level tests: a tiny model with a small tokenizer, and synthetic batches."""

from __future__ import annotations

import functools

from avllm.config import ModelConfig, TrainConfig, get_preset
from avllm.model import AVLLM, build_model
from avllm.trainutil import TrainingData, build_tokenizer_for


@functools.lru_cache(maxsize=1)
def tiny_tokenizer():
    return build_tokenizer_for(get_preset("tiny"), num_clips=30)


def tiny_model(cfg: ModelConfig | None = None) -> AVLLM:
    return build_model(cfg or get_preset("tiny"), tiny_tokenizer())


def synth_batch(batch_size: int = 4, step: int = 0, seed: int = 0, cfg: ModelConfig | None = None) -> dict:
    return TrainingData(TrainConfig(batch_size=batch_size, seed=seed), cfg or get_preset("tiny")).batch(step)
