"""MEERKAT's two alignment modules: AVOpT (optimal-transport patch alignment) and AVACE (box attention consistency).

Both losses are meant to be on *together*, as separate named terms (``"ot"`` and ``"avace"``); neither writes into
the other's output (MEERKAT's released code had both off by default and one overwrote the other).

    ot_out = AVOpT(dim, cfg.align)(img, aud, aud_mask)                    # plan (B, P, Ta), loss ()
    ace = AVACE(dim, cfg.align)(img, aud, aud_mask, box_mask_on_grid(boxes, grid))   # attn (B, P), loss ()
    losses = {**ot_out.losses, **ace.losses}                              # {"ot": ..., "avace": ...}
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avllm.config import AlignConfig
from avllm.ot import ipot, masked_uniform, sinkhorn, wasserstein

__all__ = ["OTOutput", "AVACEOutput", "AVOpT", "AVACE", "box_mask_on_grid"]

_SOLVERS = ("sinkhorn", "ipot")
_COSTS = ("cosine", "sqeuclidean")


@dataclass
class OTOutput:
    plan: Tensor  # (B, P, Ta) transport plan, detached; rows/cols of padded audio tokens are 0; sums to 1 per sample
    cost: Tensor  # (B, P, Ta) ground cost between the normalised tokens (differentiable)
    loss: Tensor  # () mean Wasserstein distance over samples with at least one valid audio token

    @property
    def losses(self) -> dict[str, Tensor]:
        return {"ot": self.loss}


@dataclass
class AVACEOutput:
    attn: Tensor  # (B, P) audio -> image attention over patches, in [0, 1], sums to 1 over P
    context: Tensor  # (B, Ta, D) audio tokens enriched with the attended image content (residual)
    loss: Tensor | None  # () box consistency loss; None when no box mask is given

    @property
    def losses(self) -> dict[str, Tensor]:
        return {} if self.loss is None else {"avace": self.loss}


def _check_tokens(img: Tensor, aud: Tensor, aud_mask: Tensor | None) -> Tensor:
    if img.dim() != 3 or aud.dim() != 3 or img.shape[0] != aud.shape[0] or img.shape[2] != aud.shape[2]:
        raise ValueError(f"expected img (B, P, D) and aud (B, Ta, D), got {tuple(img.shape)} and {tuple(aud.shape)}")
    if aud_mask is None:
        return torch.ones(aud.shape[:2], dtype=torch.bool, device=aud.device)
    if aud_mask.shape != aud.shape[:2]:
        raise ValueError(f"aud_mask must be (B, Ta) = {tuple(aud.shape[:2])}, got {tuple(aud_mask.shape)}")
    return aud_mask.bool()


class AVOpT(nn.Module):
    """Weakly supervised patch-level alignment by optimal transport between image patches and audio tokens.

    Tokens are L2-normalised; the ground cost is ``1 - cos`` (``cosine``, in [0, 2]) or ``|x - y|^2``
    (``sqeuclidean``, in [0, 4]). Marginals are uniform over the P patches and over the valid audio tokens. The plan
    is solved without autograd and the loss is ``sum(plan * cost)`` with the plan held fixed: by the envelope
    theorem this is the gradient of the entropic OT value with respect to the cost, and it flows through the cost
    into both ``img`` and ``aud``. The module has no parameters; it trains the projections that feed it.
    """

    def __init__(self, dim: int, cfg: AlignConfig) -> None:
        super().__init__()
        if cfg.ot_solver not in _SOLVERS:
            raise ValueError(f"AlignConfig.ot_solver = {cfg.ot_solver!r} is not one of {list(_SOLVERS)}")
        if cfg.ot_cost not in _COSTS:
            raise ValueError(f"AlignConfig.ot_cost = {cfg.ot_cost!r} is not one of {list(_COSTS)}")
        if cfg.ot_eps <= 0 or cfg.ot_iters < 1:
            raise ValueError(f"AlignConfig needs ot_eps > 0 and ot_iters >= 1, got {cfg.ot_eps}, {cfg.ot_iters}")
        self.dim = dim
        self.cfg = cfg

    def cost(self, img: Tensor, aud: Tensor) -> Tensor:
        """Ground cost (B, P, Ta) between L2-normalised patches (B, P, D) and audio tokens (B, Ta, D)."""
        x, y = F.normalize(img.float(), dim=-1), F.normalize(aud.float(), dim=-1)
        cos = torch.einsum("bpd,btd->bpt", x, y)  # (B, P, Ta)
        return 1.0 - cos if self.cfg.ot_cost == "cosine" else (2.0 - 2.0 * cos).clamp_min(0.0)

    def forward(self, img: Tensor, aud: Tensor, aud_mask: Tensor | None = None) -> OTOutput:
        """img (B, P, D), aud (B, Ta, D), aud_mask (B, Ta) bool (True = valid) -> OTOutput."""
        mask = _check_tokens(img, aud, aud_mask)
        cost = self.cost(img, aud)  # (B, P, Ta)
        a = masked_uniform(torch.ones(img.shape[:2], dtype=torch.bool, device=img.device))  # (B, P)
        b = masked_uniform(mask)  # (B, Ta)
        with torch.no_grad():
            if self.cfg.ot_solver == "sinkhorn":
                plan = sinkhorn(cost.detach(), a, b, eps=self.cfg.ot_eps, iters=self.cfg.ot_iters)
            else:
                plan = ipot(cost.detach(), a, b, beta=self.cfg.ot_eps, iters=self.cfg.ot_iters)
        per_sample = wasserstein(cost, plan)  # (B,)
        has_audio = mask.any(-1).float()  # (B,)
        loss = (per_sample * has_audio).sum() / has_audio.sum().clamp_min(1.0)
        return OTOutput(plan=plan, cost=cost, loss=loss)


class AVACE(nn.Module):
    """Audio -> image multi-head cross-attention whose attention map is held inside the sounding object's box.

    Audio tokens are queries, image patches keys and values. The attention over patches is averaged over heads and
    over valid audio tokens: ``attn (B, P)``, a distribution over patches. With ``box_mask (B, P)`` (the fraction of
    each patch inside the ground-truth box(es), see ``box_mask_on_grid``) the loss per sample is

        inside = sum_p attn_p * box_p,   outside = sum_p attn_p * (1 - box_p)      (inside + outside = 1)
        loss   = -log(inside + 1e-6) + relu(margin + outside - inside)

    which pushes attention mass into the box and out of the rest of the frame (the hinge, with
    ``cfg.avace_margin``, asks for ``inside - outside >= margin``). Samples whose box mask is empty (no visible
    sounding object) are left out of the mean; if none remains the loss is a zero connected to the graph.
    """

    def __init__(self, dim: int, cfg: AlignConfig) -> None:
        super().__init__()
        if cfg.avace_heads < 1 or dim % cfg.avace_heads:
            raise ValueError(f"dim {dim} must be a positive multiple of AlignConfig.avace_heads {cfg.avace_heads}")
        self.cfg = cfg
        self.heads = cfg.avace_heads
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self, img: Tensor, aud: Tensor, aud_mask: Tensor | None = None, box_mask: Tensor | None = None
    ) -> AVACEOutput:
        """img (B, P, D), aud (B, Ta, D), aud_mask (B, Ta) bool, box_mask (B, P) float in [0, 1] -> AVACEOutput."""
        mask = _check_tokens(img, aud, aud_mask)
        B, P, D = img.shape
        Ta, H = aud.shape[1], self.heads
        kv = self.norm_kv(img)
        q = self.q(self.norm_q(aud)).view(B, Ta, H, D // H)  # (B, Ta, H, dh)
        k = self.k(kv).view(B, P, H, D // H)  # (B, P, H, dh)
        v = self.v(kv).view(B, P, H, D // H)
        logits = torch.einsum("bthc,bphc->bhtp", q, k) / (D // H) ** 0.5  # (B, H, Ta, P)
        w = logits.float().softmax(-1)  # (B, H, Ta, P)
        ctx = torch.einsum("bhtp,bphc->bthc", w.to(v.dtype), v).reshape(B, Ta, D)  # (B, Ta, D)
        context = aud + self.out(ctx)
        # average over heads and valid audio tokens; a sample with no valid token averages all of them
        tok = torch.where(mask.any(-1, keepdim=True), mask, torch.ones_like(mask)).float()  # (B, Ta)
        tok = tok / tok.sum(-1, keepdim=True)
        attn = torch.einsum("bhtp,bt->bp", w, tok) / H  # (B, P), sums to 1
        loss = None if box_mask is None else self.box_loss(attn, box_mask)
        return AVACEOutput(attn=attn, context=context, loss=loss)

    def box_loss(self, attn: Tensor, box_mask: Tensor) -> Tensor:
        """attn (B, P) distribution, box_mask (B, P) in [0, 1] -> () loss over samples with a non-empty box."""
        if box_mask.shape != attn.shape:
            raise ValueError(f"box_mask must be (B, P) = {tuple(attn.shape)}, got {tuple(box_mask.shape)}")
        m = box_mask.to(attn.dtype).clamp(0.0, 1.0)
        inside = (attn * m).sum(-1)  # (B,)
        outside = (attn * (1.0 - m)).sum(-1)  # (B,)
        per = -torch.log(inside + 1e-6) + F.relu(self.cfg.avace_margin + outside - inside)  # (B,)
        has_box = (m.sum(-1) > 0).to(attn.dtype)  # (B,)
        return (per * has_box).sum() / has_box.sum().clamp_min(1.0)


def box_mask_on_grid(boxes: list[Tensor] | Tensor, grid: int) -> Tensor:
    """Exact fraction of each patch of a ``grid x grid`` raster covered by the union of boxes.

    Args:
        boxes: per sample a (n, 4) tensor of normalised ``[x0, y0, x1, y1]`` boxes (n may be 0), as a list, or a
            tensor (B, 4) (one box each) or (B, n, 4). Coordinates are clipped to [0, 1]; empty boxes cover nothing.
        grid: patches per side; patch ``p = row * grid + col`` covers ``[col, col+1] x [row, row+1] / grid``.
    Returns:
        (B, grid * grid) float32 in [0, 1], row-major. Overlapping boxes are not double counted: the area is cut
        into the rectangles between all box and patch edges, each of which is inside a box or not.
    """
    if isinstance(boxes, Tensor):
        if boxes.dim() == 2:
            boxes = boxes[:, None, :]
        if boxes.dim() != 3 or boxes.shape[-1] != 4:
            raise ValueError(f"boxes must be (B, 4) or (B, n, 4), got {tuple(boxes.shape)}")
        if boxes.shape[1] == 1:
            return _single_box_fraction(boxes[:, 0].detach(), grid)
        boxes = list(boxes)
    out = []
    for bx in boxes:
        bx = bx.detach().reshape(-1, 4).double().cpu().clamp(0.0, 1.0)
        out.append(_union_fraction(bx, grid))
    device = boxes[0].device if len(boxes) else torch.device("cpu")
    return torch.stack(out).float().to(device) if out else torch.zeros(0, grid * grid)


def _single_box_fraction(bx: Tensor, grid: int) -> Tensor:
    """(B, 4) boxes, one per sample -> (B, grid * grid) covered fractions, vectorised on the boxes' device."""
    bx = bx.float().clamp(0.0, 1.0)
    edges = torch.arange(grid + 1, device=bx.device, dtype=torch.float32) / grid  # (g + 1,)
    lo, hi = edges[:-1], edges[1:]  # (g,)
    ox = (torch.minimum(hi, bx[:, 2:3]) - torch.maximum(lo, bx[:, 0:1])).clamp_min(0.0) * grid  # (B, g) columns
    oy = (torch.minimum(hi, bx[:, 3:4]) - torch.maximum(lo, bx[:, 1:2])).clamp_min(0.0) * grid  # (B, g) rows
    return (oy[:, :, None] * ox[:, None, :]).flatten(1).clamp(0.0, 1.0)  # (B, g * g) row-major


def _union_fraction(bx: Tensor, grid: int) -> Tensor:
    """(n, 4) float64 boxes in [0, 1] -> (grid * grid,) covered fraction of each patch."""
    cells = torch.linspace(0.0, 1.0, grid + 1, dtype=torch.float64)
    xs = torch.unique(torch.cat([cells, bx[:, 0], bx[:, 2]]))  # sorted edges along x
    ys = torch.unique(torch.cat([cells, bx[:, 1], bx[:, 3]]))
    xm, ym = (xs[1:] + xs[:-1]) / 2, (ys[1:] + ys[:-1]) / 2  # centres of the elementary rectangles
    dx, dy = xs[1:] - xs[:-1], ys[1:] - ys[:-1]
    in_x = (xm[None, :] > bx[:, 0:1]) & (xm[None, :] < bx[:, 2:3])  # (n, X)
    in_y = (ym[None, :] > bx[:, 1:2]) & (ym[None, :] < bx[:, 3:4])  # (n, Y)
    covered = (in_y[:, :, None] & in_x[:, None, :]).any(0)  # (Y, X)
    area = covered.double() * dy[:, None] * dx[None, :]  # (Y, X)
    col = (xm * grid).floor().long().clamp(0, grid - 1)
    row = (ym * grid).floor().long().clamp(0, grid - 1)
    idx = (row[:, None] * grid + col[None, :]).reshape(-1)
    frac = torch.zeros(grid * grid, dtype=torch.float64).index_add_(0, idx, area.reshape(-1))
    return (frac * grid * grid).clamp(0.0, 1.0)
