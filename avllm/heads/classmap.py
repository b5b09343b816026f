"""Where and when each class is: one learned query per class over the key frame's patches and over the audio tokens.

The tag head says *whether* a bell is seen and heard. Claims and questions also ask *where* ("The bell is on the
left side of the frame."), *when* ("At 1.25 seconds the bell can be heard.", "The bell is heard before the
clock.") and whether the bell one *sees* is the one that sounds ("The bell in the image is silent."). A small LM
cannot read those off 64 patch tokens and 50 audio tokens by itself in a short training, so this head computes
them per class, supervised by the objects' boxes and the sources' segments, and the model hands them to the LM at
the prompt words that name the class (see ``AVLLM._word_features``).

    head = ClassMapHead(dim=256, num_tags=16)
    out = head(img, aud, aud_mask, grid=8)        # img (B, P, D) key-frame tokens, aud (B, Ta, D)
    out.centre    # (B, C, 2) expected (x, y) of each class's attention over patches, in [0, 1]
    out.img_attn  # (B, C, P) that attention (sums to 1 over P)
    out.when      # (B, C, Ta) logits: class c sounds at audio token t
    out.sounding  # (B, C) logits: a visible object of class c makes sound
    losses = class_map_loss(out, targets, aud_times, aud_mask)   # {"tag_where", "tag_when", "tag_sounding"}
    where = sounding_map(out)     # (B, P): every class's attention, weighted by its sounding probability

Targets come from ``avllm.data.class_tags``: ``sound_tags`` (B, C), ``class_centre`` (B, C, 2) (valid where the
class is seen), ``class_segments`` (B, C, M, 2) seconds, padded with -1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avllm.heads.proposals import grid_centres
from avllm.heads.tags import _pool

__all__ = [
    "ClassMapHead", "ClassMapOutput", "ClassTargets", "class_map_loss", "activity_targets", "sounding_map",
    "WHEN_BINS",
]

WHEN_BINS = 16  # the per-class activity curve the LM reads is pooled to this many bins over the audio tokens


@dataclass
class ClassMapOutput:
    centre: Tensor  # (B, C, 2) normalised (x, y)
    img_attn: Tensor  # (B, C, P)
    when: Tensor  # (B, C, Ta) logits
    sounding: Tensor  # (B, C) logits


@dataclass
class ClassTargets:
    seen: Tensor  # (B, C) {0, 1}: where the centre target is valid
    sounding: Tensor  # (B, C) {0, 1}: a visible object of the class sounds
    centre: Tensor  # (B, C, 2) the class's box centre (mean over its objects), zeros where unseen
    segments: Tensor  # (B, C, M, 2) seconds, rows of -1 are padding
    valid: Tensor  # (B,) bool: the record's labels are complete


class ClassMapHead(nn.Module):
    def __init__(self, dim: int, num_tags: int):
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"num_tags must be >= 1, got {num_tags}")
        self.num_tags = num_tags
        self.q_img = nn.Parameter(torch.randn(num_tags, dim) * dim**-0.5)
        self.k_img = nn.Linear(dim, dim)
        self.q_aud = nn.Parameter(torch.randn(num_tags, dim) * dim**-0.5)
        self.k_aud = nn.Linear(dim, dim)
        self.when_bias = nn.Parameter(torch.full((num_tags,), -1.0))
        # Sounding-and-visible needs both modalities: pooled image, pooled audio, and the class's own attended
        # patch feature.
        self.sounding = nn.Sequential(nn.LayerNorm(5 * dim), nn.Linear(5 * dim, dim), nn.GELU(), nn.Linear(dim, 1))
        self.class_embed = nn.Parameter(torch.randn(num_tags, dim) * 0.02)

    def forward(self, img: Tensor, aud: Tensor, aud_mask: Tensor | None, *, grid: int) -> ClassMapOutput:
        # img: (B, P, D); aud: (B, Ta, D); aud_mask: (B, Ta) bool, True = real audio
        b, _, d = img.shape
        scale = 1.0 / math.sqrt(d)
        img_logits = torch.einsum("cd,bpd->bcp", self.q_img, self.k_img(img)) * scale  # (B, C, P)
        img_attn = img_logits.softmax(-1)
        centre = img_attn @ grid_centres(grid, img.device).to(img_attn.dtype)  # (B, C, 2)
        when = torch.einsum("cd,btd->bct", self.q_aud, self.k_aud(aud)) * scale + self.when_bias[:, None]
        if aud_mask is not None:
            when = when.masked_fill(~aud_mask[:, None], -20.0)  # padded audio sounds of nothing
        attended = torch.einsum("bcp,bpd->bcd", img_attn, img)  # (B, C, D)
        pooled = torch.cat([_pool(img, None), _pool(aud, aud_mask)], -1)  # (B, 4D)
        joint = torch.cat([pooled[:, None].expand(-1, self.num_tags, -1), attended + self.class_embed], -1)
        sounding = self.sounding(joint).squeeze(-1)  # (B, C)
        return ClassMapOutput(centre=centre, img_attn=img_attn, when=when, sounding=sounding)

    def word_features(self, out: ClassMapOutput, aud_mask: Tensor | None) -> Tensor:
        """(B, C, 3 + WHEN_BINS): sounding probability, centre (x, y), and the activity curve pooled to WHEN_BINS
        bins over the audio tokens (padded tokens count as silent)."""
        prob = out.when.sigmoid()  # (B, C, Ta)
        if aud_mask is not None:
            prob = prob * aud_mask[:, None].to(prob.dtype)
        bins = F.adaptive_avg_pool1d(prob, WHEN_BINS)  # (B, C, WHEN_BINS)
        return torch.cat([out.sounding.sigmoid()[..., None], out.centre, bins], -1)


def sounding_map(out: ClassMapOutput) -> Tensor:
    """(B, P) >= 0: where the sound comes from, read off the class maps: ``sum_c sigmoid(sounding_c) img_attn_c``.

    Each class's attention over the key frame's patches counts as much as the head believes a visible object of
    that class sounds, so a silent object in view, which the JSA map also lights, is left out. It sums to the
    expected number of sounding classes over P; the SSL metrics min-max normalise it per image."""
    return torch.einsum("bc,bcp->bp", out.sounding.sigmoid(), out.img_attn)


def activity_targets(segments: Tensor, aud_times: Tensor) -> Tensor:
    """(B, C, Ta) {0, 1}: token t lies inside one of the class's segments. segments (B, C, M, 2), -1 rows pad."""
    t = aud_times.to(segments.device)[None, None, None]  # (1, 1, 1, Ta)
    s0, s1 = segments[..., 0:1], segments[..., 1:2]  # (B, C, M, 1)
    inside = (t >= s0) & (t < s1) & (s1 > s0)
    return inside.any(2).to(torch.float32)


def class_map_loss(out: ClassMapOutput, tg: ClassTargets, aud_times: Tensor, aud_mask: Tensor) -> dict[str, Tensor]:
    """Named terms over the valid samples and the first C classes ({} when no sample is valid):
    ``tag_where`` L1 of the centres of the seen classes, ``tag_when`` BCE of every class's activity over the real
    audio tokens, ``tag_sounding`` BCE of the sounding-and-visible probability of the seen classes."""
    c = tg.seen.shape[1]
    if c > out.centre.shape[1]:
        raise ValueError(f"{c} classes in the targets, but the head has {out.centre.shape[1]} tags")
    dev = out.centre.device
    v = tg.valid.to(dev).bool()
    if not bool(v.any()):
        return {}
    losses: dict[str, Tensor] = {}
    seen = tg.seen.to(dev)[v] > 0.5  # (b, C)
    if bool(seen.any()):
        err = (out.centre[v, :c] - tg.centre.to(dev)[v].to(out.centre.dtype)).abs().sum(-1)  # (b, C)
        losses["tag_where"] = err[seen].mean()
        snd = F.binary_cross_entropy_with_logits(
            out.sounding[v, :c], tg.sounding.to(dev)[v].to(out.sounding.dtype), reduction="none"
        )
        losses["tag_sounding"] = snd[seen].mean()
    act_t = activity_targets(tg.segments.to(dev)[v], aud_times)  # (b, C, Ta)
    m = aud_mask.to(dev)[v][:, None].expand_as(act_t)  # (b, C, Ta)
    if bool(m.any()):
        bce = F.binary_cross_entropy_with_logits(out.when[v, :c], act_t.to(out.when.dtype), reduction="none")
        losses["tag_when"] = bce[m].mean()
    return losses
