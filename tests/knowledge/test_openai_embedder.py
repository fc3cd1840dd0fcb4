"""Embeddings from an OpenAI-compatible endpoint: the loopback server embeds (a hashed bag of words),
counts every request and injects faults; the index, the cache and the CLI run on top of it for real."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from capitals import write_capitals_task
from openai_server import CAPITALS, OpenAITestServer

import tunewise
from tunewise.db import connect
from tunewise.errors import InputError, ModelCallError
from tunewise.evaluation.experiment import RunOptions
from tunewise.knowledge.chunker import ChunkSettings, chunk_document, load_tokenizer
from tunewise.knowledge.embedder import SentenceTransformerEmbedder
from tunewise.knowledge.task_index import open_embedder
from tunewise.knowledge.index import KnowledgeIndex
from tunewise.knowledge.loaders import load_documents
from tunewise.knowledge.openai_embedder import OpenAIEmbedder
from tunewise.knowledge.task_index import build_task_index
from tunewise.spec import EmbedderSpec
from tunewise.taskfile import load_task

TOPICS = {
    "lighthouse": "The lighthouse keeper climbs the tower every evening to light the lamp.",
    "bakery": "Bakers in the old town sell rye bread and honey cakes at dawn.",
    "orchestra": "The orchestra rehearses the symphony twice a week in the concert hall.",
    "harvest": "Farmers harvest wheat in late summer before the autumn rains.",
    "ferry": "The ferry crosses the bay every hour between the two harbours.",
    "garage": "The garage fixes cars and trucks; its mechanics replace brakes, clutches and tyres.",
}
LONG = " ".join(f"Sentence {n} of the long note mentions pottery, kilns and glaze number {n}." for n in range(12))
SETTINGS = ChunkSettings(size=48, overlap=0)


def write_docs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in TOPICS.items():
        (folder / f"{name}.md").write_text(text + "\n")
    (folder / "pottery.md").write_text(LONG + "\n")
    return folder


def embedder(db, base_url: str, **spec: object) -> OpenAIEmbedder:
    built = open_embedder(EmbedderSpec(uri="openai:bow", base_url=base_url, **spec), db, Path.cwd())
    assert isinstance(built, OpenAIEmbedder)
    return built


def open_index(tmp_path: Path, base_url: str, **spec: object) -> KnowledgeIndex:
    db = connect(tmp_path / "cache.sqlite")
    return KnowledgeIndex(tmp_path / "index", db, settings=SETTINGS, embedder=embedder(db, base_url, **spec))


def chunk_texts(path: Path) -> set[str]:
    (doc,) = load_documents([path]).documents
    return {c.text for c in chunk_document(doc, SETTINGS, load_tokenizer(SETTINGS.tokenizer))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_indexing_embeds_through_the_server_and_reindexing_an_unchanged_corpus_sends_nothing(tmp_path, server):
    docs = load_documents([write_docs(tmp_path / "docs")]).documents
    first = open_index(tmp_path, server.base_url)
    stats = first.update(docs)
    sent = list(server.embedding_log.texts)
    assert stats.embedded == stats.chunks == len(sent) > len(docs)  # the long note makes several chunks
    assert len(server.embedding_log.entries) >= 1

    again = open_index(tmp_path, server.base_url)  # a new process would start like this
    stats = again.update(docs)
    assert stats.embedded == 0 and stats.unchanged_docs == len(docs)
    assert server.embedding_log.texts == sent and len(server.embedding_log.entries) == len(server.embedding_log.completed())


def test_changing_one_file_sends_only_its_new_chunks(tmp_path, server):
    folder = write_docs(tmp_path / "docs")
    open_index(tmp_path, server.base_url).update(load_documents([folder]).documents)
    before = len(server.embedding_log.texts)
    old = chunk_texts(folder / "pottery.md")
    (folder / "pottery.md").write_text(LONG + " The last kiln was rebuilt in spring with new bricks.\n")

    stats = open_index(tmp_path, server.base_url).update(load_documents([folder]).documents)
    sent = server.embedding_log.texts[before:]
    new = chunk_texts(folder / "pottery.md")
    assert (stats.changed_docs, stats.unchanged_docs) == (1, len(TOPICS))
    assert sent and set(sent) == new - old and len(sent) < len(new)  # its unchanged chunks come from the cache


def test_search_embeds_the_query_through_the_server_and_finds_the_passage(tmp_path, server):
    index = open_index(tmp_path, server.base_url)
    index.update(load_documents([write_docs(tmp_path / "docs")]).documents)
    requests = len(server.embedding_log.entries)
    hits = index.search("when does the ferry cross the bay?", k=3, retriever="dense")
    assert hits[0].chunk.doc_id == "ferry" and hits[0].score > hits[1].score
    assert 0 < hits[0].score <= 1 + 1e-6  # cosine of unit vectors
    assert len(server.embedding_log.entries) == requests + 1
    assert server.embedding_log.texts[-1] == "when does the ferry cross the bay?"


def test_batches_unit_vectors_and_a_cache_keyed_by_model_and_dimensions_not_url(tmp_path, server):
    db = connect(tmp_path / "cache.sqlite")
    texts = [f"text number {n} about {topic}" for n, topic in enumerate(TOPICS)] + ["one more", "and the last"]
    e = embedder(db, server.base_url, dimensions=32, batch_size=3)
    vectors = e.embed(texts)
    assert e.id == "openai:bow (32 dimensions)" and e.computed == len(texts)
    assert vectors.shape == (8, 32) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)  # the server's are word counts
    assert len(server.embedding_log.entries) == 3  # 8 texts, 3 per request

    with OpenAITestServer(max_lifetime_s=60) as elsewhere:
        moved = embedder(db, elsewhere.base_url, dimensions=32)
        assert np.array_equal(moved.embed(texts), vectors) and moved.computed == 0
        assert not elsewhere.embedding_log.entries
    longer = embedder(db, server.base_url, dimensions=64)
    assert longer.embed(texts[:2]).shape == (2, 64) and longer.computed == 2


def test_rate_limits_server_errors_and_dropped_connections_are_retried(tmp_path, server):
    e = embedder(connect(tmp_path / "cache.sqlite"), server.base_url)
    server.inject(429, 500, "drop")
    vectors = e.embed(["the lamp is lit", "the bread is baked"])
    assert [status for _, status, _ in server.embedding_log.entries] == [429, 500, "dropped", 200]
    assert e.retries == 3 and vectors.shape == (2, 256)


def test_a_wrong_key_is_not_retried_and_an_unreachable_server_is_given_up_on(tmp_path, monkeypatch):
    db = connect(tmp_path / "cache.sqlite")
    monkeypatch.setenv("EMBED_KEY", "wrong")
    with OpenAITestServer(api_key="right", max_lifetime_s=60) as guarded:
        e = embedder(db, guarded.base_url, api_key_env="EMBED_KEY")
        with pytest.raises(ModelCallError) as refused:
            e.embed(["anything"])
        assert [status for _, status, _ in guarded.embedding_log.entries] == [401]
        monkeypatch.setenv("EMBED_KEY", "right")
        assert embedder(db, guarded.base_url, api_key_env="EMBED_KEY").embed(["anything"]).shape == (1, 256)
    assert refused.value.status == 401 and refused.value.stops_run and e.computed == 0
    assert str(refused.value) == (
        f"embedding with openai:bow at {guarded.base_url} failed: HTTP 401: Incorrect API key provided"
        " (the API key is read from EMBED_KEY)"
    )

    url = f"http://127.0.0.1:{free_port()}/v1"
    gone = embedder(db, url, max_retries=1)
    with pytest.raises(ModelCallError, match=rf"embedding with openai:bow at {url} failed: connection failed") as down:
        gone.embed(["something not cached"])
    assert gone.retries == 1 and down.value.stops_run


def task_with_embedder(root: Path, base_url: str, embedder_spec: object, **knowledge: object) -> Path:
    task = write_capitals_task(root, base_url, arms=[{"rag": {"k": 2, "retriever": "dense"}}])
    write_docs(root / "docs")
    spec = yaml.safe_load(task.read_text())
    spec["knowledge"] = {"paths": ["docs"], "embedder": embedder_spec, **knowledge}
    task.write_text(yaml.safe_dump(spec, sort_keys=False))
    return task


def line_of(task: Path, text: str) -> int:
    return next(n for n, line in enumerate(task.read_text().splitlines(), 1) if text in line)


def test_the_cli_indexes_through_the_endpoint_and_reports_a_bad_key_in_one_line(tmp_path):
    with OpenAITestServer(api_key="right", max_lifetime_s=120) as guarded:
        task = task_with_embedder(
            tmp_path / "task", guarded.base_url,
            {"uri": "openai:bow", "base_url": guarded.base_url, "api_key_env": "EMBED_KEY"},
        )  # fmt: skip
        cmd = [sys.executable, "-m", "tunewise.cli", "index", str(task), "--runs-dir", str(tmp_path / "runs")]
        env = {**os.environ, "EMBED_KEY": "right"}
        first = subprocess.run(cmd, capture_output=True, text=True, env=env)
        assert first.returncode == 0, first.stderr
        assert f"{len(TOPICS) + 1} documents" in first.stdout and len(guarded.embedding_log.completed()) >= 1
        second = subprocess.run(cmd, capture_output=True, text=True, env=env)
        assert second.returncode == 0, second.stderr
        assert "0 chunks embedded now" in second.stdout

        (task.parent / "docs" / "ferry.md").write_text("The ferry now sails twice an hour.\n")
        bad = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "EMBED_KEY": "wrong"})
    assert bad.returncode == 3 and "Traceback" not in bad.stderr  # a model or server that fails: 3, not bad input
    assert bad.stderr == (
        f"error: embedding with openai:bow at {guarded.base_url} failed: HTTP 401: Incorrect API key provided"
        " (the API key is read from EMBED_KEY)\n"
    )


def test_task_file_embedder_mistakes_point_at_their_line(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    db = connect(tmp_path / "cache.sqlite")
    cases = [
        ("hf:some-model", {}, "embedder: hf:some-model", "embedder must be openai:<model> or st:<folder>"),
        ({"uri": "st:all-MiniLM-L6-v2", "dimensions": 256}, {}, "embedder:",
         "knowledge.embedder: dimensions: only for openai:<model> embedders"),
        ({"uri": "openai:text-embedding-3-small", "api_key_env": "NO_SUCH_KEY"}, {}, "embedder:",
         "environment variable NO_SUCH_KEY is not set (needed for openai:text-embedding-3-small)"),
        ("st:models/missing", {}, "embedder: st:models/missing",
         "sentence-transformers model folder not found: models/missing"),
        ({"uri": "openai:bow", "base_url": "http://127.0.0.1:9/v1", "max_input_tokens": 512}, {"chunk_size": 600},
         "chunk_size: 600", "chunk size 600 + 2 special tokens exceeds the 512 word pieces"),
    ]  # fmt: skip
    for n, (spec, knowledge, at, message) in enumerate(cases):
        task = task_with_embedder(tmp_path / f"t{n}", "http://127.0.0.1:9/v1", spec, **knowledge)
        with pytest.raises(InputError) as e:
            build_task_index(load_task(task), db, tmp_path / "runs")
        assert str(e.value).startswith(f"{task}:{line_of(task, at)}: ") and message in str(e.value), (spec, e.value)


def test_the_packaged_model_and_a_local_folder_by_name(tmp_path):
    db = connect(tmp_path / "cache.sqlite")
    packaged = open_embedder(EmbedderSpec(), db, tmp_path)
    assert isinstance(packaged, SentenceTransformerEmbedder) and packaged.id == "sentence-transformers/all-MiniLM-L6-v2"
    (tmp_path / "models" / "mine").mkdir(parents=True)
    local = open_embedder(EmbedderSpec(uri="st:models/mine"), db, tmp_path)
    assert isinstance(local, SentenceTransformerEmbedder) and local.model_dir == tmp_path / "models" / "mine"


def test_a_rag_run_retrieves_with_the_endpoint_embedder(tmp_path, server):
    task = write_capitals_task(
        tmp_path / "task", server.base_url, arms=[{"rag": {"k": 2, "retriever": "dense"}}],
        knowledge={"paths": ["docs"], "embedder": {"uri": "openai:bow", "base_url": server.base_url}},
    )  # fmt: skip
    docs = tmp_path / "task" / "docs"
    docs.mkdir()
    for n, (country, capital) in enumerate(CAPITALS.items()):
        (docs / f"c{n}.md").write_text(f"{country} lies by the sea. The capital of {country} is {capital}.\n")
    outcome = tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs"))
    assert outcome.summary.arms[0].score == 1.0  # zero-shot, the scripted model answers in a sentence
    manifest = json.loads((outcome.store.dir / "manifest.json").read_text())
    assert manifest["knowledge"]["embedder"] == "openai:bow" and manifest["knowledge"]["embedded_now"] == len(CAPITALS)
    questions = [t for t in server.embedding_log.texts if t.startswith("What is the capital of")]
    assert len(questions) == outcome.summary.arms[0].n
