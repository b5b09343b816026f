"""The language model: projected audio-visual tokens spliced into a chat prompt at ``<av>`` placeholders.

    lm = build_llm(cfg.lm, tokenizer)                         # AVLanguageModel
    batch = lm.build_inputs(prompts, answers, num_av_tokens=N)
    logits, loss = lm(batch["input_ids"], batch["attention_mask"], av_embeds, batch["labels"])   # av (B, N, H)
    texts = lm.generate(prompts, av_embeds, max_new_tokens=48)

With ``LMConfig.copy``, ``av_copy_ids`` (B, N) names, for each AV token, the token id it stands for (-1: none) and
the LM's next-token distribution becomes a pointer-generator mixture (see :class:`CopyHead`): both ``forward`` and
``generate`` then give log-probabilities of the mixture in place of raw logits.

Chat template (one turn; roles are plain text, so any tokenizer can write them)::

    <bos><av>...<av> user: {prompt} assistant: {answer}<eos>

The prompt part and the answer part are tokenised separately and concatenated, so the label mask is exact:
labels are -100 everywhere except the answer tokens and the closing ``<eos>``. Training batches are right-padded;
generation batches are left-padded so that every row's next token follows its own last prompt token. A tokenizer
without a bos token (some hub models) starts the prompt at the first ``<av>``.

LM kinds (``LMConfig.arch``):
- ``llama``: a ``LlamaForCausalLM`` built from the config fields (random init, tied input/output embeddings) over
  the project tokenizer (:func:`avllm.tokenizer.train_tokenizer`).
- ``hf``: ``AutoModelForCausalLM`` + ``AutoTokenizer`` from a local directory or a cached hub id. ``<av>``, a pad
  token if missing, and the grounding tokens are added, and the embeddings resized (new rows start at the mean).
- ``lora``: LoRA adapters on the q/k/v/o projections (peft); the base is frozen except the embedding rows of the
  added tokens (and their lm_head rows when untied), trained through peft's ``trainable_token_indices``: the
  ``<loc_i>``/``<t_j>`` tokens must be learnable for grounding, the old vocabulary stays as pretrained.
- ``freeze`` (without lora): every LM parameter frozen; only the projector and heads outside train.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from avllm.config import LMConfig
from avllm.encoders import WeightsError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["AV_TOKEN", "IGNORE_INDEX", "AVLanguageModel", "CopyHead", "build_llm", "copy_mixture", "lm_task_losses",
           "next_token_loss", "reduce_token_losses", "token_losses"]

AV_TOKEN = "<av>"
IGNORE_INDEX = -100  # label value that the loss skips
USER, ASSISTANT = " user:", " assistant:"


def token_losses(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Per-position cross-entropy of ``logits`` (B, L, V) at t against ``labels`` (B, L) at t + 1: ``(ce, valid)``,
    both (B, L - 1); ``ce`` is 0 where ``valid`` is false (``IGNORE_INDEX``)."""
    shift_labels = labels[:, 1:]  # (B, L-1)
    valid = shift_labels != IGNORE_INDEX  # (B, L-1)
    ce = nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), shift_labels.clamp_min(0),
                                     reduction="none")  # fmt: skip
    return ce * valid, valid


def next_token_loss(logits: Tensor, labels: Tensor, norm: str = "token") -> Tensor:
    """Cross-entropy of ``logits`` (B, L, V) at position t against ``labels`` (B, L) at t + 1, skipping
    ``IGNORE_INDEX``. ``norm="token"``: the mean over every labelled token of the batch (what the transformers LMs
    compute). ``norm="sample"``: each row's mean over its own labelled tokens, then the mean over rows that have
    any, so a one-word answer weighs as much as a caption. A batch with no labelled token gives 0 (with a graph).
    """
    return reduce_token_losses(*token_losses(logits, labels), norm)


def reduce_token_losses(ce: Tensor, valid: Tensor, norm: str = "token") -> Tensor:
    """The scalar of :func:`next_token_loss` from :func:`token_losses`' ``(ce, valid)``, both (B, L - 1)."""
    if norm == "token":
        return ce.sum() / valid.sum().clamp_min(1)
    if norm != "sample":
        raise ValueError(f"unknown loss_norm {norm!r}; known: token, sample")
    counts = valid.sum(1)  # (B,)
    has = counts > 0
    per_row = ce.sum(1) / counts.clamp_min(1)  # (B,)
    return (per_row * has).sum() / has.sum().clamp_min(1)


def lm_task_losses(ce: Tensor, valid: Tensor, tasks: list[str]) -> dict[str, tuple[float, int]]:
    """``{"lm.<task>": (summed next-token loss, labelled tokens)}`` over the rows of each task, from
    :func:`token_losses`' ``(ce, valid)`` (B, L - 1) and one task name per row ("" rows are skipped). Sums, not
    means, so that the micro-batches and steps of a log line add up to the exact per-token mean of each task."""
    if len(tasks) != ce.shape[0]:
        return {}
    sums, counts = ce.detach().sum(1).tolist(), valid.sum(1).tolist()
    out: dict[str, tuple[float, int]] = {}
    for task, s, n in zip(tasks, sums, counts):
        if task and n:
            s0, n0 = out.get(f"lm.{task}", (0.0, 0))
            out[f"lm.{task}"] = (s0 + s, n0 + int(n))
    return out


class CopyHead(nn.Module):
    """A pointer from every position of the sequence to a few source tokens earlier in it, and a gate.

    ``h`` (B, L, H) are the LM's last hidden states, ``src_h`` (B, S, H) those at the S source positions
    ``src_pos`` (B, S). Each source is told apart by its own learned slot vector (its index j among the sources),
    so that the four coordinates of a box can be copied in order. Returns ``attn`` (B, L, S), a distribution over
    the sources a position can see (source position <= its own; all zeros where it sees none), and ``gate``
    (B, L, 1) in [0, 1), 0 where no source is visible. The gate starts mostly closed (sigmoid(-2) = 0.12).
    """

    max_sources = 8

    def __init__(self, hidden: int, dim: int = 64) -> None:
        super().__init__()
        self.q = nn.Linear(hidden, dim)
        self.k = nn.Linear(hidden, dim)
        self.slot = nn.Embedding(self.max_sources, dim)
        self.gate = nn.Linear(hidden, 1)
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, -2.0)

    def forward(self, h: Tensor, src_h: Tensor, src_pos: Tensor, start: int = 0) -> tuple[Tensor, Tensor]:
        """``start``: the sequence position of ``h``'s first row (decoding one token at a time with a cache)."""
        n = h.shape[1]
        s = src_h.shape[1]
        if s > self.max_sources:
            raise ValueError(f"{s} copy sources; the head has slots for {self.max_sources}")
        q = self.q(h)  # (B, L, d)
        k = self.k(src_h) + self.slot.weight[:s]  # (B, S, d)
        scores = torch.einsum("bld,bsd->bls", q, k) / q.shape[-1] ** 0.5  # (B, L, S)
        seen = src_pos[:, None, :] <= torch.arange(start, start + n, device=h.device)[None, :, None]  # (B, L, S)
        attn = torch.softmax(scores.float().masked_fill(~seen, float("-inf")), dim=-1).nan_to_num(0.0)
        gate = torch.sigmoid(self.gate(h).float()) * seen.any(-1, keepdim=True)  # (B, L, 1)
        return attn, gate


def copy_mixture(logits: Tensor, attn: Tensor, gate: Tensor, src_ids: Tensor) -> Tensor:
    """Log-probabilities (B, L, V) float of ``(1 - gate) softmax(logits) + gate * sum_j attn_j onehot(src_ids_j)``
    from ``logits`` (B, L, V), ``attn`` (B, L, S), ``gate`` (B, L, 1) and ``src_ids`` (B, S) token ids. Every row
    is a distribution (it sums to 1 when ``attn`` does, or when ``gate`` is 0)."""
    b, n, v = logits.shape
    copy = torch.zeros(b, n, v, device=logits.device, dtype=torch.float32)
    copy.scatter_add_(2, src_ids[:, None, :].expand(b, n, -1), attn.float())  # (B, L, V)
    # Sum in log space; the clamp keeps log(0) finite and blocks its gradient.
    return torch.logaddexp(torch.log1p(-gate) + torch.log_softmax(logits.float(), dim=-1),
                           torch.log(gate.clamp_min(1e-30)) + torch.log(copy.clamp_min(1e-30)))


class AVLanguageModel(nn.Module):
    """A causal LM that reads audio-visual embeddings at ``<av>`` placeholder tokens.

    ``tokenizer`` must know ``<av>`` and have eos and pad tokens. ``lm`` is a built ``PreTrainedModel`` (possibly a
    peft model); when None, a random-init Llama is built from ``cfg`` (see :func:`build_llm`).
    """

    def __init__(self, cfg: LMConfig, tokenizer: PreTrainedTokenizerBase, lm: PreTrainedModel | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.av_id = _token_id(tokenizer, AV_TOKEN)
        if tokenizer.eos_token_id is None or tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer needs eos and pad tokens")
        self.lm = lm if lm is not None else _llama_from_config(cfg, len(tokenizer))
        self.hidden_size = int(self.lm.get_input_embeddings().embedding_dim)
        self.max_positions = int(getattr(self.lm.config, "max_position_embeddings", cfg.max_positions))
        self.copy = CopyHead(self.hidden_size) if cfg.copy else None

    # ------------------------------------------------------------------------------------------------------------
    # text -> ids

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _prompt_ids(self, prompt: str, num_av_tokens: int) -> list[int]:
        bos = [] if self.tokenizer.bos_token_id is None else [self.tokenizer.bos_token_id]
        return bos + [self.av_id] * num_av_tokens + self._encode(f"{USER} {prompt.strip()}{ASSISTANT}")

    def build_inputs(self, prompts: list[str], answers: list[str] | None, num_av_tokens: int) -> dict[str, Tensor]:
        """Token ids of the chat template for a batch.

        Returns ``input_ids`` (B, L) long, ``attention_mask`` (B, L) long (1 = real token) and, when answers are
        given, ``labels`` (B, L) long (-100 outside answer + eos). Right padding with answers, left padding without
        (generation). Raises ValueError if a row is longer than the LM's positions.
        """
        if answers is not None and len(answers) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
        rows, labels = [], []
        for i, prompt in enumerate(prompts):
            ids = self._prompt_ids(prompt, num_av_tokens)
            lab = [IGNORE_INDEX] * len(ids)
            if answers is not None:
                a = answers[i].strip()
                # No space before a leading grounding token: otherwise most answers would open with the same
                # bare-space token and the first real decision would move one step later.
                ans = self._encode(a if a.startswith("<") else f" {a}") + [self.tokenizer.eos_token_id]
                ids, lab = ids + ans, lab + ans
            if len(ids) > self.max_positions:
                raise ValueError(f"row {i} has {len(ids)} tokens, more than the LM's {self.max_positions} positions")
            rows.append(ids)
            labels.append(lab)
        L, pad = max(len(r) for r in rows), self.tokenizer.pad_token_id
        left = answers is None

        def padded(seq: list[int], value: int) -> list[int]:
            fill = [value] * (L - len(seq))
            return fill + seq if left else seq + fill

        out = {
            "input_ids": torch.tensor([padded(r, pad) for r in rows], dtype=torch.long),  # (B, L)
            "attention_mask": torch.tensor([padded([1] * len(r), 0) for r in rows], dtype=torch.long),  # (B, L)
        }
        if answers is not None:
            out["labels"] = torch.tensor([padded(lab, IGNORE_INDEX) for lab in labels], dtype=torch.long)
        return out

    # ------------------------------------------------------------------------------------------------------------
    # ids -> embeddings -> logits

    def splice(self, input_ids: Tensor, av_embeds: Tensor | None, word_embeds: Tensor | None = None) -> Tensor:
        """Token embeddings (B, L, H) of ``input_ids`` (B, L) with the ``<av>`` positions replaced, in order, by
        ``av_embeds`` (B, N, H), plus ``word_embeds`` (B, L, H) when given (what the model adds to some words of
        the prompt). Raises ValueError naming both counts when a row has a number of ``<av>`` tokens other than N."""
        embeds = self.lm.get_input_embeddings()(input_ids)  # (B, L, H)
        if word_embeds is not None:
            if word_embeds.shape != embeds.shape:
                raise ValueError(f"word_embeds {tuple(word_embeds.shape)} does not fit embeddings {tuple(embeds.shape)}")
            embeds = embeds + word_embeds.to(embeds.dtype)
        is_av = input_ids == self.av_id  # (B, L)
        counts = is_av.sum(dim=1)  # (B,)
        n = 0 if av_embeds is None else av_embeds.shape[1]
        wrong = (counts != n).nonzero().flatten().tolist()
        if wrong:
            i = wrong[0]
            raise ValueError(f"row {i} of input_ids has {int(counts[i])} {AV_TOKEN} tokens but av_embeds has {n} "
                             f"per row ({len(wrong)} rows differ)")
        if n == 0:
            return embeds
        if av_embeds.shape[0] != input_ids.shape[0] or av_embeds.shape[2] != embeds.shape[2]:
            raise ValueError(f"av_embeds {tuple(av_embeds.shape)} does not fit input_ids {tuple(input_ids.shape)} "
                             f"with hidden size {embeds.shape[2]}")
        mask = is_av.unsqueeze(-1).expand_as(embeds)  # (B, L, H)
        return embeds.masked_scatter(mask, av_embeds.to(embeds.dtype))  # row-major: row b gets av_embeds[b]

    def _copy_sources(self, input_ids: Tensor, av_copy_ids: Tensor) -> tuple[Tensor, Tensor]:
        """Sequence positions (B, S) and token ids (B, S) of the ``<av>`` tokens whose ``av_copy_ids`` (B, N) are
        >= 0 (the same count in every row)."""
        b, n = av_copy_ids.shape
        pos = (input_ids == self.av_id).nonzero()[:, 1].view(b, n)  # (B, N), in order (splice checked the count)
        use = av_copy_ids.to(input_ids.device) >= 0  # (B, N)
        counts = use.sum(1)
        if bool((counts != counts[0]).any()):
            raise ValueError(f"every row needs the same number of copy sources, got {counts.tolist()}")
        s = int(counts[0])
        return pos[use].view(b, s), av_copy_ids.to(input_ids.device)[use].view(b, s)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        av_embeds: Tensor | None,
        labels: Tensor | None = None,
        word_embeds: Tensor | None = None,
        av_copy_ids: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Logits (B, L, V) float and, with ``labels`` (B, L), the next-token cross-entropy over labelled tokens
        (scalar; averaged as ``cfg.loss_norm`` says, see :func:`next_token_loss`), else None. ``word_embeds``
        (B, L, H): added to the token embeddings (see ``splice``). With the copy head and ``av_copy_ids`` (B, N),
        the "logits" are the log-probabilities of the copy mixture (:func:`copy_mixture`), for which the same
        cross-entropy is the mixture's negative log-likelihood."""
        scores, _ = self.scores(input_ids, attention_mask, av_embeds, word_embeds, av_copy_ids)
        loss = next_token_loss(scores, labels, self.cfg.loss_norm) if labels is not None else None
        return scores, loss

    def scores(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        av_embeds: Tensor | None,
        word_embeds: Tensor | None = None,
        av_copy_ids: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``(scores, logits)``, both (B, L, V): the next-token scores :meth:`forward` returns, and the vocabulary
        head's own logits beside them (the same tensor without the copy head; with it, the generating half of the
        mixture, which training may also fit on its own)."""
        embeds = self.splice(input_ids, av_embeds, word_embeds)  # (B, L, H)
        copy = self.copy is not None and av_copy_ids is not None
        out = self.lm(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False, output_hidden_states=copy)
        if not copy:
            return out.logits, out.logits
        pos, ids = self._copy_sources(input_ids, av_copy_ids)
        h = out.hidden_states[-1]  # (B, L, H)
        attn, gate = self.copy(h, _at(h, pos), pos)
        return copy_mixture(out.logits, attn, gate, ids), out.logits

    @torch.no_grad()
    def generate(
        self,
        prompts: list[str],
        av_embeds: Tensor | None,
        max_new_tokens: int = 48,
        greedy: bool = True,
        word_fn: Callable[[Tensor], Tensor] | None = None,
        av_copy_ids: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> list[str]:
        """Answers to ``prompts`` given ``av_embeds`` (B, N, H): one string per prompt, cut at the first eos, with
        pad/bos/eos/<av> removed and the grounding tokens (``<loc_i>``, ``<t_j>``) kept as text. ``word_fn``: the
        prompt's ``input_ids`` (B, L) -> ``word_embeds`` (B, L, H) added to them (none for generated tokens).
        Greedy (the most likely token), or sampled from the whole distribution (``greedy=False``). Decoding runs
        with the LM's key/value cache, positions counted from each row's first real token (left padding), and,
        with the copy head and ``av_copy_ids``, from the copy mixture."""
        n = 0 if av_embeds is None else av_embeds.shape[1]
        batch = self.build_inputs(prompts, None, n)
        device = self.lm.get_input_embeddings().weight.device
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        words = None if word_fn is None else word_fn(ids)
        embeds = self.splice(ids, None if av_embeds is None else av_embeds.to(device), words)  # (B, L, H)
        tok = self.tokenizer
        copy = self.copy is not None and av_copy_ids is not None
        src_pos = src_ids = src_h = None
        if copy:
            src_pos, src_ids = self._copy_sources(ids, av_copy_ids)
        was_training = self.training
        self.eval()
        try:
            pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)  # (B, L)
            out = self.lm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, use_cache=True,
                          output_hidden_states=copy)
            if copy:
                src_h = _at(out.hidden_states[-1], src_pos)  # (B, S, H): the sources' states, read once
            b = ids.shape[0]
            done = torch.zeros(b, dtype=torch.bool, device=device)
            new: list[Tensor] = []
            for step in range(max_new_tokens):
                scores = out.logits[:, -1:].float()  # (B, 1, V)
                if copy:
                    attn, gate = self.copy(out.hidden_states[-1][:, -1:], src_h, src_pos, start=ids.shape[1] - 1 + step)
                    scores = copy_mixture(scores, attn, gate, src_ids)
                scores = scores[:, 0]  # (B, V)
                if greedy:
                    nxt = scores.argmax(-1)
                else:
                    nxt = torch.multinomial(torch.softmax(scores, -1), 1, generator=generator)[:, 0]
                nxt = torch.where(done, torch.full_like(nxt, tok.pad_token_id), nxt)
                new.append(nxt)
                done = done | (nxt == tok.eos_token_id)
                if bool(done.all()) or step + 1 == max_new_tokens:
                    break
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
                pos = pos[:, -1:] + 1
                out = self.lm(inputs_embeds=self.lm.get_input_embeddings()(nxt[:, None]), attention_mask=mask,
                              position_ids=pos, past_key_values=out.past_key_values, use_cache=True,
                              output_hidden_states=copy)
        finally:
            self.train(was_training)
        drop = {tok.pad_token_id, tok.bos_token_id, self.av_id}
        texts = []
        for row in (torch.stack(new, 1).tolist() if new else [[] for _ in prompts]):
            if tok.eos_token_id in row:
                row = row[: row.index(tok.eos_token_id)]
            texts.append(tok.decode([t for t in row if t not in drop], skip_special_tokens=False).strip())
        return texts


def _at(h: Tensor, pos: Tensor) -> Tensor:
    """(B, S, H) the rows of ``h`` (B, L, H) at the positions ``pos`` (B, S)."""
    return torch.gather(h, 1, pos[..., None].expand(-1, -1, h.shape[-1]))


def _token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    tid = tokenizer.convert_tokens_to_ids(token)
    if tid is None or tid == tokenizer.unk_token_id or tokenizer.convert_ids_to_tokens(tid) != token:
        raise ValueError(f"the tokenizer has no {token} token")
    return int(tid)


def _llama_from_config(cfg: LMConfig, vocab_size: int) -> PreTrainedModel:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.kv_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_positions,
        tie_word_embeddings=True,
        pad_token_id=0,
    )
    return LlamaForCausalLM(config)


# ----------------------------------------------------------------------------------------------------------------
# Builders


def build_llm(
    cfg: LMConfig, tokenizer: PreTrainedTokenizerBase | None = None, special_tokens: list[str] | None = None
) -> AVLanguageModel:
    """The AV language model of ``cfg``.

    ``llama``: ``tokenizer`` (the project tokenizer) is required. ``hf``: the model's own tokenizer is loaded; the
    tokens added to it are ``<av>`` plus ``special_tokens``, or, when None, the extra special tokens of
    ``tokenizer`` (so the project tokenizer can carry the grounding codec's tokens to a hub model).
    Raises WeightsError when an ``hf`` model is neither a local directory nor in the local cache of an
    unreachable hub.
    """
    if cfg.arch == "llama":
        if tokenizer is None:
            raise ValueError("arch 'llama' needs the project tokenizer")
        model = AVLanguageModel(cfg, tokenizer)
        new_ids: list[int] = list(range(len(tokenizer)))
    else:
        if special_tokens is None:
            special_tokens = [] if tokenizer is None else [str(t) for t in tokenizer.extra_special_tokens]
        hf_tok, lm = _load_hf(cfg.name_or_path)
        old = len(hf_tok)
        added: dict[str, Any] = {"extra_special_tokens": list(dict.fromkeys([AV_TOKEN, *special_tokens]))}
        if hf_tok.pad_token is None:
            added["pad_token"] = "<pad>"
        hf_tok.add_special_tokens(added, replace_extra_special_tokens=False)
        if len(hf_tok) != lm.get_input_embeddings().num_embeddings:
            lm.resize_token_embeddings(len(hf_tok))
        new_ids = list(range(old, len(hf_tok)))
        model = AVLanguageModel(cfg, hf_tok, lm)
    if cfg.lora:
        model.lm = _with_lora(model.lm, cfg, new_ids)
    elif cfg.freeze:
        for p in model.lm.parameters():
            p.requires_grad_(False)
    return model


def _load_hf(name_or_path: str) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    from huggingface_hub import constants
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local_dir = Path(name_or_path).expanduser()
    if local_dir.is_dir():
        src, local_only = str(local_dir), True
    elif any(c in name_or_path for c in "\\") or name_or_path.startswith((".", "/", "~")):
        raise WeightsError(f"LM directory not found: {name_or_path}")
    else:
        src, local_only = name_or_path, bool(constants.HF_HUB_OFFLINE)
    try:
        try:  # the local cache first: no network call when the files are there
            tok = AutoTokenizer.from_pretrained(src, local_files_only=True)
            lm = AutoModelForCausalLM.from_pretrained(src, local_files_only=True)
        except OSError:
            if local_only:
                raise
            tok = AutoTokenizer.from_pretrained(src)
            lm = AutoModelForCausalLM.from_pretrained(src)
    except (OSError, ValueError) as e:
        if local_dir.is_dir():
            raise WeightsError(f"cannot load an HF causal LM from {local_dir}: {e}") from None
        raise WeightsError(
            f"cannot reach the model hub for {name_or_path!r} and it is not in the local cache; pass a local "
            f"directory (save_pretrained of the model and its tokenizer) as lm.name_or_path ({type(e).__name__})"
        ) from None
    return tok, lm


def _with_lora(lm: PreTrainedModel, cfg: LMConfig, new_ids: list[int]) -> nn.Module:
    """peft LoRA on q/k/v/o; the rows of ``new_ids`` in the input embeddings (and lm_head when untied) train."""
    from peft import LoraConfig, get_peft_model

    trainable: Any = None
    if new_ids:
        names = {id(m): n for n, m in lm.named_modules()}
        emb_name = names[id(lm.get_input_embeddings())].split(".")[-1]
        trainable = {emb_name: new_ids}
        out = lm.get_output_embeddings()
        tied = out is not None and out.weight is lm.get_input_embeddings().weight
        if out is not None and not tied:
            trainable[names[id(out)].split(".")[-1]] = new_ids
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, bias="none",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], task_type="CAUSAL_LM",
                      trainable_token_indices=trainable)
    return get_peft_model(lm, lora)
