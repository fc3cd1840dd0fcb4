"""The PostgreSQL + pgvector chunk store on a real server (PyPI pgserver: PostgreSQL 16 + pgvector 0.6, on a unix
socket in a temp folder, one per module): incremental updates, writers creating one table at once, the same hits
as LanceDB, HNSW recall against exact search, a rag run end to end, and one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
import yaml
from pgvector.psycopg import register_vector
from test_rag import write_knowledge_task

import tunewise
from tunewise.db import connect
from tunewise.errors import InputError
from tunewise.evaluation.experiment import RunOptions
from tunewise.knowledge.chunker import Chunk, ChunkSettings
from tunewise.knowledge.embedder import SentenceTransformerEmbedder
from tunewise.knowledge.index import KnowledgeIndex
from tunewise.knowledge.loaders import Document
from tunewise.knowledge.stores import StoreError, open_store, public_location
from tunewise.knowledge.stores.base import COLUMNS
from tunewise.knowledge.stores.lancedb import LanceDBStore
from tunewise.knowledge.stores.postgres import PostgresStore, table_name
from tunewise.knowledge.task_index import build_task_index, index_directory
from tunewise.taskfile import load_task

from .test_index import corpus, doc_ids


@pytest.fixture(scope="module")
def pg() -> Iterator[str]:
    """The URL of a fresh PostgreSQL with pgvector, stopped and deleted after the module.

    Its folder is not under pytest's: run as root, pgserver starts the server as its own user and opens the
    folders above to it, which another pytest session starting meanwhile closes again."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR is not set (pgserver locks under /tmp)
        import pgserver

    folder = Path(tempfile.mkdtemp(prefix="tunewise-pg-"))
    try:
        server = pgserver.get_server(folder / "data", cleanup_mode="delete")
        try:
            yield f"postgresql://postgres@/postgres?host={server.get_uri().partition('host=')[2]}"
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """One embedding cache for the module: a corpus is embedded once, whichever store it goes to."""
    return connect(tmp_path_factory.mktemp("cache") / "cache.sqlite")


def open_index(directory: Path, db, store: str, ann_min_rows: int = 50_000) -> KnowledgeIndex:
    """An index over `store`; from `ann_min_rows` on, dense search goes through the ANN index whatever its speed."""
    return KnowledgeIndex(
        directory, db, settings=ChunkSettings(), embedder=SentenceTransformerEmbedder(db), ann_min_rows=ann_min_rows,
        ann_budget_ms=60_000, store=open_store(store, directory),
    )


def row_versions(url: str, table: str) -> dict[str, str]:
    """id -> xmin, the transaction that wrote the row: unchanged only if the row was not rewritten."""
    with psycopg.connect(url) as conn:
        return dict(conn.execute(f"SELECT id, xmin::text FROM {table}").fetchall())


def files_under(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_mtime_ns for p in path.rglob("*") if p.is_file()}


def test_reindexing_an_unchanged_corpus_embeds_and_writes_nothing(tmp_path, pg, db):
    directory = tmp_path / "unchanged"
    stats = open_index(directory, db, pg).update(corpus())
    assert (stats.documents, stats.chunks, stats.added_docs) == (27, 27, 27)
    rows, files = row_versions(pg, "tunewise_chunks_unchanged"), files_under(directory)
    assert len(rows) == 27

    again = open_index(directory, connect(tmp_path / "fresh-cache.sqlite"), pg)  # a new process, no cache
    stats = again.update(corpus())
    assert stats.embedded == 0 and again.embedder.computed == 0
    assert (stats.unchanged_docs, stats.added_docs, stats.changed_docs, stats.removed_docs) == (27, 0, 0, 0)
    assert row_versions(pg, "tunewise_chunks_unchanged") == rows and files_under(directory) == files


def test_changed_added_and_removed_documents(tmp_path, pg, db):
    directory = tmp_path / "changes"
    idx = open_index(directory, db, pg)
    idx.update(corpus())
    assert doc_ids(idx.search("QX7Z9", 1, "bm25")) == ["note"]
    rows = row_versions(pg, "tunewise_chunks_changes")

    docs = [d for d in corpus() if d.id != "note"]
    docs[3] = Document("t3", "t3.md", "Farmers harvest barley in late summer; the granary stores it for winter.")
    docs.append(Document("owl", "owl.md", "The snowy owl Bubo scandiacus hunts lemmings on the tundra."))
    stats = open_index(directory, db, pg).update(docs)
    assert (stats.added_docs, stats.changed_docs, stats.removed_docs, stats.unchanged_docs) == (1, 1, 1, 25)
    assert stats.chunks == 27

    after = row_versions(pg, "tunewise_chunks_changes")
    assert "note:0" not in after and after["t3:0"] != rows["t3:0"] and "owl:0" in after
    assert {k: v for k, v in after.items() if k not in ("t3:0", "owl:0")} == {
        k: v for k, v in rows.items() if k not in ("t3:0", "note:0")
    }  # the 25 unchanged documents' rows were not touched
    idx = open_index(directory, db, pg)
    assert idx.search("QX7Z9", 3, "bm25") == []
    assert doc_ids(idx.search("granary barley", 1, "bm25")) == ["t3"]
    assert doc_ids(idx.search("arctic bird of prey", 1, "dense")) == ["owl"]


def test_an_add_lands_whole_or_not_at_all_and_the_next_update_repairs_a_crash(tmp_path, pg, db):
    directory = tmp_path / "crash"
    open_index(directory, db, pg).update(corpus())
    store = open_store(pg, directory)
    store.delete_documents(["t3"])  # as if killed between deleting a changed document and writing it again
    shutil.rmtree(directory / "bm25")  # and BM25 lost with it

    t3 = Chunk("t3:0", "t3", "t3.md", "Farmers harvest wheat.", 5, "h")
    clash = Chunk("t0:0", "t0", "t0.md", "a second row with t0's id", 5, "h")
    with pytest.raises(StoreError, match="duplicate key"):
        store.add([t3, clash], {"t3": "x", "t0": "y"}, np.ones((2, 384), np.float32) / np.sqrt(384))
    assert store.count() == 26 and "t3" not in store.documents()  # t3's row, written first, was rolled back

    stats = open_index(directory, db, pg).update(corpus())
    assert (stats.added_docs, stats.unchanged_docs, stats.embedded, stats.chunks) == (1, 26, 0, 27)
    assert doc_ids(open_index(directory, db, pg).search("wheat harvest", 1, "bm25")) == ["t3"]


def test_writers_that_create_a_new_table_at_once_all_land(pg):
    """Six stores (as six processes would) write their first rows into one new table at the same moment: the table
    is created once and every row lands. Without a lock, five of the six failed on pg_type's unique index."""
    stores = [PostgresStore(pg, "tunewise_first_writers") for _ in range(6)]
    for store in stores:
        store._connect()
    start = threading.Barrier(len(stores))
    errors: list[Exception] = []

    def write(i: int, store: PostgresStore) -> None:
        start.wait()
        try:
            store.add([Chunk(f"w{i}:0", f"w{i}", f"w{i}.md", f"row {i}", 2, "h")], {f"w{i}": "x"},
                      np.ones((1, 8), np.float32))
        except StoreError as e:
            errors.append(e)

    threads = [threading.Thread(target=write, args=(i, store)) for i, store in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert stores[0].count() == 6 and sorted(stores[0].documents()) == [f"w{i}" for i in range(6)]
    stores[0].drop()


@pytest.fixture(scope="module")
def twins(tmp_path_factory, pg, db) -> tuple[KnowledgeIndex, KnowledgeIndex, KnowledgeIndex]:
    """The corpus in LanceDB, in PostgreSQL searched exactly, and in PostgreSQL searched through HNSW."""
    root = tmp_path_factory.mktemp("twins")
    lance = open_index(root / "lance", db, "lancedb")
    exact = open_index(root / "exact", db, pg)
    hnsw = open_index(root / "hnsw", db, pg, ann_min_rows=10)
    for idx in (lance, exact, hnsw):
        idx.update(corpus())
    return lance, exact, hnsw


QUERIES = ["automobile repair workshop", "warning QX7Z9 in my car", "bread at dawn", "ferry timetable",
           "dashboard error code for the cabin light", "who plays music in the town hall?"]  # fmt: skip


def test_postgres_returns_the_hits_lancedb_returns(twins):
    lance, exact, hnsw = twins
    assert hnsw._load().vectors is None and exact._load().vectors is not None  # through HNSW / in memory
    chosen = hnsw.dense_search()
    assert chosen.path == "ann" and chosen.recall == 1.0 and chosen.sample == 27
    assert chosen.index == {"type": "HNSW", "distance": "cosine", "m": 16, "ef_construction": 64}
    for retriever in ("dense", "bm25", "hybrid"):
        want = lance.search_many(QUERIES, 5, retriever)
        for idx in (exact, hnsw):
            got = idx.search_many(QUERIES, 5, retriever)
            assert [[h.chunk for h in hits] for hits in got] == [[h.chunk for h in hits] for hits in want], retriever
            assert [h.score for hits in got for h in hits] == pytest.approx(
                [h.score for hits in want for h in hits], abs=1e-5
            )
    assert lance.fingerprint() == exact.fingerprint() == hnsw.fingerprint()


def test_read_gives_the_lancedb_schema_and_values(twins, pg):
    lance, exact, _ = twins
    want = LanceDBStore(lance.directory / "lancedb").read(COLUMNS).sort_by("id")
    got = open_store(pg, exact.directory).read(COLUMNS).sort_by("id")
    assert got.schema == want.schema
    assert got.drop_columns(["vector"]).equals(want.drop_columns(["vector"]))
    assert np.array_equal(np.stack(got["vector"].to_numpy(zero_copy_only=False)),
                          np.stack(want["vector"].to_numpy(zero_copy_only=False)))


def clustered(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    dim = centres.shape[1]
    x = centres[rng.integers(0, len(centres), n)] + rng.normal(scale=1 / np.sqrt(dim), size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.slow
def test_hnsw_recall_at_10_against_exact_search(pg):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(25, 384)) / np.sqrt(384)
    vectors, queries = clustered(rng, centres, 2500), clustered(rng, centres, 50)
    store = PostgresStore(pg, table_name("recall"))
    chunks = [Chunk(f"v{i}:0", f"v{i}", "v.md", "x", 1, "h") for i in range(len(vectors))]
    store.add(chunks, {c.doc_id: "h" for c in chunks}, vectors)
    store.create_vector_index()
    store.optimize()
    assert store.has_vector_index()
    with psycopg.connect(pg) as conn:
        register_vector(conn)
        plan = "\n".join(r[0] for r in conn.execute(b"EXPLAIN " + store.nearest_query(10).as_bytes(conn), [queries[0]]))
    assert "Index Scan using tunewise_chunks_recall_hnsw" in plan

    found = store.ann_search(queries, 10)
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    recall = np.mean([len({f"v{i}:0" for i in e} & {i for i, _ in f}) / 10 for e, f in zip(exact, found)])
    assert recall >= 0.99
    best = found[0][0]
    assert best[1] == pytest.approx(float(vectors[int(best[0][1:-2])] @ queries[0]), abs=1e-5)  # cosine similarity

    assert store.ann_tunings() == [{"ef_search": 200}, {"ef_search": 400}, {"ef_search": 1000}]
    with pytest.raises(ValueError, match="unknown pgvector query setting"):
        store.use_ann_tuning({"nprobes": 20})

    # deeper than pgvector's 1,000 candidates, the scan is exact, not cut short
    deep = store.ann_search(queries[:1], 1200)[0]
    assert [i for i, _ in deep] == [f"v{i}:0" for i in np.argsort(-(vectors @ queries[0]))[:1200]]


@pytest.mark.slow
def test_a_rag_run_keeps_its_chunks_in_postgres(tmp_path, server, pg):
    task = write_knowledge_task(tmp_path / "task", server.base_url, [{"rag": {"k": 2, "retriever": "hybrid"}}])
    spec = yaml.safe_load(task.read_text())
    spec["knowledge"]["store"] = pg
    task.write_text(yaml.safe_dump(spec, sort_keys=False))
    outcome = tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs"))
    arm = outcome.summary.arms[0]
    assert arm.score == 1.0 and arm.recall_at_k == 1.0
    knowledge = json.loads((outcome.store.dir / "manifest.json").read_text())["knowledge"]
    assert knowledge["store"] == public_location(pg) and "postgres@" not in knowledge["store"]
    table = table_name(Path(knowledge["index_dir"]).name)
    assert len({i.partition(":")[0] for i in row_versions(pg, table)}) == 11


def test_the_store_is_part_of_the_index_key_without_its_user():
    key = [Path("runs"), "t", [Path("/docs")], ChunkSettings(), "st:minilm"]
    lance = index_directory(*key)
    assert lance == index_directory(*key, "lancedb")
    alice = index_directory(*key, "postgresql://alice@db.internal:5433/kb?sslmode=require")
    assert alice != lance
    assert alice == index_directory(*key, "postgresql://bob@db.internal:5433/kb?sslmode=require&user=carol")
    assert alice != index_directory(*key, "postgresql://alice@db.internal:5433/other?sslmode=require")
    public = public_location("postgres://alice@db:5433/kb?user=x&sslmode=require")
    assert public == "postgres://db:5433/kb?sslmode=require"
    assert table_name("My Task-0123456789") == "tunewise_chunks_my_task_0123456789"
    long_a, long_b = table_name("x" * 80 + "a"), table_name("x" * 80 + "b")
    assert long_a != long_b and len(long_a.encode()) + len("_doc_id") <= 63


def test_unreachable_server_refused_login_and_missing_rights_are_one_line_errors(tmp_path, pg):
    with pytest.raises(StoreError, match=r"^knowledge store postgresql:///postgres\?host=/nonexistent: connection"):
        open_store("postgresql://postgres@/postgres?host=/nonexistent", tmp_path / "i").count()
    socket = pg.partition("host=")[2]
    with pytest.raises(StoreError, match='role "nobody" does not exist'):
        open_store(f"postgresql://nobody@/postgres?host={socket}", tmp_path / "i").count()
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute("CREATE ROLE reader LOGIN")
        conn.execute("CREATE DATABASE bare")
    with pytest.raises(StoreError, match="pgvector is not enabled in this database and this user may not enable it"):
        open_store(f"postgresql://reader@/bare?host={socket}", tmp_path / "i").count()
    for url in ("postgresql://u:secret@db/kb", f"postgresql://postgres@/postgres?host={socket}&password=secret"):
        with pytest.raises(StoreError, match="holds a password") as e:
            open_store(url, tmp_path / "i")
        assert "secret" not in str(e.value)


def test_a_bad_store_is_an_error_at_its_line_in_the_task_file(tmp_path, server):
    task = write_knowledge_task(tmp_path / "task", server.base_url, [{"rag": {"k": 2}}])
    spec = yaml.safe_load(task.read_text())
    spec["knowledge"]["store"] = "postgresql://postgres@/postgres?host=/nonexistent"
    task.write_text(yaml.safe_dump(spec, sort_keys=False))
    line = next(n for n, text in enumerate(task.read_text().splitlines(), 1) if "store:" in text)
    with pytest.raises(InputError) as e:
        build_task_index(load_task(task), connect(tmp_path / "db.sqlite"), tmp_path / "runs")
    assert str(e.value).startswith(f"{task}:{line}: knowledge store postgresql:///postgres?host=/nonexistent: ")

    spec["knowledge"]["store"] = "postgresql://postgres:secret@db.internal/kb"
    task.write_text(yaml.safe_dump(spec, sort_keys=False))
    r = subprocess.run([sys.executable, "-m", "tunewise.cli", "run", str(task), "--runs-dir", str(tmp_path / "runs")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith(f"error: {task}:{line}: ") and "holds a password" in r.stderr
    assert "secret" not in r.stderr and not len(server.log.entries)


def test_the_postgres_store_imports_psycopg_only_when_used():
    code = (
        "import sys, tunewise.knowledge.task_index, tunewise.knowledge.stores.postgres;"
        "print(sorted({'psycopg', 'pgvector', 'pgserver'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
