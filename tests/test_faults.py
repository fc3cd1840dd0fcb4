"""A server that fails ~20% of requests (429 with Retry-After, 500, dropped connections)."""

from __future__ import annotations

import json

import pytest
from capitals import write_capitals_task

import tunewise
from tunewise.evaluation.experiment import RunOptions


@pytest.mark.slow
def test_faulty_server_gives_the_same_results_as_a_clean_one(tmp_path, server):
    task = write_capitals_task(tmp_path / "task", server.base_url)
    clean = tunewise.run(task, RunOptions(runs_dir=tmp_path / "clean"))
    server.log.entries.clear()

    server.fault_rate = 0.2
    faulty = tunewise.run(task, RunOptions(runs_dir=tmp_path / "faulty"))

    statuses = [s for _, s, _ in server.log.entries]
    assert {429, 500, "dropped"} <= set(statuses)
    assert 0.1 < sum(s != 200 for s in statuses) / len(statuses) < 0.35
    assert statuses.count(200) == 64  # every call completed exactly once in the end

    def rows(run):
        return sorted(
            (r["arm"], r["example_id"], r["output"], r["score"], r["error"])
            for r in map(json.loads, (run.store.dir / "results.jsonl").read_text().splitlines())
        )

    assert rows(faulty) == rows(clean)
    assert [a.score for a in faulty.summary.arms] == [a.score for a in clean.summary.arms]
    assert all(a.errors == 0 for a in faulty.summary.arms)

    # Retry-After (retry-after-ms: 30) was honoured: the retry of a 429 came at least 30 ms later.
    entries = server.log.entries
    for i, (digest, status, t) in enumerate(entries):
        if status == 429:
            retry = next(t2 for d2, _, t2 in entries[i + 1 :] if d2 == digest)
            assert retry - t >= 0.030
