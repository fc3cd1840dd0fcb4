"""The knowledge index on a real LanceDB in tmp_path with the packaged MiniLM: incremental updates,
the three retrievers, rebuilds, and that a search does not reload anything."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from tunewise.db import connect
from tunewise.errors import InputError
from tunewise.knowledge import index as index_module
from tunewise.knowledge.bm25 import BM25Store
from tunewise.knowledge.chunker import ChunkSettings, chunk_document, load_tokenizer
from tunewise.knowledge.embedder import SentenceTransformerEmbedder
from tunewise.knowledge.index import KnowledgeIndex
from tunewise.knowledge.loaders import Document, load_documents
from tunewise.knowledge.ranking import reciprocal_rank_fusion
from tunewise.knowledge.stores.lancedb import LanceDBStore

TOPICS = [
    "The lighthouse keeper climbs the tower every evening to light the lamp.",
    "Bakers in the old town sell rye bread and honey cakes at dawn.",
    "The orchestra rehearses the symphony twice a week in the town hall.",
    "Farmers harvest wheat in late summer before the autumn rains.",
    "The museum displays carved wooden boats from the northern coast.",
    "Students borrow books from the library and return them within three weeks.",
    "The ferry crosses the bay every hour between the two harbours.",
    "The garage fixes cars and trucks; its mechanics replace brakes, clutches and tyres.",
    "Hikers follow the ridge trail to the summit and camp by the lake.",
    "Potters fire their clay bowls in a wood-burning kiln.",
]
PARTS = [
    "the coolant sensor", "the fuel pump", "the door latch", "the brake light", "the fan relay", "the oil gauge",
    "the wiper motor", "the seat heater", "the radio unit", "the horn", "the cabin light", "the mirror motor",
    "the window switch", "the trunk lock", "the tire sensor", "the battery monitor",
]  # fmt: skip


def corpus() -> list[Document]:
    """Ten topics, sixteen look-alike error codes, and one short note holding the rare code QX7Z9."""
    docs = [Document(f"t{i}", f"t{i}.md", text) for i, text in enumerate(TOPICS)]
    for i, part in enumerate(PARTS):
        text = f"Dashboard error code QX7Z{i + 10} means {part} has lost its signal; restart the vehicle."
        docs.append(Document(f"e{i}", f"e{i}.md", text))
    docs.append(Document("note", "note.md", "Code QX7Z9 appears when the cabin light flickers."))
    return docs


def open_index(tmp_path: Path, db=None, ann_min_rows: int = 50_000, **settings) -> KnowledgeIndex:
    db = db or connect(tmp_path / "cache.sqlite")
    embedder = SentenceTransformerEmbedder(db)
    return KnowledgeIndex(
        tmp_path / "index", db, settings=ChunkSettings(**settings), embedder=embedder, ann_min_rows=ann_min_rows
    )


def doc_ids(hits) -> list[str]:
    return [h.chunk.doc_id for h in hits]


def files_under(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_mtime_ns for p in path.rglob("*") if p.is_file()}


def test_reindexing_an_unchanged_corpus_embeds_and_writes_nothing(tmp_path):
    docs = corpus()
    first = open_index(tmp_path)
    stats = first.update(docs)
    assert (stats.documents, stats.chunks, stats.embedded, stats.added_docs) == (27, 27, 27, 27)
    before = files_under(tmp_path / "index")

    again = open_index(tmp_path)  # a new process would start like this
    stats = again.update(docs)
    assert stats.embedded == 0 and again.embedder.computed == 0
    assert (stats.unchanged_docs, stats.added_docs, stats.changed_docs, stats.removed_docs) == (27, 0, 0, 0)
    assert files_under(tmp_path / "index") == before  # no new LanceDB version, BM25 untouched

    # even with the embedding cache gone, unchanged documents are not re-chunked nor re-embedded
    cold = open_index(tmp_path, db=connect(tmp_path / "fresh-cache.sqlite"))
    assert cold.update(docs).embedded == 0 and cold.embedder.computed == 0


def test_changing_one_file_reembeds_only_its_new_chunks(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    long_doc = " ".join(f"Paragraph sentence {i} explains how the harbour crane lifts cargo." for i in range(30))
    (folder / "crane.md").write_text(long_doc)
    for i, text in enumerate(TOPICS):
        (folder / f"t{i}.txt").write_text(text)
    idx = open_index(tmp_path, size=64, overlap=16)
    idx.update(load_documents([folder]).documents)
    tokenizer = load_tokenizer("all-MiniLM-L6-v2")
    old = chunk_document(Document("crane", "crane.md", long_doc), idx.settings, tokenizer)
    assert len(old) >= 5

    edited = long_doc.replace("Paragraph sentence 25 explains", "Paragraph sentence 25 (revised) explains")
    (folder / "crane.md").write_text(edited)
    new = chunk_document(Document("crane", "crane.md", edited), idx.settings, tokenizer)
    expected = len({c.hash for c in new} - {c.hash for c in old})
    assert 0 < expected < len(new)

    stats = open_index(tmp_path, size=64, overlap=16).update(load_documents([folder]).documents)
    assert stats.embedded == expected
    assert (stats.changed_docs, stats.unchanged_docs, stats.added_docs, stats.removed_docs) == (1, 10, 0, 0)
    assert stats.chunks == len(new) + 10
    assert doc_ids(open_index(tmp_path, size=64, overlap=16).search("revised", 3, "bm25")) == ["crane"]
    # the first handle, still open, sees what the other one wrote
    stale = idx.update(load_documents([folder]).documents)
    assert (stale.changed_docs, stale.unchanged_docs, stale.embedded) == (0, 11, 0)


def test_added_and_removed_documents(tmp_path):
    docs = corpus()
    idx = open_index(tmp_path)
    idx.update(docs)
    assert doc_ids(idx.search("QX7Z9", 1, "bm25")) == ["note"]

    kept = [d for d in docs if d.id != "note"]
    added = Document("owl", "owl.md", "The snowy owl Bubo scandiacus hunts lemmings on the tundra.")
    stats = idx.update([*kept, added])
    assert (stats.added_docs, stats.removed_docs, stats.unchanged_docs, stats.embedded) == (1, 1, 26, 1)
    assert stats.documents == 27 and stats.chunks == 27
    assert idx.search("QX7Z9", 3, "bm25") == []  # BM25 was rebuilt without the removed note
    for retriever in ("dense", "bm25", "hybrid"):
        assert "note" not in doc_ids(idx.search("cabin light flickers QX7Z9", 27, retriever))
    assert doc_ids(idx.search("scandiacus", 1, "bm25")) == ["owl"]
    assert doc_ids(idx.search("arctic bird of prey", 1, "dense")) == ["owl"]


def test_dense_finds_paraphrases_bm25_finds_rare_tokens_hybrid_finds_both(tmp_path):
    idx = open_index(tmp_path)
    idx.update(corpus())
    k = 3
    # no word of the query occurs in the corpus: only meaning can find the garage
    paraphrase = "automobile repair workshop"
    assert doc_ids(idx.search(paraphrase, k, "dense"))[0] == "t7"
    assert idx.search(paraphrase, k, "bm25") == []
    assert "t7" in doc_ids(idx.search(paraphrase, k, "hybrid"))
    # the code is one token for BM25, but to MiniLM it looks like the sixteen other error codes
    rare = "warning QX7Z9 in my car"
    assert "note" not in doc_ids(idx.search(rare, k, "dense"))
    assert doc_ids(idx.search(rare, k, "bm25")) == ["note"]
    assert "note" in doc_ids(idx.search(rare, k, "hybrid"))


def test_hybrid_is_rrf_of_dense_and_bm25_each_fifty_deep(tmp_path, monkeypatch):
    idx = open_index(tmp_path)
    idx.update(corpus())
    query = "dashboard error code for the cabin light"
    dense = doc_ids(idx.search(query, 50, "dense"))
    sparse = doc_ids(idx.search(query, 50, "bm25"))
    fused = reciprocal_rank_fusion([[f"{d}:0" for d in dense], [f"{d}:0" for d in sparse]], k=60)
    hits = idx.search(query, 5, "hybrid")
    assert [h.chunk.id for h in hits] == [i for i, _ in fused[:5]]
    assert [h.score for h in hits] == pytest.approx([s for _, s in fused[:5]])
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]

    depths = []
    real = KnowledgeIndex._dense
    monkeypatch.setattr(KnowledgeIndex, "_dense", lambda self, snap, qs, depth: depths.append(depth) or real(self, snap, qs, depth))
    idx.search(query, 5, "hybrid")
    idx.search(query, 80, "hybrid")
    idx.search(query, 5, "dense")
    assert depths == [50, 80, 5]


def test_reciprocal_rank_fusion_on_a_constructed_case():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "b", "d"]], k=60)
    assert [i for i, _ in fused] == ["c", "b", "a", "d"]  # 1/61+1/63 > 2/62 > 1/61 > 1/63
    assert dict(fused) == pytest.approx({"a": 1 / 61, "b": 2 / 62, "c": 1 / 61 + 1 / 63, "d": 1 / 63})
    # equal scores: the better single rank first, then the id
    assert [i for i, _ in reciprocal_rank_fusion([["y", "x"], ["x", "y"], ["z"]])] == ["x", "y", "z"]


def test_changed_chunk_settings_rebuild_the_table_but_reuse_cached_embeddings(tmp_path):
    docs = corpus()
    docs.append(Document("long", "long.md", " ".join(f"Sentence {i} about the long river valley." for i in range(15))))
    db = connect(tmp_path / "cache.sqlite")
    first = open_index(tmp_path, db=db).update(docs)
    assert not first.rebuilt and first.chunks == 28

    smaller = open_index(tmp_path, db=db, size=64, overlap=8)
    stats = smaller.update(docs)
    assert stats.rebuilt and stats.added_docs == 28 and stats.chunks > 28
    assert stats.embedded == stats.chunks - 27  # the 27 one-chunk documents came from the cache
    manifest = json.loads((tmp_path / "index" / "index.json").read_text())
    assert manifest["chunking"] == {"size": 64, "overlap": 8, "tokenizer": "all-MiniLM-L6-v2"}
    assert max(h.chunk.n_tokens for h in smaller.search("long river valley", 10, "dense")) <= 64
    assert not open_index(tmp_path, db=db, size=64, overlap=8).update(docs).rebuilt


def test_a_search_loads_the_table_and_bm25_once(tmp_path, monkeypatch):
    open_index(tmp_path).update(corpus())
    reads, loads = [], []
    real_read, real_load = LanceDBStore.read, BM25Store.load
    monkeypatch.setattr(LanceDBStore, "read", lambda self, cols: reads.append(cols) or real_read(self, cols))
    monkeypatch.setattr(BM25Store, "load", lambda self, *a: loads.append(1) or real_load(self, *a))
    idx = open_index(tmp_path)  # reopened: searches without an update
    embeds = []
    real_embed = idx.embedder.embed
    idx.embedder.embed = lambda texts: embeds.append(len(texts)) or real_embed(texts)
    for retriever in ("dense", "bm25", "hybrid"):
        for q in ("bread", "ferry timetable", "QX7Z9"):
            assert idx.search(q, 3, retriever)
    assert len(reads) == 1 and len(loads) == 1
    many = idx.search_many(["bread", "ferry timetable", "QX7Z9"], 3, "hybrid")
    assert embeds[-1] == 3  # one batch for all queries
    assert [doc_ids(h) for h in many] == [doc_ids(idx.search(q, 3, "hybrid")) for q in ("bread", "ferry timetable", "QX7Z9")]


def test_the_table_is_the_truth_after_a_crash(tmp_path):
    docs = corpus()
    idx = open_index(tmp_path)
    idx.update(docs)
    LanceDBStore(tmp_path / "index" / "lancedb").delete_documents(["t3"])  # as if killed mid-update
    (tmp_path / "index" / "bm25" / "CURRENT").unlink()
    stats = open_index(tmp_path).update(docs)
    assert (stats.added_docs, stats.unchanged_docs, stats.embedded, stats.chunks) == (1, 26, 0, 27)
    assert doc_ids(open_index(tmp_path).search("wheat harvest", 1, "bm25")) == ["t3"]


def test_bm25_updated_in_place_ranks_like_a_fresh_index(tmp_path):
    db = connect(tmp_path / "cache.sqlite")
    idx = open_index(tmp_path, db=db)
    idx.update(corpus())
    edited = [
        Document(d.id, d.source, d.text + " The ferry timetable lists QX7Z9.") if d.id in ("t1", "e3") else d
        for d in corpus()
        if d.id != "t6"
    ]
    edited.append(Document("owl", "owl.md", "The snowy owl hunts lemmings; the ferry does not."))
    idx.update(edited)
    fresh = KnowledgeIndex(tmp_path / "fresh", db, settings=ChunkSettings(), embedder=SentenceTransformerEmbedder(db))
    fresh.update(edited)
    for query in ("ferry timetable", "QX7Z9", "bread and honey cakes", "snowy owl ferry"):
        assert idx.search(query, 30, "bm25") == fresh.search(query, 30, "bm25")  # same chunks, scores and ranks


def test_progress_and_input_checks(tmp_path):
    seen = []
    idx = open_index(tmp_path)
    idx.update(corpus(), progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, 27) and seen[-1] == (27, 27)
    with pytest.raises(ValueError, match="duplicate document id 't0'"):
        idx.update([*corpus(), Document("t0", "t0.txt", "again")])
    with pytest.raises(ValueError, match="unknown retriever"):
        idx.search("x", 3, "sparse")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="at most 254"):
        open_index(tmp_path, size=300)
    assert open_index(tmp_path / "empty").search("anything", 5, "hybrid") == []


def test_warns_when_chunks_would_be_truncated_by_the_embedder(tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit

    words = [f"antidisestablishmentarian{i}" for i in range(200)]  # one word here, many MiniLM word pieces
    whitespace = Tokenizer(WordLevel({w: i for i, w in enumerate(["[UNK]", *words])}, unk_token="[UNK]"))
    whitespace.pre_tokenizer = WhitespaceSplit()
    whitespace.save(str(tmp_path / "tokenizer.json"))
    idx = open_index(tmp_path, tokenizer=str(tmp_path / "tokenizer.json"))
    with pytest.warns(UserWarning, match="truncated when embedded"):
        idx.update([Document("w", "w.md", " ".join(words))])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_index(tmp_path / "other").update(corpus())  # the default settings never warn


@pytest.mark.slow
def test_ivf_pq_index_above_the_threshold_keeps_recall(tmp_path):
    rng = np.random.default_rng(0)
    vocabulary = (
        "river bridge lantern harbour keeper market honey winter museum boat carved festival valley orchard engine "
        "pressure valve turbine inspection revenue ledger invoice merchant cathedral glacier violin falcon copper"
    ).split()
    docs = [
        Document(f"g{i}", f"g{i}.md", " ".join(rng.choice(vocabulary, size=12)).capitalize() + ".") for i in range(420)
    ]
    idx = open_index(tmp_path, ann_min_rows=400)
    idx.ann_budget_ms = 10_000  # at 420 rows an exact scan is faster than any ANN query: allow it anyway
    idx.update(docs)
    table = LanceDBStore(tmp_path / "index" / "lancedb")
    assert table.has_vector_index()
    manifest = json.loads((tmp_path / "index" / "index.json").read_text())
    assert manifest["ann_trained_rows"] == 420 and manifest["dense_search"]["path"] == "ann"

    queries = [" ".join(rng.choice(vocabulary, size=5)) for _ in range(20)]
    vectors = idx.embedder.embed([d.text for d in docs])
    exact = [set(np.argsort(-(vectors @ q))[:10]) for q in idx.embedder.embed(queries)]
    found = [{int(h.chunk.doc_id[1:]) for h in hits} for hits in idx.search_many(queries, 10, "dense")]
    recall = np.mean([len(e & f) / 10 for e, f in zip(exact, found)])
    assert recall >= 0.95
    assert idx._load().vectors is None  # searched through LanceDB, not the in-memory exact path

    # rows added after training are found too (optimize folds them into the index)
    extra = Document("zebra", "zebra.md", "A zebra grazes on the savanna beside a herd of antelope.")
    idx.update([*docs, extra])
    assert doc_ids(idx.search("striped horse eating grass in Africa", 1, "dense")) == ["zebra"]


def test_importing_the_knowledge_modules_stays_light():
    code = (
        "import sys, tunewise.knowledge.index, tunewise.knowledge.loaders, tunewise.knowledge.evaluation;"
        "heavy = {'lancedb', 'bm25s', 'trafilatura', 'pypdf', 'sentence_transformers', 'torch', 'tokenizers'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_document_hash_depends_on_source_and_text_only():
    a = Document("a", "a.md", "text", {"x": 1})
    assert index_module.document_hash(a) == index_module.document_hash(Document("a", "a.md", "text", {"x": 2}))
    assert index_module.document_hash(a) != index_module.document_hash(Document("a", "a.txt", "text"))
