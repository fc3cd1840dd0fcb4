"""BM25 over the chunks, with bm25s, persisted in a folder next to the vectors.

The folder holds bm25s' files plus `chunks.json` (chunk ids in index order and a fingerprint of the
chunk set), so a stale index is detected and rebuilt rather than silently searched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tunewise.knowledge.ranking import top_k

TOKENIZER_VERSION = "lower-alnum-stopwords-en-1"
_WORD = re.compile(r"[^\W_]+")


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


class BM25Store:
    """The BM25 folder: build it from chunk texts, tell whether it matches a chunk set, load it."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.manifest = directory / "chunks.json"

    def fingerprint(self) -> str | None:
        try:
            return json.loads(self.manifest.read_text())["fingerprint"]
        except (OSError, ValueError, KeyError):
            return None

    def build(self, ids: list[str], texts: list[str], chunk_fingerprint: str) -> None:
        """Index the chunks and save; written to a side folder first, so a crash never leaves half an index."""
        import bm25s

        stopwords = _stopwords()
        tmp = self.directory.with_name(self.directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if ids:
            retriever = bm25s.BM25()
            retriever.index([tokenize(t, stopwords) for t in texts], show_progress=False)
            retriever.save(str(tmp))
        manifest = {"fingerprint": chunk_fingerprint, "tokenizer": TOKENIZER_VERSION, "ids": ids}
        (tmp / "chunks.json").write_text(json.dumps(manifest))
        shutil.rmtree(self.directory, ignore_errors=True)
        os.replace(tmp, self.directory)

    def load(self) -> BM25Index:
        import bm25s

        ids = json.loads(self.manifest.read_text())["ids"]
        retriever = bm25s.BM25.load(str(self.directory)) if ids else None
        return BM25Index(retriever, ids)

    def clear(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
