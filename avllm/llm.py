"""The language model: projected audio-visual tokens spliced into a chat prompt at ``<av>`` placeholders.

    lm = build_llm(cfg.lm, tokenizer)                         # AVLanguageModel
    batch = lm.build_inputs(prompts, answers, num_av_tokens=N)
    logits, loss = lm(batch["input_ids"], batch["attention_mask"], av_embeds, batch["labels"])   # av (B, N, H)
    texts = lm.generate(prompts, av_embeds, max_new_tokens=48)

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

__all__ = ["AV_TOKEN", "IGNORE_INDEX", "AVLanguageModel", "build_llm", "lm_task_losses", "next_token_loss",
           "reduce_token_losses", "token_losses"]

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

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        av_embeds: Tensor | None,
        labels: Tensor | None = None,
        word_embeds: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Logits (B, L, V) float and, with ``labels`` (B, L), the next-token cross-entropy over labelled tokens
        (scalar; averaged as ``cfg.loss_norm`` says, see :func:`next_token_loss`), else None. ``word_embeds``
        (B, L, H): added to the token embeddings (see ``splice``)."""
        embeds = self.splice(input_ids, av_embeds, word_embeds)  # (B, L, H)
        out = self.lm(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False)
        loss = next_token_loss(out.logits, labels, self.cfg.loss_norm) if labels is not None else None
        return out.logits, loss

    @torch.no_grad()
    def generate(
        self,
        prompts: list[str],
        av_embeds: Tensor | None,
        max_new_tokens: int = 48,
        greedy: bool = True,
        word_fn: Callable[[Tensor], Tensor] | None = None,
    ) -> list[str]:
        """Answers to ``prompts`` given ``av_embeds`` (B, N, H): one string per prompt, cut at the first eos, with
        pad/bos/eos/<av> removed and the grounding tokens (``<loc_i>``, ``<t_j>``) kept as text. ``word_fn``: the
        prompt's ``input_ids`` (B, L) -> ``word_embeds`` (B, L, H) added to them (none for generated tokens)."""
        from transformers import GenerationConfig

        n = 0 if av_embeds is None else av_embeds.shape[1]
        batch = self.build_inputs(prompts, None, n)
        device = self.lm.get_input_embeddings().weight.device
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        words = None if word_fn is None else word_fn(ids)
        embeds = self.splice(ids, None if av_embeds is None else av_embeds.to(device), words)  # (B, L, H)
        tok = self.tokenizer
        gen = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=not greedy, pad_token_id=tok.pad_token_id,
                               eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
        was_training = self.training
        self.eval()
        try:
            new = self.lm.generate(inputs_embeds=embeds, attention_mask=mask, generation_config=gen)  # (B, T)
        finally:
            self.train(was_training)
        drop = {tok.pad_token_id, tok.bos_token_id, self.av_id}
        texts = []
        for row in new.tolist():
            if tok.eos_token_id in row:
                row = row[: row.index(tok.eos_token_id)]
            texts.append(tok.decode([t for t in row if t not in drop], skip_special_tokens=False).strip())
        return texts


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
