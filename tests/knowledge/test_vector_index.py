"""Dense search at scale on a real LanceDB: recall of the ANN index measured after its build and recorded, tuned or
given up for exact search when it falls short, and the exact path equal to brute-force numpy."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest

from tunewise.db import connect
from tunewise.knowledge.chunker import ChunkSettings
from tunewise.knowledge.embedder import Embedder
from tunewise.knowledge.index import KnowledgeIndex
from tunewise.knowledge.loaders import Document
from tunewise.knowledge.ranking import exact_search, top_k
from tunewise.knowledge.recall import SAMPLE, SEED, DenseSearch
from tunewise.knowledge.stores.lancedb import INDEX_TYPE, LanceDBStore

ROWS = 1500
CLUSTERS = 30
DIM = 384
WEAK = {"nprobes": 1, "refine_factor": 1}
STRONG = {"nprobes": 64, "refine_factor": 30}


def clustered(n: int, seed: int = 0) -> np.ndarray:
    """Unit vectors in tight clusters (copies of a few directions plus noise): top-10s are decided by the noise,
    which is what makes an ANN index miss."""
    rng = np.random.default_rng(seed)
    bases = rng.standard_normal((CLUSTERS, DIM)).astype(np.float32)
    vectors = bases[np.arange(n) % CLUSTERS] + rng.normal(0, 0.35, (n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


class TableEmbedder(Embedder):
    """Text `row <i>` embeds as row i of a fixed matrix: no model, so a few thousand rows index in seconds."""

    max_seq_length = 256
    tokenizer_file = None

    def __init__(self, db, vectors: np.ndarray):
        super().__init__(db, "table-embedder")
        self.vectors = vectors

    def _compute(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.vectors[int(re.fullmatch(r"row (\d+)", t).group(1))] for t in texts])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One index of ROWS clustered rows, its ANN index built and measured with a reachable min_recall."""
    root = tmp_path_factory.mktemp("vector-index")
    vectors = clustered(ROWS)
    db = connect(root / "cache.sqlite")
    index = open_index(root, db, vectors, min_recall=0.9)
    index.update([Document(f"d{i:05d}", f"d{i:05d}.md", f"row {i}") for i in range(ROWS)])
    return root, db, vectors


def open_index(root, db, vectors, *, min_recall: float, tunings=(WEAK, STRONG)) -> KnowledgeIndex:
    store = LanceDBStore(root / "index" / "lancedb", tunings=list(tunings))
    return KnowledgeIndex(root / "index", db, settings=ChunkSettings(), embedder=TableEmbedder(db, vectors),
                          ann_min_rows=ROWS, min_recall=min_recall, ann_budget_ms=10_000, store=store)


def manifest(root) -> dict:
    return json.loads((root / "index" / "index.json").read_text())


def brute_force(matrix: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    """The k best rows by dot product, ties to the earlier row."""
    scores = matrix @ query
    return np.lexsort((np.arange(len(scores)), -scores))[:k].tolist()


@pytest.mark.slow
def test_recall_is_measured_on_sampled_rows_after_the_build_and_recorded(built):
    root, db, vectors = built
    state = manifest(root)["dense_search"]
    assert state["path"] == "ann" and state["decision"] == "ann"  # the first, cheapest setting reached 0.9
    assert state["rows"] == ROWS and state["sample"] == SAMPLE and state["min_recall"] == 0.9
    assert state["index"]["type"] == INDEX_TYPE and state["build_s"] > 0 and state["measured_at"]
    assert [t["tuning"] for t in state["trials"]] == [WEAK] and state["tuning"] == WEAK

    # the recorded recall is what the index returns for the sampled rows against brute force over all of them
    sample = np.sort(np.random.default_rng(SEED).choice(ROWS, SAMPLE, replace=False))
    store = LanceDBStore(root / "index" / "lancedb", tunings=[WEAK])
    found = []
    for row in sample:
        truth = {f"d{j:05d}:0" for j in brute_force(vectors, vectors[row], 10)}
        found.append(len(truth & {i for i, _ in store.ann_search(vectors[row][None], 10)[0]}) / 10)
    assert state["recall"] == pytest.approx(np.mean(found), abs=0.006)  # 0.005 = one tie resolved either way
    assert 0.9 <= state["recall"] < 1.0  # 8-bit quantisation, no re-ranking: some ties of the tenth are missed

    index = open_index(root, db, vectors, min_recall=0.9)
    assert index.dense_search().summary == (
        f"dense search: {INDEX_TYPE} (recall@10 {state['recall']:.2f} on {SAMPLE} sampled rows)")
    index.search("row 3", 10, "dense")
    assert index._load().vectors is None  # answered through the ANN index


@pytest.mark.slow
def test_min_recall_out_of_reach_is_tuned_then_exact_and_the_report_says_so(built, tmp_path):
    from constructed_run import ArmSpec, write_run

    from tunewise.report import report_run

    root, db, vectors = built
    trained = {k: manifest(root)[k] for k in ("ann_trained_rows", "ann_build_s")}
    index_files = sorted(p.name for p in (root / "index" / "lancedb").rglob("*.idx"))

    tuned = open_index(root, db, vectors, min_recall=0.995)
    tuned.update([Document(f"d{i:05d}", f"d{i:05d}.md", f"row {i}") for i in range(ROWS)])
    state = manifest(root)["dense_search"]
    assert state["path"] == "ann" and state["tuning"] == STRONG and state["recall"] >= 0.995
    assert state["decision"] == "ann (tuned: nprobes=64, refine_factor=30)"
    assert [t["tuning"] for t in state["trials"]] == [WEAK, STRONG]

    strict = open_index(root, db, vectors, min_recall=1.0, tunings=(WEAK,))
    strict.update([Document(f"d{i:05d}", f"d{i:05d}.md", f"row {i}") for i in range(ROWS)])
    state = manifest(root)["dense_search"]
    assert state["path"] == "exact" and state["decision"] == f"exact (ann recall {state['recall']:.2f} < 1.00)"
    # re-measured for the new min_recall, never rebuilt
    assert {k: manifest(root)[k] for k in trained} == trained
    assert sorted(p.name for p in (root / "index" / "lancedb").rglob("*.idx")) == index_files

    reopened = open_index(root, db, vectors, min_recall=1.0, tunings=(WEAK,))
    for row in (0, 7, 1499):
        hits = reopened.search(f"row {row}", 10, "dense")
        assert [h.chunk.doc_id for h in hits] == [f"d{j:05d}" for j in brute_force(vectors, vectors[row], 10)]
    assert reopened._load().vectors is not None  # the exact path

    run = write_run(tmp_path, [ArmSpec("zero_shot", [1, 0, 1, 1])])
    run.update_manifest(knowledge={"chunks": ROWS, "dense_search": reopened.dense_search().to_json()})
    paths = report_run(run.run_id, tmp_path)
    line = f"dense search: exact (ann recall {state['recall']:.2f} < 1.00); {INDEX_TYPE} measured on {SAMPLE} sampled rows"
    assert line in paths["markdown"].read_text() and html.escape(line) in paths["html"].read_text()


def test_below_ann_min_rows_dense_search_is_exact_without_measuring(tmp_path):
    vectors = clustered(40)
    db = connect(tmp_path / "cache.sqlite")
    index = KnowledgeIndex(tmp_path / "index", db, settings=ChunkSettings(), embedder=TableEmbedder(db, vectors))
    index.update([Document(f"d{i}", f"d{i}.md", f"row {i}") for i in range(40)])
    assert "dense_search" not in manifest(tmp_path)
    assert index.dense_search() == DenseSearch(path="exact", rows=40, min_recall=0.95)
    assert index.dense_search().summary == "dense search: exact"


def test_exact_search_equals_brute_force_numpy_ties_included():
    matrix = clustered(3000, seed=1)
    matrix[2000:2010] = matrix[5]  # rows tied with row 5
    queries = np.concatenate([matrix[[5, 17]], clustered(300, seed=2)])
    ids = [f"c{i}" for i in range(len(matrix))]
    for batch in (queries[:1], queries):  # one query (a matrix-vector product) and batches of them
        for query, hits in zip(batch, exact_search(matrix, batch, 12, ids)):
            assert [i for i, _ in hits] == [ids[j] for j in brute_force(matrix, query, 12)]
            assert [s for _, s in hits] == pytest.approx([float(matrix[int(i[1:])] @ query) for i, _ in hits], abs=1e-6)
    assert [i for i, _ in exact_search(matrix, matrix[[5]], 11, ids)[0]] == ["c5", *(f"c{j}" for j in range(2000, 2010))]


def test_top_k_keeps_ties_in_position_order_and_honours_min_score():
    scores = np.array([0.5, 0.9, 0.5, 0.0, 0.9, 0.5, -1.0])
    ids = list("abcdefg")
    assert top_k(scores, 3, ids) == [("b", 0.9), ("e", 0.9), ("a", 0.5)]
    assert top_k(scores, 4, ids) == [("b", 0.9), ("e", 0.9), ("a", 0.5), ("c", 0.5)]
    assert top_k(scores, 10, ids, min_score=0.0) == [("b", 0.9), ("e", 0.9), ("a", 0.5), ("c", 0.5), ("f", 0.5)]
    assert top_k(scores, 2, ids, min_score=0.9) == [] and top_k(scores, 0, ids) == []
