"""FAVOR's causal Q-Former: frame-level audio-visual synchronisation, sliding windows, block-wise causal attention.

1. Synchronisation. Frame t owns the time interval between the midpoints to its neighbours (the first and last
   frames extend to -inf / +inf). The valid audio tokens whose centre time falls in that interval are mean-pooled
   into one audio token for the frame; a frame with no audio token gets a zero vector plus a learned "no audio"
   embedding. The frame-level AV tokens are the frame's P patches followed by that audio token: ``(B, T, P+1, D)``,
   with learned modality embeddings and a sinusoidal embedding of the frame index.
2. Windows. Window w covers frames ``[w * stride, w * stride + window_frames)``; there are
   ``W = 1 + ceil(max(T - window_frames, 0) / stride)`` windows and every frame is in one (``stride >
   window_frames`` would skip frames and is an error). The last window may run past T: its missing frames are
   padding, marked -1 in ``window_frames`` and invisible to attention (its queries see the real frames only).
   Each window has ``num_queries`` learned queries (shared across windows) plus a sinusoidal embedding of the
   window index.
3. Q-Former layers: queries self-attend, cross-attend to the AV tokens, then an MLP (pre-norm, residual). With
   ``mask == "causal"`` the queries of window w see the queries of windows <= w and the AV tokens of the frames of
   windows <= w (frames before ``w * stride + window_frames``), nothing later; ``"full"`` lets every query see
   everything (the ablation). There is no dropout, so train and eval outputs agree.

Query diversity loss ``qformer_div``: for each window, the cosine similarity between its output queries; per query
a softmax-weighted mean (temperature ``diversity_tau``) of its similarity to the other queries of the window,
``tau * (logsumexp_{j != i}(cos_ij / tau) - log(Q - 1))``, in [-1, 1], averaged. Small tau approaches the largest
similarity, large tau the mean off-diagonal similarity. Zero when Q == 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avllm.config import QFormerConfig

__all__ = ["QFormerOutput", "CausalQFormer", "frame_audio_assignment", "window_layout", "sinusoidal"]

_MASKS = ("causal", "full")


@dataclass
class QFormerOutput:
    queries: Tensor  # (B, W * Q, D) output query tokens, window-major
    window_index: Tensor  # (W * Q,) long: the window of each query
    window_frames: Tensor  # (W, window_frames) long: frame indices of each window, -1 = padding
    sync: Tensor | None  # (B, T, P + 1, D) frame-level AV tokens (patches, then the pooled audio token)
    losses: dict[str, Tensor] = field(default_factory=dict)  # {"qformer_div": ()} when compute_loss


def sinusoidal(pos: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of positions ``pos (...)`` (float) -> (..., dim)."""
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=pos.device, dtype=torch.float32) / max(half, 1))
    ang = pos.float()[..., None] * freq  # (..., half)
    emb = torch.cat([ang.sin(), ang.cos()], dim=-1)
    return F.pad(emb, (0, dim - 2 * half))


def window_layout(num_frames: int, window: int, stride: int) -> Tensor:
    """(W, window) long frame indices of each sliding window; -1 marks padding past the last frame."""
    if num_frames < 1 or window < 1 or stride < 1:
        raise ValueError(f"need num_frames, window, stride >= 1; got {num_frames}, {window}, {stride}")
    if stride > window:
        raise ValueError(f"stride {stride} > window {window} would skip frames between windows")
    n_windows = 1 + math.ceil(max(num_frames - window, 0) / stride)
    idx = torch.arange(n_windows)[:, None] * stride + torch.arange(window)[None, :]  # (W, window)
    return torch.where(idx < num_frames, idx, torch.full_like(idx, -1))


def frame_audio_assignment(frame_times: Tensor, aud_times: Tensor, aud_mask: Tensor) -> Tensor:
    """Which frame each audio token belongs to: (B, T), (B, Ta) or (Ta,), (B, Ta) bool -> (B, T, Ta) bool.

    Frame t owns ``[mid(t-1, t), mid(t, t+1))``; the first frame's interval starts at -inf, the last ends at +inf.
    Masked audio tokens belong to no frame. ``frame_times`` must be increasing along T.
    """
    B, T = frame_times.shape
    at = aud_times.to(frame_times.dtype)
    at = at.expand(B, -1) if at.dim() == 1 else at  # (B, Ta)
    mid = (frame_times[:, 1:] + frame_times[:, :-1]) / 2  # (B, T-1)
    inf = torch.full((B, 1), float("inf"), dtype=frame_times.dtype, device=frame_times.device)
    lo = torch.cat([-inf, mid], dim=1)  # (B, T)
    hi = torch.cat([mid, inf], dim=1)
    inside = (at[:, None, :] >= lo[:, :, None]) & (at[:, None, :] < hi[:, :, None])  # (B, T, Ta)
    return inside & aud_mask.bool()[:, None, :]


class _Attention(nn.Module):
    """Multi-head attention with a boolean ``allowed`` mask (True = may attend)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, ctx: Tensor, allowed: Tensor) -> Tensor:
        B, N, D = x.shape
        H = self.heads
        q = self.q(x).view(B, N, H, D // H).transpose(1, 2)  # (B, H, N, dh)
        k, v = self.kv(ctx).view(B, ctx.shape[1], 2, H, D // H).permute(2, 0, 3, 1, 4)  # 2 x (B, H, S, dh)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)  # (B, H, N, dh)
        return self.out(y.transpose(1, 2).reshape(B, N, D))


class _Layer(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.n1, self.n2, self.n3, self.nc = (nn.LayerNorm(dim) for _ in range(4))
        self.self_attn = _Attention(dim, heads)
        self.cross_attn = _Attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, q: Tensor, av: Tensor, self_ok: Tensor, cross_ok: Tensor) -> Tensor:
        h = self.n1(q)
        q = q + self.self_attn(h, h, self_ok)
        q = q + self.cross_attn(self.n2(q), self.nc(av), cross_ok)
        return q + self.mlp(self.n3(q))


class CausalQFormer(nn.Module):
    """Sliding-window Q-Former over frame-level synchronised audio-visual tokens (see the module docstring)."""

    def __init__(self, dim: int, cfg: QFormerConfig) -> None:
        super().__init__()
        if cfg.mask not in _MASKS:
            raise ValueError(f"QFormerConfig.mask = {cfg.mask!r} is not one of {list(_MASKS)}")
        if cfg.num_queries < 1 or cfg.window_frames < 1 or cfg.stride_frames < 1 or cfg.layers < 1:
            raise ValueError(f"QFormerConfig sizes must be >= 1: {cfg}")
        if cfg.stride_frames > cfg.window_frames:
            raise ValueError(f"QFormerConfig.stride_frames {cfg.stride_frames} > window_frames {cfg.window_frames}")
        if cfg.heads < 1 or dim % cfg.heads:
            raise ValueError(f"dim {dim} must be a positive multiple of QFormerConfig.heads {cfg.heads}")
        if cfg.diversity_tau <= 0:
            raise ValueError(f"QFormerConfig.diversity_tau must be > 0, got {cfg.diversity_tau}")
        self.dim = dim
        self.cfg = cfg
        # (Q, D) shared by all windows. Unit scale, like the sinusoidal window code added to them: at 0.02 the
        # window code swamps them, every query of a window starts the same and the diversity gradient vanishes.
        self.query = nn.Parameter(torch.randn(cfg.num_queries, dim))
        self.no_audio = nn.Parameter(torch.randn(dim) * 0.02)  # stands in for the audio of a silent frame
        self.visual_type = nn.Parameter(torch.zeros(dim))
        self.audio_type = nn.Parameter(torch.zeros(dim))
        self.layers = nn.ModuleList(_Layer(dim, cfg.heads) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(dim)

    def synchronise(
        self, frames: Tensor, frame_times: Tensor, aud: Tensor, aud_times: Tensor, aud_mask: Tensor
    ) -> Tensor:
        """Frame-level AV tokens: (B, T, P, D) frames + audio -> (B, T, P + 1, D)."""
        B, T, P, D = frames.shape
        assign = frame_audio_assignment(frame_times, aud_times, aud_mask).to(aud.dtype)  # (B, T, Ta)
        count = assign.sum(-1, keepdim=True)  # (B, T, 1)
        pooled = torch.einsum("bts,bsd->btd", assign, aud) / count.clamp_min(1.0)  # (B, T, D) masked mean
        pooled = pooled + (count == 0).to(aud.dtype) * self.no_audio  # zero vector + "no audio" when none
        pos = sinusoidal(torch.arange(T, device=frames.device), D).to(frames.dtype)  # (T, D)
        vis = frames + self.visual_type + pos[None, :, None, :]  # (B, T, P, D)
        au = pooled + self.audio_type + pos[None]  # (B, T, D)
        return torch.cat([vis, au[:, :, None, :]], dim=2)  # (B, T, P + 1, D)

    def masks(self, num_frames: int, tokens_per_frame: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """(window_frames (W, k), self-attention allowed (WQ, WQ), cross-attention allowed (WQ, T * (P+1)))."""
        cfg = self.cfg
        layout = window_layout(num_frames, cfg.window_frames, cfg.stride_frames).to(device)  # (W, k)
        W, Q = layout.shape[0], cfg.num_queries
        win = torch.arange(W, device=device).repeat_interleave(Q)  # (WQ,)
        frame_of_tok = torch.arange(num_frames, device=device).repeat_interleave(tokens_per_frame)  # (T*(P+1),)
        # frames visible to window w: any frame of a window <= w, i.e. frames < w * stride + window_frames
        end = torch.arange(W, device=device) * cfg.stride_frames + cfg.window_frames  # (W,)
        if cfg.mask == "causal":
            self_ok = win[None, :] <= win[:, None]  # (WQ, WQ)
            cross_ok = frame_of_tok[None, :] < end[win][:, None]  # (WQ, T*(P+1))
        else:
            self_ok = torch.ones(W * Q, W * Q, dtype=torch.bool, device=device)
            cross_ok = torch.ones(W * Q, num_frames * tokens_per_frame, dtype=torch.bool, device=device)
        return layout, self_ok, cross_ok

    def forward(
        self,
        frames: Tensor,
        frame_times: Tensor,
        aud: Tensor,
        aud_times: Tensor,
        aud_mask: Tensor | None = None,
        *,
        compute_loss: bool = False,
    ) -> QFormerOutput:
        """frames (B, T, P, D), frame_times (B, T) s, aud (B, Ta, D), aud_times (Ta,) or (B, Ta) s,
        aud_mask (B, Ta) bool -> QFormerOutput."""
        if frames.dim() != 4 or aud.dim() != 3 or frames.shape[-1] != self.dim or aud.shape[-1] != self.dim:
            raise ValueError(f"expected frames (B, T, P, {self.dim}) and aud (B, Ta, {self.dim})")
        B, T, P, D = frames.shape
        if aud_mask is None:
            aud_mask = torch.ones(aud.shape[:2], dtype=torch.bool, device=aud.device)
        sync = self.synchronise(frames, frame_times, aud, aud_times, aud_mask)  # (B, T, P+1, D)
        av = sync.reshape(B, T * (P + 1), D)
        layout, self_ok, cross_ok = self.masks(T, P + 1, frames.device)
        W, Q = layout.shape[0], self.cfg.num_queries
        wpos = sinusoidal(torch.arange(W, device=frames.device), D).to(frames.dtype)  # (W, D)
        q = (self.query[None, :, :] + wpos[:, None, :]).reshape(W * Q, D)  # (WQ, D)
        q = q[None].expand(B, -1, -1)  # (B, WQ, D)
        for layer in self.layers:
            q = layer(q, av, self_ok, cross_ok)
        q = self.norm(q)
        losses = {"qformer_div": self.diversity_loss(q.view(B, W, Q, D))} if compute_loss else {}
        window_index = torch.arange(W, device=frames.device).repeat_interleave(Q)
        return QFormerOutput(queries=q, window_index=window_index, window_frames=layout, sync=sync, losses=losses)

    def diversity_loss(self, q: Tensor) -> Tensor:
        """q (B, W, Q, D) -> () soft-max cosine similarity between distinct queries of the same window."""
        Q = q.shape[2]
        if Q < 2:
            return q.sum() * 0.0
        z = F.normalize(q.float(), dim=-1)
        cos = torch.einsum("bwid,bwjd->bwij", z, z)  # (B, W, Q, Q)
        tau = self.cfg.diversity_tau
        off = ~torch.eye(Q, dtype=torch.bool, device=q.device)
        logits = torch.where(off, cos / tau, torch.full_like(cos, float("-inf")))
        soft = tau * (torch.logsumexp(logits, dim=-1) - math.log(Q - 1))  # (B, W, Q)
        return soft.mean()
