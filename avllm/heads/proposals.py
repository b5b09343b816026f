"""Grounding proposals that the language model reads: an audio-conditioned box and an image-conditioned activity
curve over audio time.

The LM writes boxes and segments as location / time tokens. Reading positions off 64 patch tokens is the hard part
for a small LM (a map's peak is not a box), so two light heads propose them and the proposals enter the LM's AV
prefix as the *embeddings of the corresponding location and time tokens*: copying is then learnable, and the LM can
still overrule them from the rest of the prefix. Both heads have their own supervised losses.

    box = BoxHead(dim)(img, query, grid=8)          # BoxOutput(box (B, 4) normalised xyxy, attn (B, P))
    act = ActivityHead(dim)(aud, query)            # (B, Ta) logits: "the queried object sounds at this token"
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BoxHead", "BoxOutput", "ActivityHead", "box_loss", "activity_loss", "grid_centres"]


def grid_centres(grid: int, device: torch.device | None = None) -> Tensor:
    """(P, 2) normalised (x, y) centres of a row-major grid×grid patch grid."""
    c = (torch.arange(grid, device=device, dtype=torch.float32) + 0.5) / grid
    ys, xs = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], dim=-1)


@dataclass
class BoxOutput:
    box: Tensor  # (B, 4) normalised [x0, y0, x1, y1], x0 < x1, y0 < y1
    attn: Tensor  # (B, P) attention of the query over patches (sums to 1)


class BoxHead(nn.Module):
    """An audio query attends over image patches; the box centre is the attention's expected position plus a
    learned offset, its size is regressed from the attended features."""

    def __init__(self, dim: int):
        super().__init__()
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim + 4, dim), nn.GELU(), nn.Linear(dim, 4))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, img: Tensor, query: Tensor, *, grid: int) -> BoxOutput:
        # img: (B, P, D), query: (B, D)
        logits = torch.einsum("bd,bpd->bp", self.q(query), self.k(img)) / math.sqrt(img.shape[-1])  # (B, P)
        attn = logits.softmax(-1)
        centres = grid_centres(grid, img.device)  # (P, 2)
        mean = attn @ centres  # (B, 2) expected (x, y)
        spread = (attn @ centres.pow(2) - mean.pow(2)).clamp_min(1e-6).sqrt()  # (B, 2)
        pooled = torch.einsum("bp,bpd->bd", attn, img)  # (B, D)
        d = self.mlp(torch.cat([pooled, mean, spread], dim=-1))  # (B, 4)
        centre = (mean + 0.25 * torch.tanh(d[:, :2])).clamp(0.0, 1.0)
        size = torch.sigmoid(d[:, 2:]) * 0.98 + 0.02  # (B, 2) in (0.02, 1); 0.51 at init
        x0y0 = (centre - size / 2).clamp(0.0, 1.0)
        x1y1 = (centre + size / 2).clamp(0.0, 1.0)
        x1y1 = torch.maximum(x1y1, x0y0 + 1e-3)
        return BoxOutput(box=torch.cat([x0y0, x1y1], dim=-1), attn=attn)


def box_loss(pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """L1 + (1 - GIoU) between (B, 4) xyxy boxes, averaged over rows where ``valid`` (B,) is True."""
    if not bool(valid.any()):
        return pred.sum() * 0.0
    p, t = pred[valid], target[valid]
    l1 = (p - t).abs().sum(-1)
    lt, rb = torch.maximum(p[:, :2], t[:, :2]), torch.minimum(p[:, 2:], t[:, 2:])
    inter = (rb - lt).clamp_min(0).prod(-1)
    area_p, area_t = (p[:, 2:] - p[:, :2]).prod(-1), (t[:, 2:] - t[:, :2]).prod(-1)
    union = area_p + area_t - inter
    iou = inter / union.clamp_min(1e-6)
    hull = (torch.maximum(p[:, 2:], t[:, 2:]) - torch.minimum(p[:, :2], t[:, :2])).prod(-1)
    giou = iou - (hull - union) / hull.clamp_min(1e-6)
    return (l1 + 1.0 - giou).mean()


class ActivityHead(nn.Module):
    """Per audio token: does the object named by ``query`` (an image-side vector) sound here? Returns logits."""

    def __init__(self, dim: int):
        super().__init__()
        self.a = nn.Linear(dim, dim)
        self.q = nn.Linear(dim, dim)
        self.out = nn.Sequential(nn.GELU(), nn.Linear(dim, 1))
        self.ctx = nn.Conv1d(dim, dim, kernel_size=3, padding=1)

    def forward(self, aud: Tensor, query: Tensor) -> Tensor:
        # aud: (B, Ta, D), query: (B, D) -> (B, Ta)
        h = self.a(aud) * self.q(query)[:, None, :]  # (B, Ta, D)
        h = h + self.ctx(h.transpose(1, 2)).transpose(1, 2)  # temporal context of ±1 token
        return self.out(h).squeeze(-1)


def activity_loss(logits: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Binary cross-entropy over valid tokens. logits, target: (B, Ta); mask: (B, Ta) bool (valid and supervised)."""
    if not bool(mask.any()):
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[mask], target[mask].float())
