"""PostgreSQL + pgvector chunk store (GitHub issue 18): insert, HNSW build, query latency and recall@10 at 100k x 384,
next to LanceDB's store on the same vectors.

    .venv/bin/python bench/postgres.py [--data clustered|uniform] [--noise 2.0] [--rows 100000] [--dim 384]
                                       [--queries 200] [--ef-search 40,100,200,400] [--m 16] [--ef-construction 128]
                                       [--skip-lancedb]

Vectors, fixed seed: `clustered` (default): 1,000 random centres of unit norm; each row is a centre plus isotropic
Gaussian noise of norm --noise, renormalised. At 2.0 a row has cosine ~0.45 to its centre and ~0.2 to another row
of its cluster; the larger the noise, the closer to `uniform`: random unit vectors, no structure at all, the
hardest case for any ANN index (every row is about as far from a query as every other). Queries are new points
drawn the same way.
Both stores get the rows through their `add`, 4,096 per call as KnowledgeIndex writes them, with a short
text per row. The server is PyPI pgserver's PostgreSQL 16 + pgvector 0.6 on a unix socket, in a temp folder,
stopped at the end.

Per store: insert (all `add` calls), index build (PostgresStore: HNSW with --m / --ef-construction;
LanceDBStore: IVF_PQ), `read(["id", "vector"])` (what exact search loads), query p50/p95 of single
`ann_search` calls (one query, top 10; one round trip each), the per-query time when all queries go in one
`ann_search` call, and recall@10 against exact numpy over the same vectors. pgvector is measured at each
--ef-search.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from tables import table  # noqa: E402

from tunewise.knowledge.chunker import Chunk  # noqa: E402
from tunewise.knowledge.stores.base import ChunkStore  # noqa: E402

K = 10
CENTRES = 1000
WRITE_BATCH = 4096


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def draw(kind: str, rng: np.random.Generator, centres: np.ndarray, n: int, noise: float) -> np.ndarray:
    dim = centres.shape[1]
    x = rng.normal(scale=noise / np.sqrt(dim), size=(n, dim))
    if kind == "clustered":
        x += centres[rng.integers(0, len(centres), n)]
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def chunks_for(n: int) -> tuple[list[Chunk], dict[str, str]]:
    chunks = [Chunk(f"d{i}:0", f"d{i}", f"d{i}.md", f"synthetic chunk number {i}", 4, f"h{i}") for i in range(n)]
    return chunks, {c.doc_id: f"doc-hash-{c.doc_id}" for c in chunks}


def exact_top(vectors: np.ndarray, queries: np.ndarray) -> tuple[list[set[int]], list[float]]:
    tops, times = [], []
    for q in queries:
        start = time.perf_counter()
        scores = vectors @ q
        top = np.argpartition(-scores, K)[:K]
        times.append(time.perf_counter() - start)
        tops.append({int(i) for i in top})
    return tops, times


def ms(seconds: list[float], q: float) -> str:
    return f"{1000 * float(np.quantile(seconds, q)):.1f}"


def measure(store: ChunkStore, vectors: np.ndarray, queries: np.ndarray, exact: list[set[int]]) -> dict[str, Any]:
    """Single-query latencies, the batched per-query time and recall@10 of `store.ann_search`."""
    store.ann_search(queries[:5], K)  # warm: connection, plan cache, pages
    times, found = [], []
    for q in queries:
        start = time.perf_counter()
        hits = store.ann_search(q[None, :], K)[0]
        times.append(time.perf_counter() - start)
        found.append({int(i.split(":")[0][1:]) for i, _ in hits})
    start = time.perf_counter()
    batched = store.ann_search(queries, K)
    per_query = (time.perf_counter() - start) / len(queries)
    assert [{int(i.split(":")[0][1:]) for i, _ in h} for h in batched] == found, "batched and single searches differ"
    recall = statistics.mean(len(e & f) / K for e, f in zip(exact, found))
    return {"p50": ms(times, 0.5), "p95": ms(times, 0.95), "batched": f"{1000 * per_query:.2f}",
            "recall": f"{recall:.3f}"}


def fill(store: ChunkStore, vectors: np.ndarray) -> tuple[float, float]:
    """Seconds to add every row (WRITE_BATCH per call) and to read ids and vectors back."""
    chunks, hashes = chunks_for(len(vectors))
    start = time.perf_counter()
    for s in range(0, len(chunks), WRITE_BATCH):
        store.add(chunks[s : s + WRITE_BATCH], hashes, vectors[s : s + WRITE_BATCH])
    store.optimize()
    inserted = time.perf_counter() - start
    start = time.perf_counter()
    rows = store.read(["id", "vector"])
    read = time.perf_counter() - start
    assert rows.num_rows == len(vectors)
    return inserted, read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["clustered", "uniform"], default="clustered")
    parser.add_argument("--noise", type=float, default=2.0, help="norm of a clustered row's noise (centres: 1)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ef-search", default="40,100,200,400")
    parser.add_argument("--m", type=int, default=None)
    parser.add_argument("--ef-construction", type=int, default=None)
    parser.add_argument("--skip-lancedb", action="store_true")
    args = parser.parse_args()

    import pgserver

    from tunewise.knowledge.stores import postgres
    from tunewise.knowledge.stores.lancedb import LanceDBStore

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(CENTRES, args.dim)) / np.sqrt(args.dim)
    vectors = draw(args.data, rng, centres, args.rows, args.noise)
    queries = draw(args.data, rng, centres, args.queries, args.noise)
    exact, exact_times = exact_top(vectors, queries)
    m = args.m or postgres.M
    ef_construction = args.ef_construction or postgres.EF_CONSTRUCTION
    log(f"{args.rows} x {args.dim} {args.data} vectors (noise {args.noise}), {args.queries} queries; "
        f"HNSW m={m} ef_construction={ef_construction}")

    rows = [["numpy exact", "-", "-", "-", "-", ms(exact_times, 0.5), ms(exact_times, 0.95), "-", "1.000"]]
    with tempfile.TemporaryDirectory() as tmp:
        server = pgserver.get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        try:
            socket_dir = server.get_uri().partition("host=")[2]
            store = postgres.PostgresStore(
                f"postgresql://postgres@/postgres?host={socket_dir}", "tunewise_chunks_bench", m=m,
                ef_construction=ef_construction,
            )
            store.drop()
            inserted, read = fill(store, vectors)
            log(f"pgvector: inserted in {inserted:.1f} s, read back in {read:.1f} s; building HNSW")
            start = time.perf_counter()
            store.create_vector_index()
            built = time.perf_counter() - start
            for ef in [int(e) for e in args.ef_search.split(",")]:
                store.use_ann_tuning({"ef_search": ef})
                r = measure(store, vectors, queries, exact)
                log(f"pgvector ef_search={ef}: {r}")
                rows.append([f"pgvector HNSW ef_search={ef}", f"{inserted:.1f}", f"{built:.1f}", f"{read:.1f}",
                             f"m={m}, ef_c={ef_construction}", r["p50"], r["p95"], r["batched"], r["recall"]])
            store.drop()
        finally:
            server.cleanup()

        if not args.skip_lancedb:
            lance = LanceDBStore(Path(tmp) / "lancedb")
            inserted, read = fill(lance, vectors)
            log(f"lancedb: inserted in {inserted:.1f} s; building IVF_PQ")
            start = time.perf_counter()
            lance.create_vector_index()
            built = time.perf_counter() - start
            r = measure(lance, vectors, queries, exact)
            rows.append(["LanceDB IVF_PQ nprobes 20 refine 10", f"{inserted:.1f}", f"{built:.1f}", f"{read:.1f}", "-",
                         r["p50"], r["p95"], r["batched"], r["recall"]])

    headers = ["store", "insert s", "index s", "read s", "index", "p50 ms", "p95 ms", "batched ms/q", "recall@10"]
    print(table(headers, rows))


if __name__ == "__main__":
    main()
