"""The whole model: encoders → projections → the five grounding modules → the AV prefix → the language model.

    model = build_model(get_preset("tiny"), tokenizer)
    out = model(batch)                       # AVOutput: maps, named losses (when the batch carries targets)
    feats = model.encode(frames, frame_times, audio, audio_len)   # cached by the predictor
    texts = model.generate(feats, ["Where is the object making the sound?"])

Batch keys (``avllm.data.collate``): frames (B, T, 3, S, S) float in [0, 1]; frame_times (B, T) s; audio (B, N)
float32 at cfg.audio.sample_rate; audio_len (B,) samples; task list[str]; prompt/answer list[str]; input_ids,
attention_mask, labels (B, L) from the LM's text encoder; box_mask (B, S, S) key-frame target in [0, 1]; boxes
list[(n, 4)]; segments list[(m, 2)]; answer_index (B,) long (-1 = none); seen_tags / heard_tags (B, C) and
tags_valid (B,) the class tags (optional).
key_index (B,) the key frame's position among the T frames (boxes and masks refer to it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avllm.config import ModelConfig
from avllm.encoders import AudioEncoder, ImageEncoder, build_audio_encoder, build_image_encoder
from avllm.heads.align import AVACE, AVOpT, box_mask_on_grid
from avllm.heads.cad import AnswerChain, ContextualBlock, TemporalAlignment
from avllm.heads.classmap import WHEN_BINS, ClassMapHead, ClassMapOutput, ClassTargets, class_map_loss
from avllm.heads.dense import DenseAV
from avllm.heads.proposals import ActivityHead, BoxHead, activity_loss, box_loss, grid_centres
from avllm.heads.qformer import CausalQFormer
from avllm.heads.slots import JointSlotAttention, slot_anchor_loss
from avllm.heads.tags import TagHead, tag_loss
from avllm.llm import (
    IGNORE_INDEX,
    AVLanguageModel,
    build_llm,
    lm_task_losses,
    next_token_loss,
    reduce_token_losses,
    token_losses,
)
from avllm.textformat import GroundingCodec

__all__ = [
    "AVFeatures", "AVOutput", "AVLLM", "build_model", "tag_word_index", "jitter_bins", "ALIGN_LOSSES",
    "INSTRUCT_LOSSES",
]

# Which loss terms each training stage turns on (the trainer multiplies by LossWeights).
ALIGN_LOSSES = (
    "slot_nce", "slot_match", "slot_div", "slot_recon", "slot_anchor", "dense_nce", "dense_disentangle", "ot",
    "avace", "cad_temporal", "tags", "tag_where", "tag_when", "tag_sounding",
)
INSTRUCT_LOSSES = ("lm", "lm_vocab", "qformer_div", "cad_avqa", "box", "activity", "avace", "ot", "slot_anchor",
                   "tags", "tag_where", "tag_when", "tag_sounding")


@dataclass
class AVFeatures:
    """Everything the heads computed for a batch of clips: what the predictor caches and the demo renders."""

    frames: Tensor  # (B, T, P, D) projected (and contextualised) patch tokens
    frame_times: Tensor  # (B, T) seconds
    aud: Tensor  # (B, Ta, D) projected audio tokens
    aud_mask: Tensor  # (B, Ta) bool, True = real audio
    aud_times: Tensor  # (Ta,) seconds, centre of each token
    grid: int
    key_index: Tensor  # (B,) long, position of the key frame among the T frames
    ssl_map: Tensor  # (B, P) in [0, 1], JSA localization map (with IQR)
    slot_img_attn: Tensor  # (B, S, P) softmax over slots
    slot_aud_attn: Tensor  # (B, S, Ta)
    dense_heatmaps: Tensor  # (B, K, g, g)
    dense_time: Tensor  # (B, K, Ta)
    retrieval: Tensor  # (B_a, B_i) DenseAV clip scores
    ot_plan: Tensor  # (B, P, Ta)
    avace_attn: Tensor  # (B, P)
    box: Tensor  # (B, 4) proposal box
    activity: Tensor  # (B, Ta) logits of the activity proposal
    queries: Tensor  # (B, W*Q, D) Q-Former outputs
    img_slots: Tensor  # (B, S, D)
    aud_slots: Tensor  # (B, S, D)
    seen_tags: Tensor | None = None  # (B, num_tags) logits: class c is visible (None without a tag head)
    heard_tags: Tensor | None = None  # (B, num_tags) logits: class c is heard
    class_maps: ClassMapOutput | None = None  # where / when each class is (None without class maps)
    losses: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class AVOutput:
    features: AVFeatures
    losses: dict[str, Tensor]  # named, unweighted terms
    loss: Tensor | None  # weighted sum of the terms (None without targets)
    lm_logits: Tensor | None  # (R, L, V) next-token scores of the R = B + E texts (E extra texts, see data): logits, or log-probabilities with the copy head
    avqa_logits: Tensor | None  # (B, num_answers)
    # Observed, not trained: "lm.<task>" -> (summed next-token loss, labelled tokens) of that task's samples.
    diagnostics: dict[str, tuple[float, int]] = field(default_factory=dict)


class TokenCodec:
    """Values → ids of the LM's location and time tokens (``<loc_i>``, ``<t_j>``; see avllm.textformat)."""

    def __init__(self, tokenizer, loc_bins: int, time_bins: int, time_step: float):
        self.loc_bins, self.time_bins, self.time_step = loc_bins, time_bins, time_step
        ids = tokenizer.convert_tokens_to_ids([f"<loc_{i}>" for i in range(loc_bins)])
        tids = tokenizer.convert_tokens_to_ids([f"<t_{j}>" for j in range(time_bins)])
        unk = tokenizer.unk_token_id
        if any(i is None or i == unk for i in ids + tids):
            raise ValueError("the tokenizer lacks the location / time tokens; train it with avllm.tokenizer")
        self._loc = torch.tensor(ids)
        self._time = torch.tensor(tids)

    def loc_ids(self, values: Tensor) -> Tensor:
        """Normalised coordinates in [0, 1], any shape → token ids of the same shape."""
        b = (values.detach().float().cpu() * self.loc_bins).floor().long().clamp(0, self.loc_bins - 1)
        return self._loc[b]

    def time_ids(self, seconds: Tensor) -> Tensor:
        """Seconds, any shape → token ids of the same shape (clamped to the last bin)."""
        b = (seconds.detach().float().cpu() / self.time_step).floor().long().clamp(0, self.time_bins - 1)
        return self._time[b]

    def neighbours(self, vocab_size: int) -> Tensor:
        """(V, 2) long: for every token id, the ids of the bin below and above it among the location tokens or
        among the time tokens (the bin itself at either end of its run); for every other token, itself twice."""
        table = torch.arange(vocab_size)[:, None].repeat(1, 2)  # (V, 2)
        for run in (self._loc, self._time):
            table[run, 0] = torch.cat([run[:1], run[:-1]])
            table[run, 1] = torch.cat([run[1:], run[-1:]])
        return table


def jitter_bins(
    ids: Tensor, where: Tensor, table: Tensor, p: float, generator: torch.Generator | None = None
) -> Tensor:
    """``ids`` (B, L) long with each position where ``where`` (B, L) is True moved, with probability ``p``, to
    one of its two neighbouring bins, below or above with equal odds (``table`` (V, 2), see
    ``TokenCodec.neighbours``; a token that is no bin stays itself). A new tensor; ``ids`` is not changed."""
    if p <= 0:
        return ids
    u = torch.rand(ids.shape, generator=generator).to(ids.device)  # (B, L)
    side = torch.randint(0, 2, ids.shape, generator=generator).to(ids.device)  # (B, L)
    moved = table.to(ids.device)[ids, side]  # (B, L)
    return torch.where(where & (u < p), moved, ids)


class AVLLM(nn.Module):
    """Receives its built parts (see ``build_model``)."""

    def __init__(
        self,
        cfg: ModelConfig,
        image_encoder: ImageEncoder,
        audio_encoder: AudioEncoder,
        lm: AVLanguageModel,
    ):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.image_encoder = image_encoder
        self.audio_encoder = audio_encoder
        self.img_proj = nn.Sequential(nn.LayerNorm(image_encoder.out_dim), nn.Linear(image_encoder.out_dim, d))
        self.aud_proj = nn.Sequential(nn.LayerNorm(audio_encoder.out_dim), nn.Linear(audio_encoder.out_dim, d))
        self.context = ContextualBlock(d, cfg.cad)
        self.slots = JointSlotAttention(d, cfg.slots)
        self.dense = DenseAV(d, cfg.dense)
        self.avopt = AVOpT(d, cfg.align)
        self.avace = AVACE(d, cfg.align)
        self.qformer = CausalQFormer(d, cfg.qformer)
        self.temporal = TemporalAlignment(d, cfg.cad)
        self.answer_chain = AnswerChain(d, cfg.cad, vocab_size=len(lm.tokenizer))
        self.box_head = BoxHead(d)
        self.activity_head = ActivityHead(d)
        self.tag_head = TagHead(d, cfg.num_tags) if cfg.num_tags > 0 else None
        self.class_map = ClassMapHead(d, cfg.num_tags) if cfg.num_tags > 0 and cfg.tag_locate else None
        self.lm = lm
        self.codec = TokenCodec(lm.tokenizer, cfg.lm.loc_bins, cfg.lm.time_bins, cfg.lm.time_step)
        # (V, 2) every token's neighbouring bins, for LMConfig.copy_jitter: built once, not saved in checkpoints.
        vocab = lm.lm.get_input_embeddings().num_embeddings
        table = self.codec.neighbours(vocab) if lm.copy is not None else None
        self.register_buffer("bin_neighbours", table, persistent=False)
        self.text_codec = GroundingCodec(cfg.lm.loc_bins, cfg.lm.time_bins, cfg.lm.time_step)
        self.lm_enabled = True  # the alignment stage turns the LM off (no prefix, no LM loss)
        # AV prefix: every group of tokens gets its own projection into the LM width H.
        h = lm.hidden_size
        k = cfg.dense.num_heads
        self.to_lm_patch = nn.Linear(d, h)
        self.to_lm_patch_maps = nn.Linear(3 + k, h)  # ssl, avace, box-attn, K dense heads per patch
        self.to_lm_audio = nn.Linear(d, h)
        self.to_lm_audio_maps = nn.Linear(2 + k, h)  # target-slot attention, activity, K dense heads per token
        self.to_lm_query = nn.Linear(d, h)
        self.to_lm_slot = nn.Linear(d, h)
        self.audio_pad = nn.Parameter(torch.zeros(h))
        self.to_lm_tags = nn.Linear(cfg.num_tags, h) if cfg.num_tags > 0 else None  # seen / heard probabilities
        self.group_embed = nn.Parameter(torch.zeros(8, h))  # patch, audio, query, slot, box, segment, seen, heard
        nn.init.normal_(self.group_embed, std=0.02)
        # Tag words: token id -> tag index (-1 = none); the named classes' (seen, heard) probabilities, and with
        # class maps their sounding probability, centre and activity curve, enter the LM and the answer chain at
        # the prompt words that name them (see _word_embeds).
        self.register_buffer("word_tag", tag_word_index(lm.tokenizer, cfg.tag_words), persistent=False)  # (V,)
        words = self.tag_head is not None and bool((self.word_tag >= 0).any())
        nw = 2 + (3 + WHEN_BINS if self.class_map is not None else 0)
        self.to_lm_words = nn.Sequential(nn.Linear(nw, h), nn.GELU(), nn.Linear(h, h)) if words else None
        self.to_chain_words = nn.Sequential(nn.Linear(nw, d), nn.GELU(), nn.Linear(d, d)) if words else None

    # ------------------------------------------------------------------------------------------------------------
    # Encoding and heads

    def encode(
        self,
        frames: Tensor,
        frame_times: Tensor,
        audio: Tensor,
        audio_len: Tensor | None = None,
        *,
        key_index: Tensor | None = None,
        box_mask: Tensor | None = None,
        tags: tuple[Tensor, Tensor, Tensor] | None = None,
        class_targets: ClassTargets | None = None,
        compute_loss: bool = False,
        generator: torch.Generator | None = None,
    ) -> AVFeatures:
        """frames (B, T, 3, S, S) in [0, 1]; frame_times (B, T); audio (B, N); audio_len (B,) or None;
        key_index (B,) the key frame's position (default T // 2); box_mask (B, S, S) key-frame target in [0, 1];
        tags (seen (B, C), heard (B, C), valid (B,)) class-tag targets; class_targets those of the class maps."""
        b, t = frames.shape[:2]
        tok = self.image_encoder(frames.flatten(0, 1))  # (B*T, P, Di)
        g = self.image_encoder.grid
        v = self.img_proj(tok).view(b, t, g * g, -1)  # (B, T, P, D)
        v = self.context(v, grid=g)
        a_tok, a_mask, a_times = self.audio_encoder(audio, audio_len)  # (B, Ta, Da), (B, Ta), (Ta,)
        a = self.aud_proj(a_tok)  # (B, Ta, D)
        if key_index is None:
            key_index = torch.full((b,), t // 2, dtype=torch.long, device=v.device)
        key_index = key_index.to(v.device).long()
        v_key = v[torch.arange(b, device=v.device), key_index]  # (B, P, D)

        losses: dict[str, Tensor] = {}
        so = self.slots(v_key, a, a_mask, grid=g, compute_loss=compute_loss)
        do = self.dense(v_key, a, a_mask, grid=g, compute_loss=compute_loss)
        oo = self.avopt(v_key, a, a_mask)
        grid_box = None
        if box_mask is not None:
            grid_box = F.adaptive_avg_pool2d(box_mask[:, None].float(), g).flatten(1)  # (B, P) area fractions
        ao = self.avace(v_key, a, a_mask, box_mask=grid_box if compute_loss else None)
        qo = self.qformer(v, frame_times, a, a_times, a_mask, compute_loss=compute_loss)
        # Proposals: the audio target slot asks "where", the image target slot asks "when".
        bo = self.box_head(v_key, so.aud_slots[:, 0], grid=g)
        act = self.activity_head(a, so.img_slots[:, 0])  # (B, Ta)
        to_ = self.tag_head(v_key, a, a_mask) if self.tag_head is not None else None
        cm = self.class_map(v_key, a, a_mask, grid=g) if self.class_map is not None else None
        if compute_loss:
            losses.update(so.losses)
            if grid_box is not None and (anchor := slot_anchor_loss(so.ssl_map, grid_box)) is not None:
                losses["slot_anchor"] = anchor
            if to_ is not None and tags is not None and (tl := tag_loss(to_, *tags)) is not None:
                losses["tags"] = tl
            if cm is not None and class_targets is not None:
                losses.update(class_map_loss(cm, class_targets, a_times, a_mask))
            losses.update(do.losses)
            losses["ot"] = oo.loss
            if ao.loss is not None:
                losses["avace"] = ao.loss
            losses.update(qo.losses)
            to = self.temporal(v, frame_times, a, a_times, a_mask, duration=float(frame_times.max()) + 1e-3,
                               generator=generator)
            losses["cad_temporal"] = to.loss
        return AVFeatures(
            frames=v, frame_times=frame_times, aud=a, aud_mask=a_mask, aud_times=a_times, grid=g,
            key_index=key_index, ssl_map=so.ssl_map, slot_img_attn=so.img_attn, slot_aud_attn=so.aud_attn,
            dense_heatmaps=do.heatmaps, dense_time=do.time_act, retrieval=do.scores,
            ot_plan=oo.plan, avace_attn=ao.attn, box=bo.box, activity=act, queries=qo.queries,
            img_slots=so.img_slots, aud_slots=so.aud_slots, losses=losses,
            seen_tags=to_.seen if to_ is not None else None, heard_tags=to_.heard if to_ is not None else None,
            class_maps=cm,
        )

    # ------------------------------------------------------------------------------------------------------------
    # The AV prefix the LM reads

    def _token_embeds(self, ids: Tensor) -> Tensor:
        return self.lm.lm.get_input_embeddings()(ids)

    def av_prefix(self, f: AVFeatures) -> Tensor:
        """(B, N, H) the AV prefix (see ``prefix_and_copy_ids``)."""
        return self.prefix_and_copy_ids(f)[0]

    def prefix_and_copy_ids(self, f: AVFeatures) -> tuple[Tensor, Tensor]:
        """The AV prefix and, for each of its tokens, the token id the LM's copy head may copy from it: (B, N, H)
        and (B, N) long, -1 except at the box and segment proposals.

        The prefix: patch tokens with their maps and positions, audio tokens with their activations and times,
        Q-Former queries, slots, the box and segment proposals as location / time token embeddings, and the seen
        and heard class-tag probabilities (two tokens, when the model has a tag head)."""
        codec = self.codec
        b, p = f.ssl_map.shape
        dev = f.ssl_map.device
        g = f.grid
        # Patches: features + per-patch maps + position as the LM's own location-token embeddings.
        maps = torch.cat(
            [
                f.ssl_map[..., None],
                (f.avace_attn * p).clamp(max=4.0)[..., None] / 4.0,
                self._box_attn(f)[..., None],
                f.dense_heatmaps.flatten(2).transpose(1, 2),
            ],
            dim=-1,
        )  # (B, P, 3 + K)
        centres = grid_centres(g, dev)  # (P, 2)
        pos_ids = codec.loc_ids(centres)  # (P, 2) token ids of x and y
        pos = self._token_embeds(pos_ids.to(dev)).sum(1)  # (P, H)
        patch = self.to_lm_patch(self.key_frame(f)) + self.to_lm_patch_maps(maps) + pos
        patch = patch + self.group_embed[0]
        # Audio tokens: features + activations + time as time-token embeddings.
        amaps = torch.cat(
            [f.slot_aud_attn[:, :1].transpose(1, 2), torch.sigmoid(f.activity.detach())[..., None],
             f.dense_time.transpose(1, 2)],
            dim=-1,
        )  # (B, Ta, 2 + K)
        tpos = self._token_embeds(codec.time_ids(f.aud_times).to(dev))  # (Ta, H)
        audio = self.to_lm_audio(f.aud) + self.to_lm_audio_maps(amaps) + tpos
        audio = torch.where(f.aud_mask[..., None], audio, self.audio_pad.to(audio.dtype))
        audio = audio + self.group_embed[1]
        queries = self.to_lm_query(f.queries) + self.group_embed[2]
        slots = self.to_lm_slot(torch.cat([f.img_slots, f.aud_slots], 1)) + self.group_embed[3]
        # Proposals as the embeddings of the tokens the LM would write.
        box_ids = codec.loc_ids(f.box.detach().view(b, 2, 2)).view(b, 4).to(dev)  # (B, 4)
        box_tok = self._token_embeds(box_ids) + self.group_embed[4]
        seg = self.proposed_segments(f)  # (B, 2) seconds
        seg_ids = codec.time_ids(seg).to(dev)  # (B, 2)
        seg_tok = self._token_embeds(seg_ids) + self.group_embed[5]
        parts = [patch, audio, queries, slots, box_tok, seg_tok]
        if self.to_lm_tags is not None and f.seen_tags is not None and f.heard_tags is not None:
            tag_tok = self.to_lm_tags(torch.stack([f.seen_tags, f.heard_tags], 1).sigmoid())  # (B, 2, H)
            parts.append(tag_tok + self.group_embed[6:8])
        copy_ids = [torch.full(x.shape[:2], -1, dtype=torch.long, device=dev) for x in parts]
        copy_ids[4], copy_ids[5] = box_ids, seg_ids
        return torch.cat(parts, dim=1), torch.cat(copy_ids, dim=1)

    @staticmethod
    def key_frame(f: AVFeatures) -> Tensor:
        """(B, P, D) the key frame's tokens."""
        return f.frames[torch.arange(f.frames.shape[0], device=f.frames.device), f.key_index]

    def _box_attn(self, f: AVFeatures) -> Tensor:
        """(B, P) the box proposal as an area-fraction mask on the patch grid."""
        return box_mask_on_grid(f.box.detach(), f.grid)

    @torch.no_grad()
    def proposed_segments(self, f: AVFeatures, threshold: float = 0.5) -> Tensor:
        """(B, 2) seconds: the longest run of tokens whose activity probability passes ``threshold``
        (start = first token's start, end = last token's end); [0, 0] when none does."""
        prob = torch.sigmoid(f.activity) * f.aud_mask
        on = (prob > threshold).cpu()
        times = f.aud_times.cpu()
        half = (times[1] - times[0]) / 2 if times.numel() > 1 else torch.tensor(0.0)
        out = torch.zeros(on.shape[0], 2)
        for i, row in enumerate(on.tolist()):
            best, start, best_span = 0, None, None
            for j, flag in enumerate(row + [False]):
                if flag and start is None:
                    start = j
                elif not flag and start is not None:
                    if j - start > best:
                        best, best_span = j - start, (start, j - 1)
                    start = None
            if best_span is not None:
                out[i, 0] = (times[best_span[0]] - half).clamp_min(0)
                out[i, 1] = times[best_span[1]] + half
        return out.to(f.activity.device)

    def _word_embeds(
        self, f: AVFeatures, ids: Tensor, mask: Tensor, proj: nn.Module | None, rows: Tensor | None = None
    ) -> Tensor | None:
        """(R, L, W) vectors for the prompt tokens ``ids`` (R, L) where ``mask`` (R, L) is True and the token names
        a tag class: ``proj`` of that class's features (``word_features``) in the clip ``rows`` (R,) names (default:
        text i reads clip i); zero elsewhere. None without tag words."""
        if proj is None or f.seen_tags is None or f.heard_tags is None:
            return None
        tag = self.word_tag[ids.clamp(0, self.word_tag.numel() - 1)]  # (R, L)
        on = (tag >= 0) & mask.bool()
        vec = proj(self.word_features(f).to(next(proj.parameters()).dtype))  # (B, C, W)
        if rows is not None:
            vec = vec[rows]  # (R, C, W)
        picked = torch.gather(vec, 1, tag.clamp_min(0)[..., None].expand(-1, -1, vec.shape[-1]))  # (B, L, W)
        return picked * on[..., None].to(picked.dtype)

    def word_features(self, f: AVFeatures) -> Tensor:
        """(B, C, F) what a tag word carries about its class: seen and heard probabilities, and with class maps the
        sounding probability, the centre (x, y) and the activity curve in WHEN_BINS bins (F = 2 or 5 + WHEN_BINS)."""
        feats = [f.seen_tags.sigmoid()[..., None], f.heard_tags.sigmoid()[..., None]]
        if self.class_map is not None and f.class_maps is not None:
            feats.append(self.class_map.word_features(f.class_maps, f.aud_mask))
        return torch.cat(feats, -1)

    # ------------------------------------------------------------------------------------------------------------
    # Training forward

    def forward(self, batch: dict, *, generator: torch.Generator | None = None) -> AVOutput:
        has_targets = "answer" in batch
        f = self.encode(
            batch["frames"], batch["frame_times"], batch["audio"], batch.get("audio_len"),
            key_index=batch.get("key_index"), box_mask=batch.get("box_mask"), compute_loss=has_targets,
            tags=_batch_tags(batch), class_targets=_batch_class_targets(batch), generator=generator,
        )
        losses = dict(f.losses)
        lm_logits = avqa_logits = None
        diagnostics: dict[str, tuple[float, int]] = {}
        dev = f.ssl_map.device
        if has_targets:
            # Proposal targets: the grounding / temporal text's own target when the text asks for one object,
            # else the clip's single sounding visible object (every task), else nothing.
            box_t, box_ok, act_t, act_ok = self._proposal_targets(batch, f)
            losses["box"] = box_loss(f.box, box_t, box_ok)
            losses["activity"] = activity_loss(f.activity, act_t, f.aud_mask & act_ok[:, None])
        if "answer" in batch and self.lm_enabled:
            prefix, copy_ids = self.prefix_and_copy_ids(f)  # (B, N, H), (B, N)
            prompts, answers, tasks, rows = _lm_texts(batch, prefix.shape[0])  # R texts, rows (R,) their clips
            rows = rows.to(dev)
            prefix, copy_ids = prefix[rows], copy_ids[rows]  # (R, N, H), (R, N): one prefix per clip, shared
            prompts = self.lm_prompts(prompts)
            answers = [self.text_codec.encode_text(a) for a in answers]
            enc = self.lm.build_inputs(prompts, answers, num_av_tokens=prefix.shape[1])
            enc = {k: v.to(dev) for k, v in enc.items()}
            prompt_part = (enc["labels"] == IGNORE_INDEX) & enc["attention_mask"].bool()  # (R, L)
            words = self._word_embeds(f, enc["input_ids"], prompt_part, self.to_lm_words, rows)
            inputs = enc["input_ids"]
            if self.training and self.bin_neighbours is not None:  # LMConfig.copy_jitter; the labels stay
                answer_part = enc["labels"] != IGNORE_INDEX  # (R, L)
                inputs = jitter_bins(inputs, answer_part, self.bin_neighbours, self.cfg.lm.copy_jitter, generator)
            lm_logits, vocab = self.lm.scores(inputs, enc["attention_mask"], prefix, words, copy_ids)
            ce, valid = token_losses(lm_logits, enc["labels"])  # (R, L-1): once, for the term and the log
            losses["lm"] = reduce_token_losses(ce, valid, self.cfg.lm.loss_norm)
            if self.lm.copy is not None:  # its vocabulary half also fits every token on its own
                losses["lm_vocab"] = next_token_loss(vocab, enc["labels"], self.cfg.lm.loss_norm)
            diagnostics = lm_task_losses(ce, valid, tasks)
        if "answer_index" in batch and bool((batch["answer_index"] >= 0).any()):
            ao = self._ask_chain(f, list(batch["prompt"]), batch["answer_index"].to(dev))
            avqa_logits = ao.logits
            if ao.loss is not None:
                losses["cad_avqa"] = ao.loss
        loss = None
        if has_targets and losses:
            w = self.cfg.losses
            loss = sum(getattr(w, k) * v for k, v in losses.items())
        return AVOutput(features=f, losses=losses, loss=loss, lm_logits=lm_logits, avqa_logits=avqa_logits,
                        diagnostics=diagnostics)

    @staticmethod
    def _proposal_targets(batch: dict, f: AVFeatures) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(B, 4) box target + (B,) valid, (B, Ta) activity target + (B,) valid."""
        dev = f.box.device
        b = f.box.shape[0]
        box_t = torch.zeros(b, 4, device=dev)
        box_ok = torch.zeros(b, dtype=torch.bool, device=dev)
        act_t = torch.zeros_like(f.activity)
        act_ok = torch.zeros(b, dtype=torch.bool, device=dev)
        has_source = batch.get("has_source", torch.zeros(b, dtype=torch.long))
        for i, task in enumerate(batch["task"]):
            boxes = batch["boxes"][i].view(-1, 4)
            if task == "ground" and len(boxes) == 1:
                box_t[i], box_ok[i] = boxes[0].to(dev), True
            elif bool(has_source[i]):
                box_t[i], box_ok[i] = batch["source_box"][i].to(dev), True
            segs = None
            if task == "temporal" and len(batch["segments"][i]):
                segs = batch["segments"][i]
            elif bool(has_source[i]):
                segs = batch["source_segments"][i]
            if segs is not None:
                for s0, s1 in segs.view(-1, 2).tolist():
                    inside = (f.aud_times >= s0) & (f.aud_times < s1)  # (Ta,)
                    act_t[i] = torch.maximum(act_t[i], inside.float())
                act_ok[i] = True
        return box_t, box_ok, act_t, act_ok

    # ------------------------------------------------------------------------------------------------------------
    # Inference

    @torch.no_grad()
    def generate(self, f: AVFeatures, prompts: list[str], max_new_tokens: int = 32) -> list[str]:
        """Answers in display form (boxes ``[x0, y0, x1, y1]``, segments ``[start, end]`` in seconds), one prompt
        per clip in ``f``."""
        prefix, copy_ids = self.prefix_and_copy_ids(f)
        if len(prompts) != prefix.shape[0]:
            raise ValueError(f"{len(prompts)} prompts for {prefix.shape[0]} clips")
        raw = self.lm.generate(self.lm_prompts(prompts), prefix, max_new_tokens=max_new_tokens, av_copy_ids=copy_ids,
                               word_fn=lambda ids: self._word_embeds(f, ids, ids != self.lm.tokenizer.pad_token_id,
                                                                     self.to_lm_words))  # fmt: skip
        return [self.text_codec.decode_text(r).strip() for r in raw]

    def lm_prompts(self, prompts: list[str]) -> list[str]:
        """Prompts as the LM and the answer chain read them: with ``LMConfig.prompt_time_tokens``, times in seconds
        become time tokens; otherwise as written."""
        if not self.cfg.lm.prompt_time_tokens:
            return list(prompts)
        return [self.text_codec.encode_prompt(p) for p in prompts]

    @torch.no_grad()
    def answer_classes(self, f: AVFeatures, prompts: list[str]) -> Tensor:
        """(B, num_answers) CAD answer-chain logits over the fixed AVQA answer set."""
        return self._ask_chain(f, prompts).logits

    def _ask_chain(self, f: AVFeatures, prompts: list[str], answer_index: Tensor | None = None):
        """The CAD answer chain over the key frame and the audio, for questions tokenised by the LM's tokenizer."""
        q = self.lm.tokenizer(self.lm_prompts(prompts), padding=True, return_tensors="pt")
        dev = f.aud.device
        ids, mask = q["input_ids"].to(dev), q["attention_mask"].to(dev).bool()
        return self.answer_chain(
            ids, mask, self.key_frame(f), f.aud, f.aud_mask, answer_index=answer_index,
            word_embeds=self._word_embeds(f, ids, mask, self.to_chain_words),
        )


def _lm_texts(batch: dict, num_clips: int) -> tuple[list[str], list[str], list[str], Tensor]:
    """The texts the LM reads: each clip's own (prompt, answer, task), then the batch's extra texts (see
    ``avllm.data.collate``); and for each, the batch row of its clip: (R,) long, R = B + E."""
    prompts, answers, tasks = list(batch["prompt"]), list(batch["answer"]), list(batch.get("task", []))
    rows = torch.arange(num_clips)
    if batch.get("extra_prompt"):
        prompts += list(batch["extra_prompt"])
        answers += list(batch["extra_answer"])
        tasks += list(batch["extra_task"])
        rows = torch.cat([rows, batch["extra_clip"].long().cpu()])
    return prompts, answers, tasks, rows


def _batch_tags(batch: dict) -> tuple[Tensor, Tensor, Tensor] | None:
    """(seen (B, C), heard (B, C), valid (B,) bool) from a batch that carries class tags, else None."""
    if "seen_tags" not in batch or batch["seen_tags"].shape[-1] == 0:
        return None
    return batch["seen_tags"], batch["heard_tags"], batch["tags_valid"].bool()


def _batch_class_targets(batch: dict) -> ClassTargets | None:
    """The class maps' targets from a batch that carries them, else None."""
    if "class_centre" not in batch or batch["seen_tags"].shape[-1] == 0:
        return None
    return ClassTargets(seen=batch["seen_tags"], sounding=batch["sound_tags"], centre=batch["class_centre"],
                        segments=batch["class_segments"], valid=batch["tags_valid"].bool())  # fmt: skip


def tag_word_index(tokenizer, words: list[str]) -> Tensor:
    """(V,) long: for each token id, the index of the tag word it spells (``word`` or `` word``, as one token of
    ``tokenizer``), else -1. A word that no single token spells gets no entry (its tag still reaches the LM through
    the tag tokens of the prefix)."""
    out = torch.full((len(tokenizer),), -1, dtype=torch.long)
    for i, w in enumerate(words):
        for variant in (w, f" {w}"):
            ids = tokenizer(variant, add_special_tokens=False)["input_ids"]
            if len(ids) == 1 and 0 <= ids[0] < len(out):
                out[ids[0]] = i
    return out


def build_model(cfg: ModelConfig, tokenizer=None) -> AVLLM:
    """Compose a model from its config. ``tokenizer``: the project tokenizer of a ``llama`` LM (trained by
    ``avllm.trainutil.build_tokenizer_for`` or read from a checkpoint); an ``hf`` LM brings its own, to which the
    grounding codec's location and time tokens are added."""
    specials = GroundingCodec(cfg.lm.loc_bins, cfg.lm.time_bins, cfg.lm.time_step).special_tokens()
    return AVLLM(
        cfg,
        image_encoder=build_image_encoder(cfg.image),
        audio_encoder=build_audio_encoder(cfg.audio),
        lm=build_llm(cfg.lm, tokenizer, special_tokens=specials if tokenizer is None else None),
    )
