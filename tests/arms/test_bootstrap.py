"""few_shot with `selector: bootstrap`: demonstrations the model itself got right on train, under the arm's
own prompt, evaluated by the runner (metric, cache, errors), their cost the arm's one-off cost."""

from __future__ import annotations

import json

from capitals import write_capitals_task
from openai_server import CAPITALS, scripted_answer

import tunewise
from tunewise.evaluation.experiment import RunOptions


def test_bootstrap_keeps_what_the_model_got_right_and_costs_it_once(tmp_path, server):
    arms = [{"few_shot": {"k": 2, "selector": "bootstrap", "max_bootstrap": 20}}]
    task = write_capitals_task(tmp_path / "task", server.base_url, arms=arms)
    runs = tmp_path / "runs"
    outcome = tunewise.run(task, RunOptions(runs_dir=runs))
    arm = outcome.summary.arms[0]
    manifest = json.loads((outcome.store.dir / "manifest.json").read_text())
    record = manifest["prepared"]["few_shot"]
    rows = [json.loads(line) for line in (task.parent / "data.jsonl").read_text().splitlines()]
    train = {r["id"]: r for r in rows if r["split"] == "train"}
    # The scripted model answers the bare capital when shown demonstrations, except for 1 country in 8.
    assert record["tried"] == 20 and 0 < len(record["kept"]) < 20
    for example_id in record["kept"]:
        question = train[example_id]["question"]
        assert scripted_answer([{"role": "assistant", "content": "x"}, {"role": "user", "content": question}]) \
            == train[example_id]["answer"]
    assert record["usage"]["calls"] == 20 and record["fixed_cost"] == arm.fixed_cost > 0
    assert arm.extras.tried == 20 and arm.extras.kept == len(record["kept"])
    results = [json.loads(line) for line in (outcome.store.dir / "results.jsonl").read_text().splitlines()]
    assert all(set(r["meta"]["demos"]) <= set(record["kept"]) and len(r["meta"]["demos"]) == 2 for r in results)
    assert arm.score > 0.8  # the demonstrations teach the bare-name format
    assert set(CAPITALS.values()) >= {train[e]["answer"] for e in record["kept"]}

    # Resumed with the answers lost: the bootstrap's calls and the answers all come from the cache.
    (outcome.store.dir / "results.jsonl").write_text("")
    sent = len(server.log.entries)
    again = tunewise.run(task, RunOptions(runs_dir=runs, resume=outcome.store.run_id))
    assert len(server.log.entries) == sent
    assert json.loads((again.store.dir / "manifest.json").read_text())["prepared"]["few_shot"]["kept"] == record["kept"]
