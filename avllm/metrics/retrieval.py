"""Cross-modal retrieval: Recall@K in both directions.

``scores[i, j]`` is the similarity of audio clip i and image j; the matching item of query i is candidate i.
The rank of the match counts every *other* candidate scoring at least as high (``>=``), so a tie with the
correct item counts against it (pessimistic): a constant score matrix gives Recall@1 = 0, not 1/N or 1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

__all__ = ["class_set_ceiling", "match_ranks", "recall_at_k", "retrieval_metrics"]


def match_ranks(scores: np.ndarray) -> np.ndarray:
    """0-based pessimistic rank of the match of each query.

    scores: (Nq, Nc) with Nq <= Nc, query i matching candidate i. Returns (Nq,) int:
    ``#{j != i : scores[i, j] >= scores[i, i]}``. A nan score never outranks the match; a nan match ranks last.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] > s.shape[1]:
        raise ValueError(f"scores must be (Nq, Nc) with Nq <= Nc; got {s.shape}")
    nq = s.shape[0]
    diag = s[np.arange(nq), np.arange(nq)][:, None]  # (Nq, 1)
    ge = s >= diag  # (Nq, Nc); False wherever a nan is involved
    ge[np.arange(nq), np.arange(nq)] = False
    ranks = ge.sum(axis=1)
    ranks[np.isnan(diag[:, 0])] = s.shape[1] - 1
    return ranks


def recall_at_k(scores: np.ndarray, k_list: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Recall@K: the fraction of queries whose match ranks within the top K (pessimistic ties).

    scores: (Nq, Nc). Returns ``{"r1": ..., "r5": ..., "r10": ...}`` (keys ``r{k}``), each in [0, 1].
    """
    ranks = match_ranks(scores)
    if ranks.size == 0:
        return {f"r{k}": float("nan") for k in k_list}
    return {f"r{k}": float(np.mean(ranks < k)) for k in k_list}


def retrieval_metrics(scores_a2i: np.ndarray, k_list: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Both directions from one square matrix (N, N), rows = audio queries, columns = images.

    Returns ``a2i.r{k}`` (audio -> image, rows of the matrix) and ``i2a.r{k}`` (image -> audio, its transpose).
    """
    s = np.asarray(scores_a2i)
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise ValueError(f"both directions need a square score matrix; got {s.shape}")
    out = {f"a2i.{k}": v for k, v in recall_at_k(s, k_list).items()}
    out.update({f"i2a.{k}": v for k, v in recall_at_k(s.T, k_list).items()})
    return out


def class_set_ceiling(keys: Sequence, k_list: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """The best expected Recall@K of a retriever whose view of each candidate is ``keys[j]`` alone (e.g. the set of
    classes its image shows): candidates with the query's own key cannot be told from the match, so with ties broken
    at random the match ranks uniformly among its group of g clips, and R@K = mean over queries of min(1, K / g).

    keys: one hashable per clip, query i matching candidate i. Returns ``{"r1": ..., ...}`` as ``recall_at_k``.
    """
    keys = list(keys)
    if not keys:
        return {f"r{k}": float("nan") for k in k_list}
    size = Counter(keys)
    return {f"r{k}": float(np.mean([min(1.0, k / size[key]) for key in keys])) for k in k_list}
