"""Typed configuration for every part of avllm, JSON presets, and a small registry.

Every config is a dataclass with a comment on each field. Options are ``Literal`` types and are checked when a
config is built, so a misspelt option is an error, never a silent default. ``from_dict`` rejects unknown keys and
names them with their full path (``model.slots.iterz``).

    cfg = get_preset("tiny")                 # ModelConfig
    text = cfg.to_json()
    assert ModelConfig.from_json(text) == cfg
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

__all__ = [
    "ConfigError",
    "Config",
    "MediaConfig",
    "ImageEncoderConfig",
    "AudioEncoderConfig",
    "SlotConfig",
    "DenseAVConfig",
    "AlignConfig",
    "QFormerConfig",
    "CADConfig",
    "LMConfig",
    "LossWeights",
    "ModelConfig",
    "TrainConfig",
    "get_preset",
    "list_presets",
]

PRESET_DIR = Path(__file__).parent / "presets"
T = TypeVar("T", bound="Config")


class ConfigError(ValueError):
    """A config value, key or preset is wrong; the message names it."""


class Config:
    """Mixin for config dataclasses: validation of Literal options and JSON round trips."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            _check_value(hints[f.name], getattr(self, f.name), f"{type(self).__name__}.{f.name}")
        self.validate()

    def validate(self) -> None:
        """Cross-field checks; subclasses override."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any], path: str = "") -> T:
        return _from_dict(cls, data, path or cls.__name__)

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def load(cls: type[T], path: str | Path) -> T:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            data = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"{p} is not valid JSON: {e}") from None
        return cls.from_dict(data, path=p.name)

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _check_value(tp: Any, value: Any, where: str) -> None:
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where} = {value!r} is not one of {list(typing.get_args(tp))}")
    elif tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
    elif tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
    elif origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        (item_tp,) = typing.get_args(tp)
        for i, v in enumerate(value):
            _check_value(item_tp, v, f"{where}[{i}]")


def _from_dict(cls: type[T], data: Any, path: str) -> T:
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a JSON object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown key(s) in {path}: {', '.join(path + '.' + k for k in unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        tp = hints[name]
        if isinstance(tp, type) and issubclass(tp, Config):
            kwargs[name] = _from_dict(tp, value, f"{path}.{name}")
        elif tp is float and isinstance(value, int) and not isinstance(value, bool):
            kwargs[name] = float(value)
        elif typing.get_origin(tp) is list and typing.get_args(tp) == (float,) and isinstance(value, list):
            kwargs[name] = [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        else:
            kwargs[name] = value
    return cls(**kwargs)


# ----------------------------------------------------------------------------------------------------------------
# Media


@dataclass
class MediaConfig(Config):
    fps: float = 8.0  # frames sampled per second from a video
    sample_rate: int = 48000  # audio is resampled to this rate (Hz), mono
    max_seconds: float = 60.0  # longer inputs are truncated to this and flagged
    max_side: int = 1024  # frames whose long side is larger are downscaled to this and flagged

    def validate(self) -> None:
        if self.fps <= 0 or self.sample_rate < 1000 or self.max_seconds <= 0 or self.max_side < 16:
            raise ConfigError(f"MediaConfig out of range: {self}")


# ----------------------------------------------------------------------------------------------------------------
# Encoders


@dataclass
class ImageEncoderConfig(Config):
    arch: Literal["custom", "open_clip"] = "custom"  # custom: an open_clip ViT built from the fields below
    model_name: str = ""  # open_clip model name when arch == "open_clip", e.g. "ViT-B-16"
    pretrained: str = ""  # open_clip pretrained tag ("openai") or a local weights file; "" = random init
    image_size: int = 128  # input side in pixels (square)
    patch_size: int = 16  # ViT patch side; the token grid is image_size // patch_size on each side
    width: int = 192  # transformer width = token dim
    layers: int = 4  # transformer depth
    head_width: int = 64  # width per attention head
    mlp_ratio: float = 4.0  # MLP hidden = mlp_ratio * width
    freeze: bool = False  # no gradient into the tower (used with pretrained weights)

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    def validate(self) -> None:
        if self.image_size % self.patch_size:
            raise ConfigError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.arch == "open_clip" and not self.model_name:
            raise ConfigError("ImageEncoderConfig.model_name is required when arch is 'open_clip'")


@dataclass
class AudioEncoderConfig(Config):
    arch: Literal["htsat"] = "htsat"  # laion-clap's HTSAT Swin transformer over log-mel
    pretrained: str = ""  # a LAION-CLAP checkpoint file (.pt with state_dict); "" = random init
    sample_rate: int = 48000  # input rate (Hz); LAION-CLAP uses 48 kHz
    window_seconds: float = 5.0  # one HTSAT window; longer audio is encoded window by window
    window_size: int = 1024  # STFT window (samples)
    hop_size: int = 240  # STFT hop (samples); window_seconds * sample_rate / hop_size must be <= 1024 frames
    mel_bins: int = 64  # log-mel channels
    fmin: int = 50  # lowest mel frequency (Hz)
    fmax: int = 14000  # highest mel frequency (Hz)
    embed_dim: int = 32  # first Swin stage width; token dim = embed_dim * 2 ** (len(depths) - 1)
    depths: list[int] = field(default_factory=lambda: [1, 1, 2, 1])  # Swin blocks per stage
    num_heads: list[int] = field(default_factory=lambda: [2, 4, 8, 16])  # attention heads per stage
    tokens_per_window: int = 32  # audio frame tokens per window (time resolution = window_seconds / this)
    freeze: bool = False  # no gradient into the tower

    @property
    def token_dim(self) -> int:
        return self.embed_dim * 2 ** (len(self.depths) - 1)

    @property
    def seconds_per_token(self) -> float:
        return self.window_seconds / self.tokens_per_window

    def validate(self) -> None:
        if len(self.depths) != len(self.num_heads):
            raise ConfigError("AudioEncoderConfig.depths and num_heads must have the same length")
        frames = self.window_seconds * self.sample_rate / self.hop_size
        if frames > 1024:
            raise ConfigError(f"window of {frames:.0f} STFT frames exceeds HTSAT's 1024; raise hop_size")


# ----------------------------------------------------------------------------------------------------------------
# Heads


@dataclass
class SlotConfig(Config):
    num_slots: int = 2  # target + off-target
    iters: int = 5  # slot attention iterations
    mlp_hidden: int = 512  # residual MLP hidden width
    token_mask_ratio: float = 0.1  # fraction of input tokens dropped at random in training
    tau: float = 0.03  # InfoNCE temperature on target slots
    k_reciprocal: int = 0  # k for k-reciprocal false-negative removal; 0 = off
    iqr: bool = True  # image-query refinement of the localization map at inference
    iqr_weight: float = 0.5  # mix between the audio-query map and the image-query refined map
    recon_hidden: int = 256  # slot reconstruction decoder width (training only)

    def validate(self) -> None:
        if self.num_slots < 2 or self.iters < 1 or not 0 <= self.token_mask_ratio < 1:
            raise ConfigError(f"SlotConfig out of range: {self}")


@dataclass
class DenseAVConfig(Config):
    num_heads: int = 2  # K similarity heads (one learns sounds, one speech)
    head_dim: int = 64  # channels per head
    temperature_init: float = 0.07  # initial InfoNCE temperature (learned)
    temperature_min: float = 0.01  # clamp range of the learned temperature
    temperature_max: float = 1.0
    stability_eps: float = 1e-4  # weight of the small-magnitude stability penalty inside the term


@dataclass
class AlignConfig(Config):
    ot_solver: Literal["sinkhorn", "ipot"] = "sinkhorn"  # AVOpT solver
    ot_eps: float = 0.1  # entropic regularisation (sinkhorn) / proximal step (ipot)
    ot_iters: int = 50  # solver iterations
    ot_cost: Literal["cosine", "sqeuclidean"] = "cosine"  # ground cost between patch and audio tokens
    avace_heads: int = 4  # heads of the audio -> image cross-attention used for AVACE
    avace_margin: float = 0.0  # hinge margin between inside and outside attention mass


@dataclass
class QFormerConfig(Config):
    num_queries: int = 4  # learned queries per window
    window_frames: int = 2  # frames per sliding window
    stride_frames: int = 2  # step between window starts (= window_frames: no overlap)
    layers: int = 2  # transformer layers
    heads: int = 4  # attention heads
    mask: Literal["causal", "full"] = "causal"  # causal: a window sees itself and earlier windows only
    diversity_tau: float = 0.1  # temperature of the query diversity loss

    def validate(self) -> None:
        if not 1 <= self.stride_frames <= self.window_frames:
            raise ConfigError("QFormerConfig needs 1 <= stride_frames <= window_frames (a longer stride skips frames)")


@dataclass
class CADConfig(Config):
    contextual_block: bool = True  # the contextual block on visual features (ablation: off)
    context_size: int = 3  # neighbourhood (patches) aggregated by the contextual block
    context_mask_ratio: float = 0.15  # train-time masking inside the block; none at inference
    temporal_seconds: int = 4  # classes of the temporal-alignment pre-training (which second)
    num_answers: int = 64  # size of the fixed AVQA answer set (the vocabulary is in avllm.synth)
    chain_layers: int = 2  # cross-attention chain depth

    def validate(self) -> None:
        if self.context_size % 2 == 0 or self.context_size < 1:
            raise ConfigError(f"CADConfig.context_size must be odd, got {self.context_size}")


@dataclass
class LMConfig(Config):
    arch: Literal["llama", "hf"] = "llama"  # llama: a Llama model from the fields below; hf: name_or_path
    name_or_path: str = ""  # hub id or local directory when arch == "hf"
    hidden_size: int = 256
    layers: int = 4
    heads: int = 4
    kv_heads: int = 4
    intermediate_size: int = 704
    max_positions: int = 512
    vocab_size: int = 4096  # target vocabulary of the trained BPE tokenizer (before added tokens)
    loc_bins: int = 32  # box coordinates in [0, 1] are written as one of this many location tokens
    time_bins: int = 64  # times are written as one of this many time tokens ...
    time_step: float = 0.125  # ... each this many seconds wide (64 x 0.125 s covers 8 s)
    lora: bool = False  # train LoRA adapters instead of the full LM (peft)
    lora_r: int = 16
    lora_alpha: int = 32
    freeze: bool = False  # keep the LM frozen (only projector and heads train)
    # How the next-token loss averages: "token" over all labelled tokens of the batch (long answers such as
    # captions then outweigh one-word answers), "sample" over each sample's labelled tokens, then over samples.
    loss_norm: Literal["token", "sample"] = "token"
    # A pointer head beside the LM's vocabulary: at every answer token it can copy one of the AV prefix's proposal
    # tokens (the box head's four location tokens, the activity head's two time tokens) instead of generating.
    copy: bool = False
    # With the copy head, in training: each location / time token of an answer is fed to the LM as the bin next to
    # it with this probability (the token it must write stays the true one). A copied proposal can be a bin that no
    # answer in the data uses (the synthetic world's times lie on a 0.25 s grid, every other 0.125 s time bin), and
    # an LM that never read such a token does not know how to go on after it.
    copy_jitter: float = 0.25
    # Times in seconds written in prompts ("at 2.50 seconds") reach the LM as time tokens, the tokens its answers
    # write times in (``GroundingCodec.encode_prompt``), so that a claimed time can be compared with an answer's.
    prompt_time_tokens: bool = False

    def validate(self) -> None:
        if not 0.0 <= self.copy_jitter <= 1.0:
            raise ConfigError(f"LMConfig.copy_jitter must lie in [0, 1], got {self.copy_jitter}")
        if self.arch == "hf" and not self.name_or_path:
            raise ConfigError("LMConfig.name_or_path is required when arch is 'hf'")


@dataclass
class LossWeights(Config):
    lm: float = 1.0  # next-token loss on answers
    # With the LM's copy head (LMConfig.copy): the next-token loss of the vocabulary head alone, beside the mixture's
    # ("lm"), so that the generating half stays a whole language model rather than learning only what copying misses.
    lm_vocab: float = 1.0
    slot_nce: float = 1.0  # JSA InfoNCE on target slots
    slot_match: float = 1.0  # JSA cross-modal attention matching
    slot_div: float = 1.0  # JSA slot divergence
    slot_recon: float = 0.1  # JSA slot reconstruction
    slot_anchor: float = 1.0  # JSA target-slot map vs the SSL target where the data has one (see heads/slots.py)
    dense_nce: float = 1.0  # DenseAV InfoNCE
    dense_disentangle: float = 0.05  # DenseAV head disentanglement
    ot: float = 0.1  # MEERKAT AVOpT Wasserstein loss
    avace: float = 0.5  # MEERKAT AVACE box attention loss
    qformer_div: float = 0.5  # FAVOR query diversity
    cad_temporal: float = 0.5  # CAD temporal-alignment pre-training
    cad_avqa: float = 0.5  # CAD answer classifier over the fixed answer set
    box: float = 1.0  # box proposal head (L1 + GIoU) on grounding samples
    activity: float = 1.0  # activity-over-time proposal head (BCE) on temporal samples
    tags: float = 1.0  # class tags: which classes are seen, which are heard (BCE), where the data names them
    tag_where: float = 2.0  # class maps: L1 of each seen class's attention centre to its box centre
    tag_when: float = 1.0  # class maps: BCE of each class's activity over the audio tokens
    tag_sounding: float = 1.0  # class maps: BCE of "a visible object of this class makes sound"


@dataclass
class ModelConfig(Config):
    name: str = "tiny"  # preset name, for logs
    dim: int = 256  # shared audio-visual width of all heads
    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    audio: AudioEncoderConfig = field(default_factory=AudioEncoderConfig)
    slots: SlotConfig = field(default_factory=SlotConfig)
    dense: DenseAVConfig = field(default_factory=DenseAVConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    qformer: QFormerConfig = field(default_factory=QFormerConfig)
    cad: CADConfig = field(default_factory=CADConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    losses: LossWeights = field(default_factory=LossWeights)
    media: MediaConfig = field(default_factory=MediaConfig)
    num_frames: int = 4  # frames per clip that the model sees (the Q-Former windows run over them)
    num_tags: int = 16  # class-tag slots of the tag head (seen / heard); 0 turns the head off
    # Names of the first tags (the data's classes, in order): where a prompt says one of them as a single token,
    # that word's embedding carries its class's seen / heard probabilities. Empty: no word carries any.
    tag_words: list[str] = field(default_factory=list)
    # Class maps (heads/classmap.py): where and when each class is; the tag words then carry the class's sounding
    # probability, centre and activity curve too. Needs num_tags > 0.
    tag_locate: bool = False

    def validate(self) -> None:
        if self.dim % self.align.avace_heads:
            raise ConfigError(f"dim {self.dim} is not divisible by align.avace_heads {self.align.avace_heads}")
        if self.num_tags < 0:
            raise ConfigError(f"num_tags must be >= 0, got {self.num_tags}")
        if self.num_tags and len(self.tag_words) > self.num_tags:  # without a tag head the words are unused
            raise ConfigError(f"{len(self.tag_words)} tag_words but only {self.num_tags} tags")
        if self.tag_locate and self.num_tags == 0:
            raise ConfigError("tag_locate needs the tag head (num_tags > 0)")
        if len(set(self.tag_words)) != len(self.tag_words) or not all(w.strip() for w in self.tag_words):
            raise ConfigError(f"tag_words must be distinct non-empty names, got {self.tag_words}")
        if self.dense.temperature_min > self.dense.temperature_max:
            raise ConfigError("dense.temperature_min exceeds dense.temperature_max")


@dataclass
class TrainConfig(Config):
    preset: str = "tiny"  # model preset to build (or resume from the checkpoint's own config)
    stage: Literal["align", "instruct", "joint"] = "joint"  # which parameters train, which losses are on
    steps: int = 1000  # optimiser steps
    batch_size: int = 16
    grad_accum: int = 1  # micro-batches per optimiser step
    extra_texts: int = 0  # more of each clip's texts for the LM, read after the clip's one AV prefix (0 = one text)
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1  # cosine schedule floor, as a fraction of lr
    grad_clip: float = 1.0
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    seed: int = 0
    difficulty: Literal["easy", "standard", "hard"] = "standard"  # synthetic world difficulty
    speech: bool = False  # include the spoken-phrase subset (needs espeak-ng)
    speech_share: float = 0.5  # with speech, the share of synthetic clips that carry a spoken phrase
    # synthetic fact-check answers give their evidence before the verdict for position, time and order claims
    # ("The bell is on the left side, so false."); off: the verdict alone
    factcheck_evidence: bool = False
    data: str = ""  # a manifest to train from instead of the in-memory synthetic world
    tokenizer_clips: int = 400  # synthetic clips whose texts train the tiny preset's BPE tokenizer
    max_minutes: float = 0.0  # stop with a final checkpoint once this much wall time has passed (0 = no limit)
    stop_after: int = 0  # stop with a checkpoint at this step, the schedule still planned for `steps` (0 = run on)
    log_every: int = 10
    ckpt_every: int = 200
    out_dir: str = "runs/tiny"

    def validate(self) -> None:
        if not 0.0 <= self.speech_share <= 1.0:
            raise ConfigError(f"speech_share must lie in [0, 1], got {self.speech_share}")
        if self.extra_texts < 0:
            raise ConfigError(f"extra_texts must be >= 0, got {self.extra_texts}")


# ----------------------------------------------------------------------------------------------------------------
# Registry


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def get_preset(name: str) -> ModelConfig:
    """The ModelConfig of a named preset (``tiny``, ``base``) or of a JSON file path."""
    p = Path(name)
    if p.suffix == ".json" and p.is_file():
        return ModelConfig.load(p)
    path = PRESET_DIR / f"{name}.json"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(list_presets())}")
    return ModelConfig.load(path)

