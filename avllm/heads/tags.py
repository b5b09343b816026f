"""Class tags: which classes are seen in the key frame, which are heard in the audio.

The papers start from open_clip and laion-clap, whose features already separate a bell from a clock and a bird from
a cricket. Trained from scratch, our encoders learn only what the contrastive and box terms ask of them, which is
*where* and *when*, not *what*: an LM then cannot tell "You can hear a bell." from "You can hear a clock.". This head
asks the encoders for the *what* with two multi-label classifiers, and its probabilities enter the LM's AV prefix as
two tokens (seen, heard). It stands in for the semantic pre-training of the real encoders, which cannot be fetched.

    head = TagHead(dim=256, num_tags=16)
    out = head(img, aud, aud_mask)                  # img (B, P, D) key-frame tokens, aud (B, Ta, D)
    out.seen, out.heard                             # (B, num_tags) logits
    loss = tag_loss(out, seen_t, heard_t, valid)    # targets (B, C) in {0, 1}, C <= num_tags; valid (B,) bool

Tag c is class c of the data's class list (``avllm.synth.CLASS_NAMES`` for the synthetic world); slots past C stay
unsupervised. Data without complete class labels (valid False) adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["TagHead", "TagOutput", "tag_loss"]


@dataclass
class TagOutput:
    seen: Tensor  # (B, num_tags) logits: class c is visible in the key frame
    heard: Tensor  # (B, num_tags) logits: class c is audible somewhere in the clip


def _pool(x: Tensor, mask: Tensor | None) -> Tensor:
    """Mean and max over valid tokens: (B, N, D), (B, N) bool -> (B, 2D)."""
    if mask is None:
        return torch.cat([x.mean(1), x.amax(1)], dim=-1)
    w = mask.to(x.dtype).unsqueeze(-1)  # (B, N, 1)
    mean = (x * w).sum(1) / w.sum(1).clamp_min(1.0)
    mx = x.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
    mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))  # a clip with no valid audio token
    return torch.cat([mean, mx], dim=-1)


class TagHead(nn.Module):
    def __init__(self, dim: int, num_tags: int):
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"num_tags must be >= 1, got {num_tags}")
        self.num_tags = num_tags
        self.seen = nn.Sequential(nn.LayerNorm(2 * dim), nn.Linear(2 * dim, dim), nn.GELU(), nn.Linear(dim, num_tags))
        self.heard = nn.Sequential(nn.LayerNorm(2 * dim), nn.Linear(2 * dim, dim), nn.GELU(),
                                   nn.Linear(dim, num_tags))  # fmt: skip

    def forward(self, img: Tensor, aud: Tensor, aud_mask: Tensor | None = None) -> TagOutput:
        # img: (B, P, D) key-frame tokens; aud: (B, Ta, D); aud_mask: (B, Ta) bool, True = real audio
        return TagOutput(seen=self.seen(_pool(img, None)), heard=self.heard(_pool(aud, aud_mask)))


def tag_loss(out: TagOutput, seen_t: Tensor, heard_t: Tensor, valid: Tensor) -> Tensor | None:
    """Mean binary cross-entropy of both classifiers over the valid samples and the first C tags -> scalar, or None
    when no sample is valid. seen_t, heard_t: (B, C) in {0, 1}; valid: (B,) bool."""
    c = seen_t.shape[1]
    if c > out.seen.shape[1]:
        raise ValueError(f"{c} classes in the targets, but the head has {out.seen.shape[1]} tags")
    if not bool(valid.any()):
        return None
    dev = out.seen.device
    v, seen_t, heard_t = valid.to(dev), seen_t.to(dev), heard_t.to(dev)
    s = F.binary_cross_entropy_with_logits(out.seen[v, :c], seen_t[v].to(out.seen.dtype))
    h = F.binary_cross_entropy_with_logits(out.heard[v, :c], heard_t[v].to(out.heard.dtype))
    return 0.5 * (s + h)
