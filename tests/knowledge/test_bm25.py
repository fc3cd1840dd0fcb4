"""The BM25 folder: an update tokenises only new and changed chunks, yet scores exactly as a from-scratch bm25s build;
a stale folder is never searched; a crash while writing leaves the previous version whole."""

from __future__ import annotations

import json
import random

import bm25s
import numpy as np
import pytest

from tunewise.knowledge.bm25 import BM25Store, _stopwords, fingerprint, tokenize
from tunewise.knowledge.chunker import text_hash

WORDS = (
    "river bridge lantern harbour keeper market honey winter museum boat carved festival valley orchard engine "
    "pressure valve turbine inspection revenue ledger invoice merchant cathedral glacier violin falcon copper the of "
    "and a is Zürich naïve ΣΟΦΟΣ 1843 QX7Z9 snake_case don't"
).split()
QUERIES = ["harbour keeper", "valve pressure inspection", "zürich naïve", "σοφος", "qx7z9 copper", "the of", "1843"]


def text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 40))).capitalize() + "."


def chunk_set(texts: dict[str, str]) -> tuple[list[str], list[str], list[str]]:
    ids = list(texts)
    rng = random.Random(len(ids))
    rng.shuffle(ids)  # callers pass the table's order, not id order
    return ids, [text_hash(texts[i]) for i in ids], [texts[i] for i in ids]


def sync(store: BM25Store, texts: dict[str, str]) -> list[str]:
    """Bring `store` to `texts`; returns the ids whose text it asked for (what it tokenised)."""
    ids, hashes, bodies = chunk_set(texts)
    asked: list[str] = []

    def give(positions: list[int]) -> list[str]:
        asked.extend(ids[p] for p in positions)
        return [bodies[p] for p in positions]

    store.sync(ids, hashes, give)
    return asked


def scores_by_id(store: BM25Store) -> dict[str, dict[str, float]]:
    index = store.load()
    stopwords = _stopwords()
    out = {}
    for q in QUERIES:
        token_ids = index.retriever.get_tokens_ids(tokenize(q, stopwords))
        scores = index.retriever.get_scores_from_ids(token_ids) if token_ids else np.zeros(len(index.ids))
        out[q] = dict(zip(index.ids, scores.tolist()))
    return out


def from_scratch(texts: dict[str, str]) -> dict[str, dict[str, float]]:
    """What bm25s itself computes over the same chunks, tokenised the same way."""
    ids = sorted(texts)
    stopwords = _stopwords()
    retriever = bm25s.BM25()
    retriever.index([tokenize(texts[i], stopwords) for i in ids], show_progress=False)
    out = {}
    for q in QUERIES:
        token_ids = retriever.get_tokens_ids(tokenize(q, stopwords))
        scores = retriever.get_scores_from_ids(token_ids) if token_ids else np.zeros(len(ids))
        out[q] = dict(zip(ids, scores.tolist()))
    return out


@pytest.fixture
def corpus() -> dict[str, str]:
    rng = random.Random(0)
    return {f"d{i}:{j}": text(rng) for i in range(150) for j in range(rng.randint(1, 3))}


def test_updates_tokenise_only_what_changed_and_score_like_a_fresh_build(tmp_path, corpus):
    store = BM25Store(tmp_path / "bm25")
    assert sorted(sync(store, corpus)) == sorted(corpus)
    assert scores_by_id(store) == from_scratch(corpus)

    rng = random.Random(1)
    ids = sorted(corpus)
    edited = dict(corpus)
    for chunk_id in ids[::7]:
        edited[chunk_id] = text(rng)  # changed
    for chunk_id in ids[3::11]:
        del edited[chunk_id]  # removed
    added = {f"new{i}:0": text(rng) for i in range(20)}
    added["rare:0"] = "Only here: lighthouse QX7Z9."
    edited.update(added)
    changed = {i for i in edited if corpus.get(i) != edited[i]}
    assert sorted(sync(store, edited)) == sorted(changed)
    assert scores_by_id(store) == from_scratch(edited)  # bit for bit, every chunk, every query

    del edited["rare:0"]
    assert sync(store, edited) == []  # a removal tokenises nothing
    assert scores_by_id(store) == from_scratch(edited)
    assert "lighthouse" not in store.load().retriever.vocab_dict  # its last chunk gone, the term is gone too
    assert store.load().search("lighthouse", 5) == []


def test_an_unchanged_set_writes_nothing_and_a_stale_one_is_updated(tmp_path, corpus):
    store = BM25Store(tmp_path / "bm25")
    sync(store, corpus)
    files = {p: p.stat().st_mtime_ns for p in (tmp_path / "bm25").rglob("*")}
    assert sync(store, corpus) == []
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "bm25").rglob("*")} == files
    ids, hashes, _ = chunk_set(corpus)
    assert store.fingerprint() == fingerprint(ids, hashes)

    # an index from the layout before versions (bm25s files and chunks.json in the folder) counts as none
    legacy = tmp_path / "old"
    legacy.mkdir()
    (legacy / "chunks.json").write_text(json.dumps({"fingerprint": fingerprint(ids, hashes), "ids": ids}))
    (legacy / "data.csc.index.npy").write_bytes(b"stale")
    old = BM25Store(legacy)
    assert old.fingerprint() is None
    assert sorted(sync(old, corpus)) == sorted(corpus)
    assert sorted(p.name for p in legacy.iterdir() if p.is_file()) == ["CURRENT"]
    assert scores_by_id(old) == from_scratch(corpus)


@pytest.mark.parametrize("when", ["while saving", "after saving, before CURRENT"])
def test_a_crash_mid_write_leaves_the_previous_version(tmp_path, corpus, monkeypatch, when):
    store = BM25Store(tmp_path / "bm25")
    sync(store, corpus)
    before, scores = store.fingerprint(), scores_by_id(store)
    edited = {**corpus, "new:0": "A falcon over the glacier."}

    real_save = bm25s.BM25.save

    def crash(self, save_dir, **kwargs):
        if when == "after saving, before CURRENT":
            real_save(self, save_dir, **kwargs)
        else:
            np.save(f"{save_dir}/data.csc.index.npy", self.scores["data"])
        raise KeyboardInterrupt  # the process dies here

    monkeypatch.setattr(bm25s.BM25, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        sync(store, edited)
    assert store.fingerprint() == before and scores_by_id(store) == scores
    assert len([p for p in (tmp_path / "bm25").iterdir() if p.is_dir()]) == 2  # the live one and the half one

    monkeypatch.setattr(bm25s.BM25, "save", real_save)
    assert sync(store, edited) == ["new:0"]
    assert scores_by_id(store) == from_scratch(edited)
    assert len([p for p in (tmp_path / "bm25").iterdir() if p.is_dir()]) == 1  # the half-written one cleared away


def test_no_chunks_and_chunks_without_terms(tmp_path):
    store = BM25Store(tmp_path / "bm25")
    sync(store, {})
    assert store.load().search("anything", 5) == []
    sync(store, {"a:0": "The of and.", "b:0": ""})  # stopwords only, and nothing
    assert store.load().search("the", 5) == []
    sync(store, {"a:0": "The of and.", "b:0": "", "c:0": "Copper valve."})
    assert [i for i, _ in store.load().search("copper", 5)] == ["c:0"]
