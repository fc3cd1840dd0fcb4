"""BM25 over the chunks, with bm25s, persisted in a folder next to the vectors and updated from changed chunks only.

The folder holds `CURRENT` (which version folder is live, and a fingerprint of the chunk set it indexes) and that
version folder: bm25s' files plus `chunks.arrow`, each chunk's id, text hash and term counts, in id order. An update
tokenises only the chunks whose (id, text hash) the live version lacks, recomputes the scores from the kept term
counts (they equal a from-scratch bm25s build over the same chunks), writes a new version folder, and then replaces
`CURRENT`: a crash leaves the old version or the new one, never half of one. A stale index (its fingerprint is not
the chunk set's) is detected and brought up to date, never silently searched.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from tunewise.knowledge.ranking import top_k

TOKENIZER_VERSION = "lower-alnum-stopwords-en-1"
_WORD = re.compile(r"[^\W_]+")
_VOCABULARY = "vocab.index.json"  # bm25s' term -> column file, also the term ids of chunks.arrow
_COUNT_BATCH = 8192  # texts tokenised per numpy pass when counting terms
_SCORE_BLOCK = 1 << 22  # matrix entries scored per numpy pass
# bm25s adds its per-chunk float64 length factor to a float32 array of term frequencies: numpy 2 computes that in
# float64, numpy 1 in float32. Computing in the same type keeps the scores equal to bm25s' bit for bit.
_TF_DTYPE = (np.float64(1.0) + np.ones(1, np.float32)).dtype


def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def tokenize(text: str, stopwords: frozenset[str] = frozenset()) -> list[str]:
    """Lower-cased runs of letters and digits, stopwords left out."""
    return [t for t in _WORD.findall(text.lower()) if t not in stopwords]


def fingerprint(ids: Sequence[str], hashes: Sequence[str]) -> str:
    """Identifies a chunk set (ids and text hashes, order-free) and the tokenizer."""
    h = hashlib.sha256(TOKENIZER_VERSION.encode())
    for chunk_id, text_hash in sorted(zip(ids, hashes)):
        h.update(f"\0{chunk_id}\0{text_hash}".encode())
    return h.hexdigest()


class BM25Index:
    """A loaded BM25 model: ranks chunk ids for a query."""

    def __init__(self, retriever: Any, ids: list[str]):
        self.retriever = retriever
        self.ids = ids
        self.stopwords = _stopwords()

    def search(self, query: str, depth: int) -> list[tuple[str, float]]:
        """Up to `depth` (chunk id, score) pairs, best first; only chunks sharing a term with the query."""
        if not self.ids or depth <= 0:
            return []
        token_ids = self.retriever.get_tokens_ids(tokenize(query, self.stopwords))
        if not token_ids:
            return []
        scores = np.asarray(self.retriever.get_scores_from_ids(token_ids), dtype=np.float64)
        return top_k(scores, depth, self.ids, min_score=0.0)


@dataclass
class _TermCounts:
    """Per chunk (in id order) its id, text hash and distinct terms with their counts, as CSR arrays: chunk i has
    terms[ptr[i]:ptr[i + 1]] (ids into `vocabulary`, ascending) occurring tfs[ptr[i]:ptr[i + 1]] times."""

    ids: list[str]
    hashes: list[str]
    ptr: np.ndarray
    terms: np.ndarray
    tfs: np.ndarray
    vocabulary: list[str]


class BM25Store:
    """The BM25 folder: bring it to a chunk set, tell whether it matches one, load it."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.current = directory / "CURRENT"

    def fingerprint(self) -> str | None:
        """The fingerprint of the chunk set the live version indexes; None without one."""
        state = self._current()
        return None if state is None else state["fingerprint"]

    def sync(self, ids: Sequence[str], hashes: Sequence[str], texts: Callable[[list[int]], Iterable[str]]) -> None:
        """Index exactly the chunks `ids` with text hashes `hashes`; `texts(positions)` gives, in that order, the
        texts of the chunks at those positions of `ids` that the live version has not tokenised."""
        current = fingerprint(ids, hashes)
        if self.fingerprint() == current:
            return
        old = self._read_counts()
        order = sorted(range(len(ids)), key=ids.__getitem__)
        row_of = {} if old is None else {chunk_id: row for row, chunk_id in enumerate(old.ids)}
        source = np.empty(len(order), np.int64)  # row in `old`, or -1 - (row among the new ones)
        missing: list[int] = []
        for n, p in enumerate(order):
            row = row_of.get(ids[p], -1)
            if row >= 0 and old is not None and old.hashes[row] == hashes[p]:
                source[n] = row
            else:
                source[n] = -1 - len(missing)
                missing.append(p)
        vocabulary = [] if old is None else old.vocabulary
        new_ptr, new_terms, new_tfs = _count_terms(texts(missing), vocabulary, _stopwords())
        ptr, terms, tfs = _gather(source, old, new_ptr, new_terms, new_tfs)
        counts = _compact(_TermCounts([ids[p] for p in order], [hashes[p] for p in order], ptr, terms, tfs, vocabulary))
        self._write(counts, current)

    def load(self, ids_now: list[str] | None = None) -> BM25Index:
        """The live version, ready to search. `ids_now`, the caller's list of the same ids, is kept instead of a
        second copy (a million ids are ~100 MB) when it equals the version's."""
        import bm25s
        import pyarrow as pa

        state = self._current()
        if state is None:
            raise FileNotFoundError(f"no BM25 index in {self.directory}")
        folder = self.directory / state["version"]
        with pa.memory_map(str(folder / "chunks.arrow")) as source:
            ids = pa.ipc.open_file(source).read_all()["id"].to_pylist()
        retriever = bm25s.BM25.load(str(folder)) if ids else None
        return BM25Index(retriever, ids_now if ids_now == ids else ids)

    def clear(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def _current(self) -> dict[str, str] | None:
        try:
            state = json.loads(self.current.read_text())
        except (OSError, ValueError):
            return None
        if state.get("tokenizer") != TOKENIZER_VERSION or not (self.directory / state.get("version", "")).is_dir():
            return None
        return state

    def _read_counts(self) -> _TermCounts | None:
        """The live version's term counts, if it has any this tokenizer can reuse."""
        import pyarrow as pa

        state = self._current()
        if state is None:
            return None
        folder = self.directory / state["version"]
        try:
            table = pa.ipc.open_file(str(folder / "chunks.arrow")).read_all()
            term_ids = json.loads((folder / _VOCABULARY).read_text()) if table.num_rows else {}
        except (OSError, ValueError, pa.ArrowInvalid):
            return None
        vocabulary = sorted(term_ids, key=term_ids.__getitem__)
        terms = table["terms"].combine_chunks()
        return _TermCounts(
            table["id"].to_pylist(),
            table["hash"].to_pylist(),
            terms.offsets.to_numpy(),
            terms.values.to_numpy(),
            table["tfs"].combine_chunks().values.to_numpy(),
            vocabulary,
        )

    def _write(self, counts: _TermCounts, chunk_fingerprint: str) -> None:
        """Save a new version folder, then point CURRENT at it and remove everything else in the directory."""
        import bm25s
        import pyarrow as pa

        self.directory.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="v-", dir=self.directory))
        if counts.ids:
            retriever = bm25s.BM25(method="lucene")
            retriever.scores = _scores(counts, retriever.k1, retriever.b)
            retriever.vocab_dict = {t: i for i, t in enumerate(counts.vocabulary)}
            retriever.nonoccurrence_array = None
            retriever.save(str(folder), show_progress=False)
        table = pa.table(
            {
                "id": pa.array(counts.ids, pa.string()),
                "hash": pa.array(counts.hashes, pa.string()),
                "terms": pa.LargeListArray.from_arrays(pa.array(counts.ptr, pa.int64()), pa.array(counts.terms)),
                "tfs": pa.LargeListArray.from_arrays(pa.array(counts.ptr, pa.int64()), pa.array(counts.tfs)),
            }
        )
        with pa.OSFile(str(folder / "chunks.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        state = {"version": folder.name, "fingerprint": chunk_fingerprint, "tokenizer": TOKENIZER_VERSION}
        tmp = self.current.with_name("CURRENT.tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.current)
        for entry in self.directory.iterdir():
            if entry.name not in (folder.name, self.current.name):
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)


def _count_terms(
    texts: Iterable[str], vocabulary: list[str], stopwords: frozenset[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each text's distinct terms (positions in `vocabulary`, to which new terms are appended) and their counts, as
    CSR arrays; the terms are `tokenize`'s."""
    term_id = dict.fromkeys(stopwords, -1)
    term_id.update((t, i) for i, t in enumerate(vocabulary))
    ptrs: list[np.ndarray] = [np.zeros(1, np.int64)]
    terms: list[np.ndarray] = [np.zeros(0, np.int32)]
    tfs: list[np.ndarray] = [np.zeros(0, np.int32)]
    batch: list[list[str]] = []

    def flush() -> None:
        new = sorted(set(chain.from_iterable(batch)).difference(term_id))
        term_id.update(zip(new, range(len(vocabulary), len(vocabulary) + len(new))))
        vocabulary.extend(new)
        flat = list(chain.from_iterable(batch))
        ids = np.fromiter(map(term_id.__getitem__, flat), np.int64, len(flat))
        rows = np.repeat(np.arange(len(batch), dtype=np.int64), [len(tokens) for tokens in batch])
        keep = ids >= 0  # stopwords are -1
        width = max(len(vocabulary), 1)
        keys, tf = np.unique(rows[keep] * width + ids[keep], return_counts=True)
        row, term = np.divmod(keys, width)
        ptrs.append(ptrs[-1][-1] + np.cumsum(np.bincount(row, minlength=len(batch))))
        terms.append(term.astype(np.int32))
        tfs.append(tf.astype(np.int32))
        batch.clear()

    findall = _WORD.findall
    for text in texts:
        batch.append(findall(text.lower()))
        if len(batch) == _COUNT_BATCH:
            flush()
    if batch:
        flush()
    return np.concatenate(ptrs), np.concatenate(terms), np.concatenate(tfs)


def _gather(
    source: np.ndarray, old: _TermCounts | None, new_ptr: np.ndarray, new_terms: np.ndarray, new_tfs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR arrays whose row n is row source[n] of `old` (source[n] >= 0) or row -1 - source[n] of the new arrays,
    copied as runs of consecutive rows."""
    if not len(source):
        return np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32)
    kept = source >= 0
    starts, ends = np.empty(len(source), np.int64), np.empty(len(source), np.int64)
    if old is not None:
        starts[kept], ends[kept] = old.ptr[source[kept]], old.ptr[source[kept] + 1]
    fresh = -1 - source[~kept]
    starts[~kept], ends[~kept] = new_ptr[fresh], new_ptr[fresh + 1]
    ptr = np.concatenate([np.zeros(1, np.int64), np.cumsum(ends - starts)])
    breaks = np.flatnonzero((kept[1:] != kept[:-1]) | (starts[1:] != ends[:-1])) + 1
    first, last = np.concatenate([[0], breaks]), np.concatenate([breaks, [len(source)]]) - 1
    terms, tfs = [np.zeros(0, np.int32)], [np.zeros(0, np.int32)]
    for lo, hi, from_old in zip(starts[first].tolist(), ends[last].tolist(), kept[first].tolist()):
        terms.append((old.terms if from_old else new_terms)[lo:hi])  # type: ignore[union-attr]
        tfs.append((old.tfs if from_old else new_tfs)[lo:hi])  # type: ignore[union-attr]
    if len(terms) == 2:  # one run: a view, not a copy
        return ptr, terms[1], tfs[1]
    return ptr, np.concatenate(terms), np.concatenate(tfs)


def _compact(counts: _TermCounts) -> _TermCounts:
    """The same counts over only the terms that occur (a removed chunk's last terms leave the vocabulary)."""
    used = np.bincount(counts.terms, minlength=len(counts.vocabulary)) > 0
    if used.all():
        return counts
    renumber = (np.cumsum(used) - 1).astype(np.int32)
    vocabulary = [t for t, keep in zip(counts.vocabulary, used.tolist()) if keep]
    return _TermCounts(counts.ids, counts.hashes, counts.ptr, renumber[counts.terms], counts.tfs, vocabulary)


def _scores(counts: _TermCounts, k1: float, b: float) -> dict[str, Any]:
    """bm25s' score matrix (method "lucene") from term counts: the arrays `BM25.index` would compute from the
    tokens, here in numpy passes over blocks of entries instead of a Python loop per chunk."""
    import scipy.sparse as sp

    n_docs, ptr, terms = len(counts.ids), counts.ptr, counts.terms
    lengths = np.zeros(n_docs, np.int64)
    filled = ptr[:-1] < ptr[1:]
    if filled.any():
        lengths[filled] = np.add.reduceat(counts.tfs, ptr[:-1][filled], dtype=np.int64)
    df = np.bincount(terms, minlength=len(counts.vocabulary))
    idf = np.array([math.log(1 + (n_docs - d + 0.5) / (d + 0.5)) for d in df.tolist()], dtype=np.float32)
    avg = lengths.mean()
    length_factor = (k1 * ((1 - b) + b * lengths.astype(np.float64) / avg)).astype(_TF_DTYPE) if avg else lengths
    data = np.empty(len(terms), np.float32)
    for lo in range(0, len(terms), _SCORE_BLOCK):
        hi = min(lo + _SCORE_BLOCK, len(terms))
        rows = np.searchsorted(ptr, np.arange(lo, hi), side="right") - 1
        tf = counts.tfs[lo:hi].astype(_TF_DTYPE)
        data[lo:hi] = idf[terms[lo:hi]] * (tf / (length_factor[rows] + tf))
    matrix = sp.csr_matrix((data, terms, ptr), shape=(n_docs, len(counts.vocabulary))).tocsc()
    return {"data": matrix.data, "indices": matrix.indices, "indptr": matrix.indptr, "num_docs": n_docs}
