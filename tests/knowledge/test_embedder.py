"""The packaged all-MiniLM-L6-v2 embedder and its per-text cache."""

from __future__ import annotations

import numpy as np

from tunewise.db import connect
from tunewise.knowledge.embedder import SentenceTransformerEmbedder


def test_embeddings_are_unit_length_and_meaningful(tmp_path):
    e = SentenceTransformerEmbedder(connect(tmp_path / "db.sqlite"))
    v = e.embed(["The cat sat on the mat.", "A cat is sitting on a mat.", "Quarterly revenue grew by 4%."])
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3


def test_cached_texts_are_never_embedded_again(tmp_path):
    db = connect(tmp_path / "db.sqlite")
    first = SentenceTransformerEmbedder(db)
    a = first.embed(["alpha", "beta", "alpha"])
    assert first.computed == 2  # duplicates embedded once
    second = SentenceTransformerEmbedder(db)
    b = second.embed(["beta", "alpha", "gamma"])
    assert second.computed == 1
    assert np.array_equal(b[0], a[1]) and np.array_equal(b[1], a[0])
