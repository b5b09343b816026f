"""A byte-level BPE tokenizer trained on the project's own text, wrapped as a transformers tokenizer.

    tok = train_tokenizer(corpus, vocab_size=4096, special_tokens=["<loc_0>", ..., "<t_63>"])
    tok.save_pretrained(d); tok = load_tokenizer(d)      # = PreTrainedTokenizerFast.from_pretrained(d)

Byte-level BPE (GPT-2 pre-tokenisation, no unknown bytes) learns ``vocab_size`` entries from the corpus; the core
special tokens take the first ids (``<pad>`` = 0, ``<bos>``, ``<eos>``, ``<unk>``, ``<av>``) and the given special
tokens (the grounding codec's ``<loc_i>`` / ``<t_j>``) are added after the learned vocabulary, in the order given,
as ``extra_special_tokens`` (transformers 5): each is always one token, never split, whatever text surrounds it.
The chat template of :mod:`avllm.llm` writes its roles as plain text (`` user:`` / `` assistant:``), so no role
tokens are needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

__all__ = ["PAD", "BOS", "EOS", "UNK", "AV", "CORE_SPECIAL_TOKENS", "train_tokenizer", "load_tokenizer"]

PAD, BOS, EOS, UNK, AV = "<pad>", "<bos>", "<eos>", "<unk>", "<av>"
CORE_SPECIAL_TOKENS = [PAD, BOS, EOS, UNK, AV]  # ids 0..4 of every trained tokenizer


def train_tokenizer(
    corpus: Iterable[str], vocab_size: int, special_tokens: list[str], lowercase: bool = False
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``corpus`` (an iterable of texts, read once).

    ``vocab_size`` counts the learned vocabulary including the 256 byte symbols and the five core tokens; a small
    corpus may stop short of it. ``special_tokens`` are appended after it; duplicates of core tokens are ignored.
    ``lowercase`` adds a lowercase normaliser (special tokens are matched before normalisation, unchanged).
    Returns a ``PreTrainedTokenizerFast`` with pad/bos/eos/unk set, ``len(tok) = learned + len(specials)``.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 256 + len(CORE_SPECIAL_TOKENS):
        raise ValueError(f"vocab_size {vocab_size} is below the 256 byte symbols plus the core tokens")
    bad = [t for t in special_tokens if not t or t.strip() != t]
    if bad:
        raise ValueError(f"special tokens must be non-empty and without surrounding spaces: {bad[:5]}")
    extra = list(dict.fromkeys(t for t in special_tokens if t not in CORE_SPECIAL_TOKENS))

    bpe = Tokenizer(models.BPE(unk_token=UNK))
    if lowercase:
        bpe.normalizer = normalizers.Lowercase()
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=CORE_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        extra_special_tokens=[AV, *extra],
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """A tokenizer saved with ``save_pretrained`` (a local directory; nothing is fetched)."""
    from transformers import PreTrainedTokenizerFast

    p = Path(path)
    if not (p / "tokenizer.json").is_file():
        raise FileNotFoundError(f"no tokenizer.json in {p}")
    return PreTrainedTokenizerFast.from_pretrained(str(p), local_files_only=True)
