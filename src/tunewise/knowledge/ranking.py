"""Rankings: the k best of a score array, exact search over a vector matrix, and reciprocal rank fusion."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RRF_K = 60
QUERY_BATCH = 256  # queries per matrix product in exact search


def top_k(scores: np.ndarray, k: int, ids: Sequence[str], *, min_score: float | None = None) -> list[tuple[str, float]]:
    """The k best (id, score) pairs, best first; ties go to the earlier position, so results are stable.

    With `min_score`, only scores above it are candidates (BM25 leaves out chunks sharing no term). Only the
    candidates tied with or above the k-th best are sorted.
    """
    if k <= 0:
        return []
    pool = np.flatnonzero(scores > min_score) if min_score is not None else None
    candidates = scores if pool is None else scores[pool]
    if candidates.size > k:
        kth = np.partition(candidates, candidates.size - k)[candidates.size - k]
        chosen = np.flatnonzero(candidates >= kth)  # everything tied with the k-th, so ties resolve by position
    else:
        chosen = np.arange(candidates.size)
    positions = chosen if pool is None else pool[chosen]
    order = positions[np.lexsort((positions, -scores[positions]))][:k]
    return [(ids[i], float(scores[i])) for i in order]


def exact_search(matrix: np.ndarray, queries: np.ndarray, k: int, ids: Sequence[str]) -> list[list[tuple[str, float]]]:
    """Per query (a row of `queries`), the k rows of `matrix` with the highest dot product, as `top_k` ranks them.

    One query is a matrix-vector product, which BLAS runs without the thread hand-offs a (1, d) x (d, n) matrix
    product pays; more queries go in batched matrix products.
    """
    queries = np.asarray(queries, dtype=matrix.dtype)
    if len(queries) == 1:
        return [top_k(matrix @ queries[0], k, ids)]
    out: list[list[tuple[str, float]]] = []
    for start in range(0, len(queries), QUERY_BATCH):
        out.extend(top_k(row, k, ids) for row in queries[start : start + QUERY_BATCH] @ matrix.T)
    return out


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
