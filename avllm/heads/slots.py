"""Joint Slot Attention (JSA) for sound source localization (Kim et al., CVPR 2025).

Two slots, shared by both modalities, compete for the tokens of an image and of its audio: slot 0 becomes the
*target* (what is heard and seen), slot 1 the *off-target* (background, off-screen sound, noise). Only the target
slots meet in the contrastive loss, and the audio target query, laid over the image keys, is the localization map.

    head = JointSlotAttention(dim=256, cfg=SlotConfig())
    out = head(img, aud, aud_mask, grid=8, compute_loss=True)   # img (B, 64, 256), aud (B, Ta, 256)
    out.ssl_map          # (B, 64) in [0, 1]
    out.losses           # {"slot_nce", "slot_match", "slot_div", "slot_recon"}

Choices where the paper leaves room (all documented at the function that makes them):
- one slot-attention module (initial slots, projections, GRU, MLP) serves both modalities;
- training drops ``token_mask_ratio`` of the valid tokens from the weighted mean (never at eval);
- ``slot_match`` is an L1 distance between attention maps, the intra-modal map under stop-gradient;
- ``slot_div`` is the positive part of the cosine similarity between the target and each off-target slot;
- ``slot_recon`` rebuilds the layer-normalised input tokens, detached, from the slots mixed by their attention;
- k-reciprocal false negatives: mutual k-nearest neighbours in the image AND the audio target-slot spaces;
- ``ssl_map = (1 - w) * A_av + w * A_vv`` with ``w = cfg.iqr_weight`` when ``cfg.iqr``, else ``A_av``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avllm.config import SlotConfig

__all__ = [
    "SlotOutput",
    "SlotAttention",
    "JointSlotAttention",
    "k_reciprocal_false_negatives",
    "target_infonce",
    "attention_matching",
    "random_token_keep",
    "slot_anchor_loss",
]


@dataclass
class SlotOutput:
    """What the JSA head returns. B batch, S slots, P image patches, Ta audio tokens, D width.

    Attention maps are float in [0, 1] and sum to 1 over the slot axis at every token (padding included; padded
    audio tokens carry no weight in the slot updates). Slot 0 is the target, slot 1 the off-target.
    """

    img_slots: Tensor  # (B, S, D)
    aud_slots: Tensor  # (B, S, D)
    img_attn: Tensor  # (B, S, P) softmax over slots
    aud_attn: Tensor  # (B, S, Ta) softmax over slots
    ssl_map: Tensor  # (B, P) in [0, 1]
    losses: dict[str, Tensor] = field(default_factory=dict)  # slot_nce, slot_match, slot_div, slot_recon


@dataclass
class _Decomposition:
    slots: Tensor  # (B, S, D) after the last update
    attn: Tensor  # (B, S, N) attention of the last iteration, softmax over slots
    q: Tensor  # (B, S, D) queries of the last iteration
    k: Tensor  # (B, N, D) keys of the tokens


class SlotAttention(nn.Module):
    """Slot attention (Locatello et al., 2020) with learned initial slots (not sampled).

    Each iteration: queries from the normalised slots, softmax over SLOTS (slots compete for each token), a weighted
    mean of the values over the tokens that are kept, a GRU update, then a residual MLP.
    """

    def __init__(self, dim: int, num_slots: int, iters: int, mlp_hidden: int, eps: float = 1e-8):
        super().__init__()
        self.iters = iters
        self.eps = eps
        self.scale = dim**-0.5
        self.init_slots = nn.Parameter(torch.empty(num_slots, dim))
        nn.init.xavier_uniform_(self.init_slots)
        self.norm_in = nn.LayerNorm(dim)
        self.norm_slots = nn.LayerNorm(dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.gru = nn.GRUCell(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_hidden), nn.ReLU(), nn.Linear(mlp_hidden, dim))

    def keys(self, x: Tensor) -> Tensor:
        """Keys of tokens ``x`` (B, N, D) -> (B, N, D)."""
        return self.to_k(self.norm_in(x))

    def queries(self, slots: Tensor) -> Tensor:
        """Queries of slots (B, S, D) -> (B, S, D)."""
        return self.to_q(self.norm_slots(slots))

    def attention(self, q: Tensor, k: Tensor) -> Tensor:
        """Scaled dot product of queries (B, S, D) with keys (B, N, D), softmax over slots -> (B, S, N) in [0, 1]."""
        return (torch.einsum("bsd,bnd->bsn", q, k) * self.scale).softmax(dim=1)

    def forward(self, x: Tensor, keep: Tensor) -> _Decomposition:
        """Decompose tokens ``x`` (B, N, D); ``keep`` (B, N) bool marks the tokens that may feed the slots."""
        B, N, D = x.shape
        xn = self.norm_in(x)
        k, v = self.to_k(xn), self.to_v(xn)  # (B, N, D)
        w_keep = keep.to(x.dtype).unsqueeze(1)  # (B, 1, N)
        slots = self.init_slots.unsqueeze(0).expand(B, -1, -1)  # (B, S, D)
        S = slots.shape[1]
        for _ in range(self.iters):
            prev = slots
            q = self.queries(slots)  # (B, S, D)
            attn = self.attention(q, k)  # (B, S, N)
            w = attn * w_keep
            w = w / (w.sum(dim=-1, keepdim=True) + self.eps)  # weighted mean over kept tokens
            updates = torch.einsum("bsn,bnd->bsd", w, v)  # (B, S, D)
            slots = self.gru(updates.reshape(B * S, D), prev.reshape(B * S, D)).reshape(B, S, D)
            slots = slots + self.mlp(self.norm_mlp(slots))
        return _Decomposition(slots=slots, attn=attn, q=q, k=k)


def random_token_keep(valid: Tensor, ratio: float) -> Tensor:
    """Drop each valid token with probability ``ratio``; (B, N) bool -> (B, N) bool.

    A sample whose valid tokens would all be dropped keeps them all, so every slot update has something to average.
    """
    if ratio <= 0:
        return valid
    keep = valid & (torch.rand(valid.shape, device=valid.device) >= ratio)
    empty = ~keep.any(dim=1)  # (B,)
    return torch.where(empty.unsqueeze(1), valid, keep)


def k_reciprocal_false_negatives(*spaces: Tensor, k: int) -> Tensor:
    """Predicted false negatives of a batch: (B, B) bool, True at (i, j) when j must not be a negative of i.

    Rule: for each embedding space x (B, E), N_k(i) are the k samples other than i with the highest cosine
    similarity to i (ties broken by ``topk``), and the k-reciprocal set is R_k(i) = {j : j in N_k(i) and
    i in N_k(j)}. A pair is a false negative when it is k-reciprocal in EVERY space given; JSA passes the image and
    the audio target slots (its Sec. 3.4). The result is symmetric, its diagonal is False, and k is capped at B - 1;
    k <= 0 gives no false negatives. No gradient flows through the selection.
    """
    B = spaces[0].shape[0]
    device = spaces[0].device
    out = ~torch.eye(B, dtype=torch.bool, device=device)
    kk = min(k, B - 1)
    if kk <= 0:
        return torch.zeros(B, B, dtype=torch.bool, device=device)
    for x in spaces:
        xn = F.normalize(x.detach().float(), dim=-1)
        sim = xn @ xn.T  # (B, B)
        sim.fill_diagonal_(float("-inf"))
        idx = sim.topk(kk, dim=1).indices  # (B, kk)
        knn = torch.zeros(B, B, dtype=torch.bool, device=device).scatter_(1, idx, True)
        out &= knn & knn.T
    return out


def target_infonce(img_t: Tensor, aud_t: Tensor, *, tau: float, k_reciprocal: int = 0) -> Tensor:
    """Symmetric InfoNCE between image and audio target slots (B, D) of paired clips -> scalar.

    Logits are cosine similarities over ``tau``; sample i's positive is its own pair. With ``k_reciprocal > 0``
    the predicted false negatives of ``k_reciprocal_false_negatives(img_t, aud_t)`` leave the denominators of both
    directions (their logits become -inf; the positive always stays, so the loss is finite).
    """
    logits = F.normalize(aud_t, dim=-1) @ F.normalize(img_t, dim=-1).T / tau  # (B_a, B_i)
    if k_reciprocal > 0:
        fn = k_reciprocal_false_negatives(img_t, aud_t, k=k_reciprocal)  # (B, B), symmetric, diagonal False
        logits = logits.masked_fill(fn, float("-inf"))
    labels = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def attention_matching(cross: Tensor, intra: Tensor, valid: Tensor | None = None) -> Tensor:
    """L1 distance between a cross-modal map and the intra-modal map it should match, target under stop-gradient.

    cross, intra: (B, N) attention of the target slot over N tokens; valid: (B, N) bool or None -> scalar, the mean
    over valid tokens of |cross - sg(intra)|. ``intra`` never receives gradient from this term.
    """
    diff = (cross - intra.detach()).abs()  # (B, N)
    if valid is None:
        return diff.mean()
    w = valid.to(diff.dtype)
    return (diff * w).sum() / w.sum().clamp_min(1.0)


def slot_anchor_loss(ssl_map: Tensor, target: Tensor, eps: float = 1e-4) -> Tensor | None:
    """Binary cross-entropy of the target slot's map against the SSL target on the patch grid -> scalar, or None.

    ssl_map: (B, P) in [0, 1], the target slot's share of each patch; target: (B, P) in [0, 1], the fraction of each
    patch covered by sounding visible objects. Samples with an empty target (nothing visible sounds) are left out;
    None when no sample has one.

    JSA itself is self-supervised, and both slots are interchangeable up to their learned initial vectors: nothing
    in its losses says which one holds the object. From scratch on a small world we found the roles swapped (slot 0
    on the background in every image). Where the training data carries the SSL target (the synthetic world does, as
    MEERKAT's grounding data carries boxes), this term fixes the identity: slot 0 is what sounds and is seen.
    """
    valid = target.flatten(1).sum(1) > 0  # (B,)
    if not bool(valid.any()):
        return None
    p = ssl_map[valid].clamp(eps, 1.0 - eps)
    return F.binary_cross_entropy(p, target[valid].to(p.dtype))


class JointSlotAttention(nn.Module):
    """The JSA head: shared slot attention over image and audio tokens, its losses, and the localization map."""

    def __init__(self, dim: int, cfg: SlotConfig):
        super().__init__()
        self.cfg = cfg
        self.slot_attn = SlotAttention(dim, cfg.num_slots, cfg.iters, cfg.mlp_hidden)
        h = cfg.recon_hidden
        # Training-only decoders: one slot vector -> one token feature.
        self.img_decoder = nn.Sequential(nn.Linear(dim, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, dim))
        self.aud_decoder = nn.Sequential(nn.Linear(dim, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, dim))

    def similarity(self, img_slots_target: Tensor, aud_slots_target: Tensor) -> Tensor:
        """Retrieval scores: cosine similarity of audio targets (B_a, D) with image targets (B_i, D) -> (B_a, B_i)."""
        return F.normalize(aud_slots_target, dim=-1) @ F.normalize(img_slots_target, dim=-1).T

    def forward(
        self,
        img: Tensor,
        aud: Tensor,
        aud_mask: Tensor | None = None,
        *,
        grid: int,
        compute_loss: bool = False,
    ) -> SlotOutput:
        """img (B, P, D) patch tokens on a grid x grid raster (row-major); aud (B, Ta, D) audio tokens;
        aud_mask (B, Ta) bool, True = valid (None = all valid). Losses only when ``compute_loss``."""
        B, P, _ = img.shape
        if P != grid * grid:
            raise ValueError(f"image has {P} tokens, not grid * grid = {grid * grid}")
        if aud_mask is None:
            aud_mask = torch.ones(aud.shape[:2], dtype=torch.bool, device=aud.device)
        img_valid = torch.ones(B, P, dtype=torch.bool, device=img.device)
        ratio = self.cfg.token_mask_ratio if self.training else 0.0
        sa = self.slot_attn
        iv = sa(img, random_token_keep(img_valid, ratio))
        av = sa(aud, random_token_keep(aud_mask, ratio))

        a_av = sa.attention(av.q, iv.k)[:, 0]  # (B, P) audio target query over image keys
        a_vv = iv.attn[:, 0]  # (B, P) image target query over image keys (intra-modal)
        ssl_map = (1.0 - self.cfg.iqr_weight) * a_av + self.cfg.iqr_weight * a_vv if self.cfg.iqr else a_av

        out = SlotOutput(
            img_slots=iv.slots, aud_slots=av.slots, img_attn=iv.attn, aud_attn=av.attn, ssl_map=ssl_map
        )
        if compute_loss:
            out.losses = self._losses(img, aud, aud_mask, iv, av, a_av)
        return out

    def _losses(
        self, img: Tensor, aud: Tensor, aud_mask: Tensor, iv: _Decomposition, av: _Decomposition, a_av: Tensor
    ) -> dict[str, Tensor]:
        cfg = self.cfg
        img_t, aud_t = iv.slots[:, 0], av.slots[:, 0]  # (B, D) target slots

        slot_nce = target_infonce(img_t, aud_t, tau=cfg.tau, k_reciprocal=cfg.k_reciprocal)

        # Cross-modal attention matching: audio target query over image keys should match the image target's own
        # map, and image target query over audio keys the audio target's own map (targets stop-gradient).
        a_va = self.slot_attn.attention(iv.q, av.k)[:, 0]  # (B, Ta)
        slot_match = 0.5 * (
            attention_matching(a_av, iv.attn[:, 0]) + attention_matching(a_va, av.attn[:, 0], aud_mask)
        )

        # Divergence: penalise positive cosine similarity between the target and each off-target slot.
        def div(slots: Tensor) -> Tensor:
            cos = F.cosine_similarity(slots[:, :1], slots[:, 1:], dim=-1)  # (B, S - 1)
            return cos.clamp_min(0.0).mean()

        slot_div = 0.5 * (div(iv.slots) + div(av.slots))

        # Reconstruction: token n is rebuilt as sum_s attn[s, n] * decoder(slot_s); the target is the layer-normed
        # input token, detached, so this term trains slots and decoders but cannot collapse the encoders' features.
        def recon(x: Tensor, d: _Decomposition, decoder: nn.Module, valid: Tensor | None) -> Tensor:
            target = F.layer_norm(x, x.shape[-1:]).detach()  # (B, N, D)
            pred = torch.einsum("bsn,bsd->bnd", d.attn, decoder(d.slots))  # (B, N, D)
            err = (pred - target).pow(2).mean(dim=-1)  # (B, N)
            if valid is None:
                return err.mean()
            w = valid.to(err.dtype)
            return (err * w).sum() / w.sum().clamp_min(1.0)

        slot_recon = 0.5 * (recon(img, iv, self.img_decoder, None) + recon(aud, av, self.aud_decoder, aud_mask))
        return {"slot_nce": slot_nce, "slot_match": slot_match, "slot_div": slot_div, "slot_recon": slot_recon}
