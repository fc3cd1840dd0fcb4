"""Rankings: the k best of a score array, and reciprocal rank fusion of several rankings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RRF_K = 60


def top_k(scores: np.ndarray, k: int, ids: Sequence[str], *, min_score: float | None = None) -> list[tuple[str, float]]:
    """The k best (id, score) pairs, best first; ties go to the earlier position, so results are stable.

    With `min_score`, only scores above it are candidates (BM25 leaves out chunks sharing no term).
    """
    pool = np.flatnonzero(scores > min_score) if min_score is not None else np.arange(len(scores))
    if k <= 0 or pool.size == 0:
        return []
    if pool.size > k:
        best = pool[np.argpartition(-scores[pool], k - 1)[:k]]
        pool = pool[scores[pool] >= scores[best].min()]  # keep everything tied with the k-th
    order = pool[np.lexsort((pool, -scores[pool]))][:k]
    return [(ids[i], float(scores[i])) for i in order]


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Fuse rankings (ids, best first) by sum of 1 / (k + rank), rank counted from 1; best first.

    Ties are broken by the best rank an id reached in any list, then by the id itself.
    """
    scores: dict[str, float] = {}
    best_rank: dict[str, int] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
            best_rank[item] = min(best_rank.get(item, rank), rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], best_rank[kv[0]], kv[0]))
