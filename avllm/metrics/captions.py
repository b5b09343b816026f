"""Caption metrics: recall of ground-truth facts, corpus BLEU-4 and CIDEr-D.

- :func:`fact_recall`: the fraction of a clip's ground-truth facts (class names, position words, counts, ...)
  that the caption states; a fact is a word or phrase, or a tuple of alternatives (``("2", "two")``), matched
  case-insensitively at word boundaries, any whitespace between its words.
- :func:`bleu4`: corpus BLEU-4 (Papineni et al. 2002): n-gram counts clipped by the max count in any reference,
  summed over the corpus, uniform weights over n = 1..4, brevity penalty against the closest reference length
  (the shorter on a tie); no smoothing, so a corpus without a single matching 4-gram scores 0.
- :func:`cider_d`: CIDEr-D (Vedantam et al. 2015) as coco-caption computes it: TF-IDF n-gram vectors (n = 1..4)
  with document frequencies over the references of the corpus, clipped candidate weights, a Gaussian length
  penalty (sigma = 6, lengths in bigrams), averaged over references and n, times 10. IDF needs a corpus: with a
  single clip every weight is 0 and so is the score.

Tokens (BLEU, CIDEr-D) are lower-cased runs of letters and digits (``0.25`` and ``don't`` stay one token),
a light stand-in for coco-caption's PTB tokenizer.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

__all__ = ["tokenize", "fact_recall", "mean_fact_recall", "bleu4", "cider_d"]

_TOKEN = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*")
Fact = str | Sequence[str]


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens of ``text``."""
    return _TOKEN.findall(text.lower())


def _fact_pattern(phrase: str) -> re.Pattern[str]:
    words = phrase.split()
    return re.compile(r"(?<!\w)" + r"\s+".join(re.escape(w) for w in words) + r"(?!\w)", re.IGNORECASE)


def fact_recall(caption: str, facts: Sequence[Fact]) -> float:
    """Fraction of ``facts`` found in ``caption``. A fact given as a tuple/list counts when any alternative is
    found. Range [0, 1]; nan when there are no facts (use :func:`mean_fact_recall` to average, it skips them)."""
    if not facts:
        return float("nan")
    found = 0
    for fact in facts:
        alts = [fact] if isinstance(fact, str) else list(fact)
        found += any(a.strip() and _fact_pattern(a).search(caption) for a in alts)
    return found / len(facts)


def mean_fact_recall(captions: Sequence[str], facts: Sequence[Sequence[Fact]]) -> float:
    """Mean of :func:`fact_recall` over clips, clips without facts left out (nan if none remain)."""
    if len(captions) != len(facts):
        raise ValueError(f"{len(captions)} captions for {len(facts)} fact lists")
    vals = [fact_recall(c, f) for c, f in zip(captions, facts) if f]
    return float(np.mean(vals)) if vals else float("nan")


def _ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _all_ngrams(text: str) -> Counter[tuple[str, ...]]:
    toks = tokenize(text)
    out: Counter[tuple[str, ...]] = Counter()
    for n in range(1, 5):
        out.update(_ngrams(toks, n))
    return out


def _refs(references: Sequence[str | Sequence[str]], n_cand: int) -> list[list[str]]:
    if len(references) != n_cand:
        raise ValueError(f"{n_cand} candidates for {len(references)} reference sets")
    out = [[r] if isinstance(r, str) else list(r) for r in references]
    if any(not r for r in out):
        raise ValueError("every candidate needs at least one reference")
    return out


def bleu4(candidates: Sequence[str], references: Sequence[str | Sequence[str]]) -> float:
    """Corpus BLEU-4 in [0, 1]. candidates: (N,) strings. references: per candidate one string or a list."""
    refs = _refs(references, len(candidates))
    matched, total = np.zeros(4), np.zeros(4)
    cand_len, ref_len = 0, 0
    for cand, rs in zip(candidates, refs):
        c = tokenize(cand)
        r_toks = [tokenize(r) for r in rs]
        cand_len += len(c)
        ref_len += min((len(r) for r in r_toks), key=lambda L: (abs(L - len(c)), L))  # closest, shorter on tie
        for n in range(1, 5):
            cn = _ngrams(c, n)
            max_ref: Counter[tuple[str, ...]] = Counter()
            for r in r_toks:
                max_ref |= _ngrams(r, n)  # union of Counters = element-wise max
            matched[n - 1] += sum(min(k, max_ref[g]) for g, k in cn.items())
            total[n - 1] += max(len(c) - n + 1, 0)
    if cand_len == 0 or np.any(matched == 0):
        return 0.0
    log_p = np.mean(np.log(matched / total))
    bp = 1.0 if cand_len > ref_len else math.exp(1.0 - ref_len / cand_len)
    return float(bp * math.exp(log_p))


def cider_d(
    candidates: Sequence[str], references: Sequence[str | Sequence[str]], sigma: float = 6.0
) -> float:
    """Corpus CIDEr-D (mean over clips) in [0, 10]. candidates: (N,) strings; references: per candidate one string
    or a list. A single clip scores 0 (no IDF without a corpus)."""
    refs = _refs(references, len(candidates))
    cand_counts = [_all_ngrams(c) for c in candidates]
    ref_counts = [[_all_ngrams(r) for r in rs] for rs in refs]
    df: Counter[tuple[str, ...]] = Counter()
    for rc in ref_counts:
        df.update(set().union(*(c.keys() for c in rc)))  # in how many clips' references each n-gram occurs
    log_n = math.log(float(len(candidates))) if candidates else 0.0

    def vec(counts: Counter[tuple[str, ...]]) -> tuple[list[dict], np.ndarray, int]:
        v: list[dict] = [{} for _ in range(4)]
        for g, tf in counts.items():
            v[len(g) - 1][g] = tf * (log_n - math.log(max(1.0, df[g])))
        norms = np.array([math.sqrt(sum(w * w for w in d.values())) for d in v])
        length = sum(k for g, k in counts.items() if len(g) == 2)  # coco-caption measures length in bigrams
        return v, norms, length

    scores = []
    for cc, rcs in zip(cand_counts, ref_counts):
        vh, nh, lh = vec(cc)
        total = np.zeros(4)
        for rc in rcs:
            vr, nr, lr = vec(rc)
            penalty = math.exp(-((lh - lr) ** 2) / (2 * sigma**2))
            for n in range(4):
                val = sum(min(w, vr[n].get(g, 0.0)) * vr[n].get(g, 0.0) for g, w in vh[n].items())
                if nh[n] != 0 and nr[n] != 0:
                    val /= nh[n] * nr[n]
                total[n] += val * penalty
        scores.append(float(np.mean(total)) / len(rcs) * 10.0)
    return float(np.mean(scores)) if scores else float("nan")
