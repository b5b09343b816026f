"""CAD (contextual multi-modal alignment): contextual block, AV temporal-alignment pre-training, answer chain.

- ``ContextualBlock``: each patch aggregates its ``context_size x context_size`` neighbourhood on the patch grid
  (depthwise convolution + pointwise MLP, residual). In training a random ``context_mask_ratio`` of the positions is
  dropped before aggregation (inverted-dropout scaling); at eval nothing is random. Off -> identity (ablation).
- ``TemporalAlignment``: CAD's pre-training task. From each clip one audio cue (the mean audio token of second
  ``s_a``) and one visual cue (a frame sampled from second ``s_v``) are drawn; a positive pair has ``s_v = s_a``
  (probability ``POSITIVE_FRACTION``, CAD's 60:40), a negative pair another second of the same clip. Three heads:
  which second the audio cue comes from (it attends over the clip's frames by content and reads back their time
  embeddings), which second the visual cue comes from (the same over the clip's audio tokens), and positive vs
  negative pair.
  Loss ``cad_temporal`` = mean of the three cross-entropies. Used for pre-training only.
- ``AnswerChain``: question -> audio cross-attention, then (question + audio context) -> visual cross-attention,
  repeated ``chain_layers`` times; the pooled question, audio and visual contexts are concatenated and classified
  over the fixed answer set. Loss ``cad_avqa``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avllm.config import CADConfig
from avllm.heads.qformer import sinusoidal

__all__ = [
    "POSITIVE_FRACTION",
    "ContextualBlock",
    "TemporalOutput",
    "TemporalAlignment",
    "AnswerOutput",
    "AnswerChain",
]

POSITIVE_FRACTION = 0.6  # share of positive (same-second) pairs in the temporal pre-training, as in CAD


# ----------------------------------------------------------------------------------------------------------------
# Contextual block


class ContextualBlock(nn.Module):
    """Neighbourhood aggregation on the patch grid with a residual: (..., P, D) -> (..., P, D), P = grid ** 2."""

    def __init__(self, dim: int, cfg: CADConfig) -> None:
        super().__init__()
        if cfg.context_size < 1 or cfg.context_size % 2 == 0:
            raise ValueError(f"CADConfig.context_size must be odd and >= 1, got {cfg.context_size}")
        if not 0.0 <= cfg.context_mask_ratio < 1.0:
            raise ValueError(f"CADConfig.context_mask_ratio must be in [0, 1), got {cfg.context_mask_ratio}")
        self.cfg = cfg
        self.enabled = cfg.contextual_block
        if self.enabled:
            self.norm = nn.LayerNorm(dim)
            k = cfg.context_size
            self.conv = nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim)  # depthwise: one k x k filter per channel
            self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, frames: Tensor, grid: int, generator: torch.Generator | None = None) -> Tensor:
        """frames (..., P, D) with P = grid * grid row-major -> same shape. ``generator`` drives the train mask."""
        if not self.enabled:
            return frames
        *lead, P, D = frames.shape
        if P != grid * grid:
            raise ValueError(f"{P} patches do not form a {grid} x {grid} grid")
        x = frames.reshape(-1, P, D)  # (N, P, D)
        h = self.norm(x).transpose(1, 2).reshape(-1, D, grid, grid)  # (N, D, g, g)
        r = self.cfg.context_mask_ratio
        if self.training and r > 0:
            dev = generator.device if generator is not None else h.device
            keep = torch.rand(h.shape[0], 1, grid, grid, generator=generator, device=dev).to(h.device) >= r
            h = h * keep.to(h.dtype) / (1.0 - r)  # drop a random share of neighbourhood positions
        c = self.conv(h).flatten(2).transpose(1, 2)  # (N, P, D)
        return (x + self.mlp(c)).reshape(*lead, P, D)


# ----------------------------------------------------------------------------------------------------------------
# Temporal alignment pre-training


@dataclass
class TemporalOutput:
    second_logits_audio: Tensor  # (B, n_sec) which second the audio cue comes from
    second_logits_visual: Tensor  # (B, n_sec) which second the visual cue comes from
    match_logits: Tensor  # (B, 2) [negative, positive] pair
    second_audio: Tensor  # (B,) long target of the audio cue, -1 = no usable second in the clip
    second_visual: Tensor  # (B,) long target of the visual cue, -1 = none
    match: Tensor  # (B,) long 1 = positive pair, 0 = negative, -1 = none
    loss: Tensor  # () cad_temporal

    @property
    def losses(self) -> dict[str, Tensor]:
        return {"cad_temporal": self.loss}


class _CrossAttn(nn.Module):
    """Pre-norm multi-head cross-attention block with a key padding mask and an MLP, residual."""

    def __init__(self, dim: int, heads: int = 4) -> None:
        super().__init__()
        while dim % heads:
            heads -= 1
        self.nq, self.nk, self.nm = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, q: Tensor, kv: Tensor, kv_mask: Tensor | None = None, values: Tensor | None = None) -> Tensor:
        """q (B, N, D), kv (B, S, D), kv_mask (B, S) bool True = valid (every row needs one), values (B, S, D)
        (what is read out; default the normalised keys) -> (B, N, D)."""
        k = self.nk(kv)
        v = k if values is None else values
        pad = None if kv_mask is None else ~kv_mask
        y, _ = self.attn(self.nq(q), k, v, key_padding_mask=pad, need_weights=False)
        q = q + y
        return q + self.mlp(self.nm(q))


class _TimeEmbed(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.dim = dim

    def forward(self, t: Tensor) -> Tensor:
        """times (...) in seconds -> (..., D); 8 steps per second in the sinusoid's finest band."""
        return self.proj(sinusoidal(t * 8.0, self.dim).to(self.proj.weight.dtype))


class TemporalAlignment(nn.Module):
    """CAD's AV fine temporal alignment pre-training (see the module docstring)."""

    def __init__(self, dim: int, cfg: CADConfig) -> None:
        super().__init__()
        if cfg.temporal_seconds < 2:
            raise ValueError(f"CADConfig.temporal_seconds must be >= 2, got {cfg.temporal_seconds}")
        self.cfg = cfg
        n = cfg.temporal_seconds
        self.time = _TimeEmbed(dim)
        self.pool_query = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pool = _CrossAttn(dim)  # attention pooling of a frame's patches into the visual cue
        self.audio_to_video = _CrossAttn(dim)  # audio cue looks for its moment in the frames
        self.video_to_audio = _CrossAttn(dim)  # visual cue looks for its moment in the audio
        self.head_audio = nn.Linear(dim, n)
        self.head_visual = nn.Linear(dim, n)
        self.head_match = nn.Sequential(nn.Linear(4 * dim, dim), nn.GELU(), nn.Linear(dim, 2))

    def sample(
        self,
        frame_times: Tensor,
        aud_times: Tensor,
        aud_mask: Tensor,
        duration: float | Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Draw (second_audio (B,), second_visual (B,), match (B,), frame index (B,)) -1 where a clip has no
        second holding both a frame and a valid audio token."""
        B, T = frame_times.shape
        n = self.cfg.temporal_seconds
        dev = frame_times.device
        at = aud_times.to(frame_times.dtype)
        at = at.expand(B, -1) if at.dim() == 1 else at  # (B, Ta)
        dur = torch.as_tensor(duration, dtype=frame_times.dtype, device=dev).expand(B)  # (B,)
        sec = torch.arange(n, device=dev)
        f_sec = frame_times.floor().long()  # (B, T)
        a_sec = at.floor().long()  # (B, Ta)
        has_f = (f_sec[:, None, :] == sec[None, :, None]).any(-1)  # (B, n)
        has_a = ((a_sec[:, None, :] == sec[None, :, None]) & aud_mask.bool()[:, None, :]).any(-1)  # (B, n)
        valid = has_f & has_a & (sec[None, :] < dur[:, None])  # (B, n)
        usable = valid.any(-1)  # (B,)

        gdev = generator.device if generator is not None else dev
        w = torch.where(usable[:, None], valid, torch.ones_like(valid)).float()  # (B, n)
        s_a = torch.multinomial(w.to(gdev), 1, generator=generator).squeeze(1).to(dev)  # (B,)
        others = w * (sec[None, :] != s_a[:, None]).float()  # valid seconds other than s_a
        can_neg = usable & (valid.sum(-1) >= 2)
        others = torch.where(can_neg[:, None], others, w)
        s_other = torch.multinomial(others.to(gdev), 1, generator=generator).squeeze(1).to(dev)
        positive = torch.rand(B, generator=generator, device=gdev).to(dev) < POSITIVE_FRACTION
        positive = positive | ~can_neg
        s_v = torch.where(positive, s_a, s_other)
        fw = (f_sec == s_v[:, None]).float()  # (B, T) frames of the visual second
        fw = torch.where(fw.sum(-1, keepdim=True) > 0, fw, torch.ones_like(fw))
        t_idx = torch.multinomial(fw.to(gdev), 1, generator=generator).squeeze(1).to(dev)  # (B,)
        neg1 = torch.full_like(s_a, -1)
        return (
            torch.where(usable, s_a, neg1),
            torch.where(usable, s_v, neg1),
            torch.where(usable, positive.long(), neg1),
            torch.where(usable, t_idx, neg1),
        )

    def forward(
        self,
        frames: Tensor,
        frame_times: Tensor,
        aud: Tensor,
        aud_times: Tensor,
        aud_mask: Tensor | None,
        *,
        duration: float | Tensor,
        generator: torch.Generator | None = None,
    ) -> TemporalOutput:
        """frames (B, T, P, D), frame_times (B, T) s, aud (B, Ta, D), aud_times (Ta,) or (B, Ta) s (token centres),
        aud_mask (B, Ta) bool, duration seconds (float or (B,)) -> TemporalOutput. Seconds are [s, s + 1)."""
        B, T, P, D = frames.shape
        if aud_mask is None:
            aud_mask = torch.ones(aud.shape[:2], dtype=torch.bool, device=aud.device)
        s_a, s_v, match, t_idx = self.sample(frame_times, aud_times, aud_mask, duration, generator)
        at = aud_times.to(frame_times.dtype)
        at = at.expand(B, -1) if at.dim() == 1 else at  # (B, Ta)

        # cues
        in_sec = (at.floor().long() == s_a[:, None]) & aud_mask.bool()  # (B, Ta)
        in_sec = torch.where(in_sec.any(-1, keepdim=True), in_sec, aud_mask.bool())
        wa = in_sec.to(aud.dtype)
        a_cue = (wa[:, :, None] * aud).sum(1) / wa.sum(1, keepdim=True).clamp_min(1.0)  # (B, D)
        frame = frames[torch.arange(B, device=frames.device), t_idx.clamp_min(0)]  # (B, P, D)
        v_cue = self.pool(self.pool_query.expand(B, -1, -1), frame)[:, 0]  # (B, D)

        # the cue finds its moment in the other modality by content (keys) and reads back its time (values)
        f_ctx = frames.mean(2)  # (B, T, D)
        a_mask = torch.where(aud_mask.any(-1, keepdim=True), aud_mask.bool(), torch.ones_like(aud_mask.bool()))
        h_a = self.audio_to_video(a_cue[:, None], f_ctx, None, self.time(frame_times))[:, 0]  # (B, D)
        h_v = self.video_to_audio(v_cue[:, None], aud, a_mask, self.time(at))[:, 0]  # (B, D)
        logits_a = self.head_audio(h_a)  # (B, n)
        logits_v = self.head_visual(h_v)  # (B, n)
        logits_m = self.head_match(torch.cat([a_cue, v_cue, a_cue * v_cue, (a_cue - v_cue).abs()], -1))  # (B, 2)

        if (s_a >= 0).any():
            loss = (
                F.cross_entropy(logits_a.float(), s_a, ignore_index=-1)
                + F.cross_entropy(logits_v.float(), s_v, ignore_index=-1)
                + F.cross_entropy(logits_m.float(), match, ignore_index=-1)
            ) / 3.0
        else:
            loss = (logits_a.sum() + logits_v.sum() + logits_m.sum()) * 0.0
        return TemporalOutput(logits_a, logits_v, logits_m, s_a, s_v, match, loss)


# ----------------------------------------------------------------------------------------------------------------
# Answer chain


@dataclass
class AnswerOutput:
    logits: Tensor  # (B, num_answers) scores over the fixed answer set
    loss: Tensor | None  # () cad_avqa cross-entropy over non-ignored samples; None without answer_index

    @property
    def losses(self) -> dict[str, Tensor]:
        return {} if self.loss is None else {"cad_avqa": self.loss}


class AnswerChain(nn.Module):
    """Question-guided cross-attention chain (question -> audio -> visual) and a classifier over answers."""

    def __init__(self, dim: int, cfg: CADConfig, vocab_size: int) -> None:
        super().__init__()
        if cfg.chain_layers < 1 or cfg.num_answers < 2 or vocab_size < 1:
            raise ValueError(f"AnswerChain needs chain_layers >= 1, num_answers >= 2, vocab_size >= 1: {cfg}")
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, dim)  # own table over the LM's token ids
        self.q_to_audio = nn.ModuleList(_CrossAttn(dim) for _ in range(cfg.chain_layers))
        self.qa_to_visual = nn.ModuleList(_CrossAttn(dim) for _ in range(cfg.chain_layers))
        self.head = nn.Sequential(
            nn.LayerNorm(3 * dim), nn.Linear(3 * dim, dim), nn.GELU(), nn.Linear(dim, cfg.num_answers)
        )

    def forward(
        self,
        question_ids: Tensor,
        question_mask: Tensor,
        img: Tensor,
        aud: Tensor,
        aud_mask: Tensor | None = None,
        answer_index: Tensor | None = None,
        word_embeds: Tensor | None = None,
    ) -> AnswerOutput:
        """question_ids (B, L) long, question_mask (B, L) bool, img (B, P, D) or frames (B, T, P, D),
        aud (B, Ta, D), aud_mask (B, Ta) bool, answer_index (B,) long (-1 = ignore), word_embeds (B, L, D) added
        to the question's token embeddings (optional) -> AnswerOutput."""
        if question_ids.min() < 0 or question_ids.max() >= self.vocab_size:
            raise ValueError(f"question ids must be in [0, {self.vocab_size})")
        B, L = question_ids.shape
        vis = img.reshape(B, -1, img.shape[-1])  # (B, P or T*P, D)
        qm = question_mask.bool()
        qm = torch.where(qm.any(-1, keepdim=True), qm, torch.ones_like(qm))
        am = torch.ones(aud.shape[:2], dtype=torch.bool, device=aud.device) if aud_mask is None else aud_mask.bool()
        am = torch.where(am.any(-1, keepdim=True), am, torch.ones_like(am))
        pos = sinusoidal(torch.arange(L, device=question_ids.device), self.embed.embedding_dim)
        q = self.embed(question_ids) + pos.to(self.embed.weight.dtype)  # (B, L, D)
        if word_embeds is not None:
            q = q + word_embeds.to(q.dtype)
        v_ctx = q
        for to_audio, to_visual in zip(self.q_to_audio, self.qa_to_visual):
            a_ctx = to_audio(v_ctx, aud, am)  # (B, L, D) the question (so far) looks at the audio
            v_ctx = to_visual(a_ctx, vis)  # (B, L, D) question + audio context look at the image
        w = qm.to(q.dtype)[:, :, None] / qm.sum(-1).clamp_min(1)[:, None, None]  # (B, L, 1)
        pooled = torch.cat([(q * w).sum(1), (a_ctx * w).sum(1), (v_ctx * w).sum(1)], dim=-1)  # (B, 3D)
        logits = self.head(pooled)  # (B, num_answers)
        loss = None
        if answer_index is not None:
            target = answer_index.long()
            if (target >= 0).any():
                loss = F.cross_entropy(logits.float(), target, ignore_index=-1)
            else:
                loss = logits.sum() * 0.0
        return AnswerOutput(logits=logits, loss=loss)
