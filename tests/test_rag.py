"""The rag arms end to end: real documents, a real LanceDB index, the loopback OpenAI server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from capitals import write_capitals_task

import tunewise
from tunewise.evaluation.experiment import RunOptions

# Countries the scripted model has never heard of: only the documents know their capitals.
HIDDEN = {f"Zor{s}ia": f"Quell{s}ton" for s in ("ab", "ec", "id", "og", "uf", "yk", "am", "ez", "ip", "ol")}


def write_knowledge_task(root, base_url, arms):
    task = write_capitals_task(root, base_url, arms=arms)
    docs = root / "docs"
    docs.mkdir()
    for i, (country, capital) in enumerate(HIDDEN.items()):
        (docs / f"d{i}.md").write_text(
            f"# {country}\n\n{country} is a small country in the north. Its people farm barley.\n\n"
            f"The capital of {country} is {capital}. The city has a river port.\n"
        )
    (docs / "distractor.txt").write_text("Barley is a cereal grain. Rivers carry boats to ports.\n")
    rows = [
        {"id": f"h{i}", "question": f"What is the capital of {c}?", "answer": cap, "split": "test", "gold_docs": [f"d{i}"]}
        for i, (c, cap) in enumerate(HIDDEN.items())
    ]
    data = root / "data.jsonl"
    train = [json.loads(line) for line in data.read_text().splitlines() if json.loads(line)["split"] == "train"]
    data.write_text("".join(json.dumps(r) + "\n" for r in train + rows))
    spec = yaml.safe_load(task.read_text())
    spec["knowledge"] = {"paths": ["docs"]}
    task.write_text(yaml.safe_dump(spec, sort_keys=False))
    return task


@pytest.mark.slow
def test_rag_beats_zero_shot_and_reports_retrieval(tmp_path, server):
    task = write_knowledge_task(
        tmp_path / "task",
        server.base_url,
        ["zero_shot", {"rag": {"k": 2, "retriever": "dense"}}, {"arm": "rag", "name": "rag_bm25", "k": 2, "retriever": "bm25"},
         {"few_shot_rag": {"k": 2, "shots": 2}}],
    )
    outcome = tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs"))
    arms = {a.name: a for a in outcome.summary.arms}
    assert arms["zero_shot"].score == 0.0 and arms["zero_shot"].recall_at_k is None
    for name in ("rag", "rag_bm25", "few_shot_rag"):
        assert arms[name].score == 1.0, name
        assert arms[name].recall_at_k == 1.0 and arms[name].mrr == 1.0 and arms[name].retrieval_k == 2
        assert arms[name].tokens_in > arms["zero_shot"].tokens_in
    manifest = json.loads((outcome.store.dir / "manifest.json").read_text())
    assert manifest["knowledge"]["documents"] == 11 and manifest["knowledge"]["skipped"] == []
    assert "retrieval recall@k" in (outcome.store.dir / "report.md").read_text()
    row = json.loads((outcome.store.dir / "results.jsonl").read_text().splitlines()[-1])
    assert row["retrieval"]["by"] == "gold_docs" and len(row["meta"]["chunks"]) == 2
    assert len(row["meta"]["demos"]) == 2


@pytest.mark.slow
def test_bad_document_fails_or_is_skipped_and_listed(tmp_path, server):
    task = write_knowledge_task(tmp_path / "task", server.base_url, [{"rag": {"k": 2}}])
    (tmp_path / "task" / "docs" / "broken.txt").write_bytes(b"abc\x00\x01\x02binary")
    cmd = [sys.executable, "-m", "tunewise.cli", "run", str(task), "--runs-dir", str(tmp_path / "runs")]
    failed = subprocess.run(cmd, capture_output=True, text=True)
    assert failed.returncode == 2
    assert failed.stderr.startswith(f"error: {tmp_path / 'task' / 'docs' / 'broken.txt'}")
    assert len(failed.stderr.strip().splitlines()) == 1
    ok = subprocess.run([*cmd, "--skip-bad", "--json"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    run_id = json.loads(ok.stdout)["run_id"]
    report = (tmp_path / "runs" / run_id / "report.md").read_text()
    assert "broken.txt" in report and "Skipped 1" in report
    assert json.loads(ok.stdout)["arms"][0]["score"] == 1.0  # the good documents are all there


def test_rag_without_knowledge_is_an_input_error(tmp_path, server):
    task = write_capitals_task(tmp_path / "task", server.base_url, arms=["zero_shot", {"rag": {"k": 2}}])
    r = subprocess.run([sys.executable, "-m", "tunewise.cli", "run", str(task), "--runs-dir", str(tmp_path / "runs")],
                       capture_output=True, text=True)
    assert r.returncode == 2
    line = [n for n, text in enumerate(task.read_text().splitlines(), 1) if "rag" in text][0]
    assert r.stderr.strip() == f"error: {task}:{line}: arm 'rag' reads the task's documents, but the task has no `knowledge:`"
    assert not len(server.log.entries)


def test_chunks_longer_than_the_embedder_reads_are_refused_at_their_line(tmp_path, server):
    task = write_knowledge_task(tmp_path / "task", server.base_url, [{"rag": {"k": 2}}])
    spec = yaml.safe_load(task.read_text())
    spec["knowledge"]["chunk_size"] = 1000
    task.write_text(yaml.safe_dump(spec, sort_keys=False))
    r = subprocess.run([sys.executable, "-m", "tunewise.cli", "run", str(task), "--runs-dir", str(tmp_path / "runs")],
                       capture_output=True, text=True)
    line = [n for n, text in enumerate(task.read_text().splitlines(), 1) if "chunk_size" in text][0]
    assert r.returncode == 2
    assert r.stderr.startswith(f"error: {task}:{line}: chunk size 1000")
    assert len(r.stderr.strip().splitlines()) == 1
