"""DenseAV: multi-head dense audio-visual similarity (Hamilton et al., CVPR 2024).

Audio tokens and image patches are projected into K heads of C channels each (L2-normalised per head). Every audio
token meets every patch in a local similarity volume; a clip pair's score is, per head, the max over image space
then the mean over (valid) audio time, summed over heads. A symmetric InfoNCE over the batch trains it; a
disentanglement term keeps the heads from firing together, so that one head can learn sounds and another speech.

    head = DenseAV(dim=256, cfg=DenseAVConfig())
    out = head(img, aud, aud_mask, grid=8, compute_loss=True)   # img (B, 64, 256), aud (B, Ta, 256)
    out.heatmaps     # (B, K, 8, 8) each patch vs its own clip's audio
    out.time_act     # (B, K, Ta)   each audio token vs its own clip's image
    out.scores       # (B_a, B_i)   retrieval scores
    out.losses       # {"dense_nce", "dense_disentangle"}

Both branches are trained: nothing here runs under ``no_grad`` (DenseAV's released code froze the image side).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avllm.config import DenseAVConfig

__all__ = ["DenseOutput", "DenseAV", "similarity_volume", "aggregate", "disentangle_loss", "masked_time_mean"]


@dataclass
class DenseOutput:
    """What the DenseAV head returns. B batch, K heads, g grid side, Ta audio tokens.

    Similarities are cosines of per-head normalised features, so every value lies in [-1, 1] (``scores`` in
    [-K, K]). ``time_act`` is 0 at padded audio positions.
    """

    heatmaps: Tensor  # (B, K, g, g) own-clip similarity per patch, mean over valid audio time
    time_act: Tensor  # (B, K, Ta) own-clip similarity per audio token, max over image space
    scores: Tensor  # (B_a, B_i) sum over heads of (max over space, mean over valid time)
    losses: dict[str, Tensor] = field(default_factory=dict)  # dense_nce (stability folded in), dense_disentangle


def similarity_volume(a: Tensor, v: Tensor) -> Tensor:
    """Local similarity of every audio token with every patch, per head: one einsum.

    a: (Ba, K, C, Ta) audio features; v: (Bi, K, C, P) image features -> (Ba, Bi, K, P, Ta).
    """
    return torch.einsum("akct,ikcp->aikpt", a, v)


def masked_time_mean(x: Tensor, aud_mask: Tensor | None) -> Tensor:
    """Mean over the last (time) axis of ``x`` (Ba, ..., Ta), counting only valid tokens of ``aud_mask`` (Ba, Ta).

    A clip with no valid token gives 0.
    """
    if aud_mask is None:
        return x.mean(dim=-1)
    w = aud_mask.to(x.dtype).reshape(aud_mask.shape[0], *([1] * (x.ndim - 2)), aud_mask.shape[1])
    return (x * w).sum(dim=-1) / w.sum(dim=-1).clamp_min(1.0)


def aggregate(vol: Tensor, aud_mask: Tensor | None = None) -> Tensor:
    """Clip-level similarity: max over image space, then mean over valid audio time.

    vol: (Ba, Bi, K, P, Ta); aud_mask: (Ba, Ta) bool, True = valid, or None -> (Ba, Bi, K).
    """
    return masked_time_mean(vol.amax(dim=3), aud_mask)  # (Ba, Bi, K, Ta) -> (Ba, Bi, K)


def disentangle_loss(own: Tensor, aud_mask: Tensor | None = None) -> Tensor:
    """DenseAV's disentanglement regulariser on the own-clip volumes ``own`` (B, K, P, Ta) -> scalar >= 0.

    For every pair of heads k < k', the mean over clips, patches and valid audio tokens of |s_k * s_k'|: two heads
    are penalised where they are active on the same clip at the same place and time, and not at all where one of
    them is silent. This is the paper's cross term (a generalised L2 penalty), averaged over head pairs; K = 1
    gives 0.
    """
    B, K = own.shape[:2]
    if K < 2:
        return own.new_zeros(())
    i, j = torch.triu_indices(K, K, offset=1, device=own.device)  # head pairs, k < k'
    cross = (own[:, i] * own[:, j]).abs()  # (B, pairs, P, Ta)
    return masked_time_mean(cross, aud_mask).mean()


class DenseAV(nn.Module):
    """Multi-head dense similarity between audio tokens and image patches, with its contrastive losses."""

    def __init__(self, dim: int, cfg: DenseAVConfig):
        super().__init__()
        if not 0 < cfg.temperature_min <= cfg.temperature_init <= cfg.temperature_max:
            raise ValueError(f"DenseAV temperature_init must lie in [temperature_min, temperature_max]: {cfg}")
        self.cfg = cfg
        K, C = cfg.num_heads, cfg.head_dim
        # Aligners (the paper: layer norm + a small conv per modality): layer norm + one linear map to K x C.
        self.img_proj = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, K * C))
        self.aud_proj = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, K * C))
        self.log_temperature = nn.Parameter(torch.tensor(math.log(cfg.temperature_init)))

    @property
    def temperature(self) -> Tensor:
        """The learned InfoNCE temperature, clamped to [temperature_min, temperature_max] (a 0-d tensor)."""
        lo, hi = math.log(self.cfg.temperature_min), math.log(self.cfg.temperature_max)
        return self.log_temperature.clamp(lo, hi).exp()

    def _heads(self, proj: nn.Module, x: Tensor) -> Tensor:
        """Tokens (B, N, D) -> per-head unit features (B, K, C, N)."""
        B, N, _ = x.shape
        h = proj(x).reshape(B, N, self.cfg.num_heads, self.cfg.head_dim)  # (B, N, K, C)
        return F.normalize(h, dim=-1).permute(0, 2, 3, 1)  # (B, K, C, N)

    def image_features(self, img: Tensor) -> Tensor:
        """img (B, P, D) -> (B, K, C, P), unit norm over C."""
        return self._heads(self.img_proj, img)

    def audio_features(self, aud: Tensor) -> Tensor:
        """aud (B, Ta, D) -> (B, K, C, Ta), unit norm over C."""
        return self._heads(self.aud_proj, aud)

    def own_volume(self, img: Tensor, aud: Tensor) -> Tensor:
        """Each clip with its own audio: img (B, P, D), aud (B, Ta, D) -> (B, K, P, Ta) cosine similarities (the
        volume that ``heatmaps`` averages over time; a time window of it is the map of that window's sound)."""
        return torch.einsum("bkcp,bkct->bkpt", self.image_features(img), self.audio_features(aud))

    def forward(
        self,
        img: Tensor,
        aud: Tensor,
        aud_mask: Tensor | None = None,
        *,
        grid: int,
        compute_loss: bool = False,
    ) -> DenseOutput:
        """img (B, P, D) patch tokens on a grid x grid raster (row-major); aud (B, Ta, D); aud_mask (B, Ta) bool,
        True = valid (None = all valid). Losses only when ``compute_loss``."""
        B, P, _ = img.shape
        if P != grid * grid:
            raise ValueError(f"image has {P} tokens, not grid * grid = {grid * grid}")
        if aud.shape[0] != B:
            raise ValueError(f"batch sizes differ: {B} images, {aud.shape[0]} audio clips")
        a, v = self.audio_features(aud), self.image_features(img)  # (B, K, C, Ta), (B, K, C, P)
        vol = similarity_volume(a, v)  # (B_a, B_i, K, P, Ta)
        scores = aggregate(vol, aud_mask).sum(dim=-1)  # (B_a, B_i)

        idx = torch.arange(B, device=img.device)
        own = vol[idx, idx]  # (B, K, P, Ta): each clip with its own audio
        heatmaps = masked_time_mean(own, aud_mask).reshape(B, -1, grid, grid)  # (B, K, g, g)
        time_act = own.amax(dim=2)  # (B, K, Ta)
        if aud_mask is not None:
            time_act = time_act * aud_mask.unsqueeze(1).to(time_act.dtype)

        out = DenseOutput(heatmaps=heatmaps, time_act=time_act, scores=scores)
        if compute_loss:
            logits = scores / self.temperature  # (B_a, B_i)
            nce = 0.5 * (F.cross_entropy(logits, idx) + F.cross_entropy(logits.T, idx))
            # stability: a small pull of the raw volume towards 0 (over every pair, valid audio only)
            stability = masked_time_mean(vol.pow(2), aud_mask).mean()
            out.losses = {
                "dense_nce": nce + self.cfg.stability_eps * stability,
                "dense_disentangle": disentangle_loss(own, aud_mask),
            }
        return out
