"""Whether dense search goes through the store's ANN index or is exact, decided by measuring the index.

After each ANN build a fixed-seed sample of the table's own vectors is searched through the index and exactly
(over all vectors, read in batches); recall@10 is the share of the exact top-10 the index returns, a row tied
with the tenth counting as found. Below `min_recall` the store's next query settings are tried, cheapest first,
while the index stays faster than an exact scan; if none reaches it, search is exact. What was measured and
chosen is a `DenseSearch`, kept in the index manifest.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

import numpy as np

from tunewise.knowledge.stores.base import ChunkStore

K = 10
SAMPLE = 200
SEED = 0
TIE_DEPTH = K + 10  # exact neighbours kept per sampled row, so rows tied with the tenth count as found
TIE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Trial:
    """One query setting of the index on the sample: recall@10 and the median time of one search."""

    tuning: dict[str, int]
    recall: float
    p50_ms: float


@dataclass(frozen=True)
class DenseSearch:
    """How dense queries are answered (`path`), and the measurement behind it when an ANN index was built."""

    path: Literal["ann", "exact"]
    rows: int
    min_recall: float
    index: dict[str, Any] = field(default_factory=dict)  # the store's index type and build parameters
    tuning: dict[str, int] = field(default_factory=dict)  # the query settings ann_search uses
    recall: float | None = None  # of the chosen setting; of the best one tried when the path is exact
    sample: int = 0
    build_s: float | None = None
    measure_s: float | None = None  # what this measurement took
    budget_ms: float | None = None  # most a setting's median query could take
    exact_ms: float | None = None  # one query scanned exactly, numpy over the batches
    measured_at: str | None = None
    trials: list[Trial] = field(default_factory=list)

    @property
    def decision(self) -> str:
        """'ann', 'ann (tuned: nprobes=40, refine_factor=20)', 'exact (ann recall 0.91 < 0.95)' or 'exact'."""
        if self.path == "ann":
            tuned = self.trials and self.tuning != self.trials[0].tuning
            return f"ann (tuned: {_settings(self.tuning)})" if tuned else "ann"
        if not self.trials:
            return "exact"
        if self.recall is not None and self.recall < self.min_recall:
            return f"exact (ann recall {self.recall:.2f} < {self.min_recall:.2f})"
        fastest = min(t.p50_ms for t in self.trials if t.recall >= self.min_recall)
        return f"exact (ann p50 {fastest:.1f} ms >= budget {self.budget_ms:.1f} ms)"

    @property
    def summary(self) -> str:
        """One line for the report: 'dense search: IVF_SQ (recall@10 0.97 on 200 sampled rows; tuned: ...)'."""
        name = self.index.get("type", "the ANN index")
        if self.path == "exact":
            measured = f"; {name} measured on {self.sample} sampled rows" if self.trials else ""
            return f"dense search: {self.decision}{measured}"
        tuned = self.decision.removeprefix("ann").strip(" ()")
        return (f"dense search: {name} (recall@10 {self.recall:.2f} on {self.sample} sampled rows"
                f"{'; ' + tuned if tuned else ''})")

    def to_json(self) -> dict[str, Any]:
        """The fields, with `decision` and `summary` spelled out (the report reads `summary`)."""
        return {**asdict(self), "decision": self.decision, "summary": self.summary}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DenseSearch:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**{**fields, "trials": [Trial(**t) for t in data.get("trials", [])]})


def _settings(tuning: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in tuning.items())


def choose(store: ChunkStore, *, min_recall: float, budget_ms: float | None = None, build_s: float | None = None,
           sample: int = SAMPLE, seed: int = SEED) -> DenseSearch:
    """Measure the store's ANN index on `sample` of its own rows and choose the path. A setting is kept only if its
    median query takes less than `budget_ms` (default: what one exact scan of the table takes, measured here).
    Leaves the store using the chosen setting (its first one, when the choice is exact)."""
    start = time.perf_counter()
    rows = store.count()
    ids, queries = _sample(store, rows, sample, seed)
    truth, exact_ms = _exact_neighbours(store, queries)
    budget = exact_ms if budget_ms is None else budget_ms
    trials: list[Trial] = []
    chosen: Trial | None = None
    for tuning in store.ann_tunings():
        trial = _trial(store, tuning, queries, truth)
        trials.append(trial)
        if trial.recall >= min_recall and trial.p50_ms < budget:
            chosen = trial
            break
        if trial.p50_ms >= budget:
            break  # a costlier setting only gets slower
    store.use_ann_tuning(chosen.tuning if chosen else trials[0].tuning)
    best = chosen or max(trials, key=lambda t: t.recall)
    return DenseSearch(
        path="ann" if chosen else "exact", rows=rows, min_recall=min_recall, index=store.describe_vector_index(),
        tuning=best.tuning, recall=best.recall, sample=len(ids), build_s=build_s,
        measure_s=round(time.perf_counter() - start, 3), budget_ms=round(budget, 3), exact_ms=round(exact_ms, 3),
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), trials=trials,
    )


def _sample(store: ChunkStore, rows: int, sample: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Ids and vectors of `sample` rows drawn without replacement, in table order."""
    wanted = np.sort(np.random.default_rng(seed).choice(rows, size=min(sample, rows), replace=False))
    ids: list[str] = []
    parts: list[np.ndarray] = []
    offset = 0
    for batch_ids, vectors in store.vector_batches():
        here = wanted[(wanted >= offset) & (wanted < offset + len(batch_ids))] - offset
        ids += [batch_ids[i] for i in here]
        parts.append(vectors[here])
        offset += len(batch_ids)
    return ids, np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def _exact_neighbours(store: ChunkStore, queries: np.ndarray) -> tuple[list[set[str]], float]:
    """Per query, the ids of its exact top-10 and of rows tied with the tenth; and the time one query takes to scan
    every batch exactly (product and top-10), in ms."""
    best = np.zeros((len(queries), 0), np.float32)
    best_ids = np.zeros((len(queries), 0), object)
    one_query_s = 0.0
    for batch_ids, vectors in store.vector_batches():
        start = time.perf_counter()
        scores = vectors @ queries[0]
        np.argpartition(scores, -min(K, len(scores)))[-K:]
        one_query_s += time.perf_counter() - start
        scores = queries @ vectors.T
        names = np.asarray(batch_ids, dtype=object)
        keep = min(TIE_DEPTH, scores.shape[1])
        top = np.argpartition(scores, -keep, axis=1)[:, -keep:]
        merged = np.concatenate([best, np.take_along_axis(scores, top, 1)], 1)
        merged_ids = np.concatenate([best_ids, names[top]], 1)
        keep = min(TIE_DEPTH, merged.shape[1])
        top = np.argpartition(merged, -keep, axis=1)[:, -keep:]
        best, best_ids = np.take_along_axis(merged, top, 1), np.take_along_axis(merged_ids, top, 1)
    truth = []
    for scores, names in zip(best, best_ids):
        tenth = np.sort(scores)[::-1][min(K, len(scores)) - 1]
        truth.append({n for s, n in zip(scores, names) if s >= tenth - TIE_TOLERANCE})
    return truth, one_query_s * 1e3


def _trial(store: ChunkStore, tuning: dict[str, int], queries: np.ndarray, truth: list[set[str]]) -> Trial:
    """Each sampled row searched alone through the index with `tuning`: recall@10 and median latency."""
    store.use_ann_tuning(tuning)
    store.ann_search(queries[:1], K)  # first use loads the index
    found, times = [], []
    for query, exact in zip(queries, truth):
        start = time.perf_counter()
        hits = store.ann_search(query[None], K)[0]
        times.append(time.perf_counter() - start)
        found.append(min(len({i for i, _ in hits[:K]} & exact), K) / min(K, len(exact)))
    return Trial(tuning=dict(tuning), recall=round(float(np.mean(found)), 4), p50_ms=round(float(np.median(times)) * 1e3, 3))
