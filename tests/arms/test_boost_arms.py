"""self_consistency, committee and adaptive_rag end to end against the loopback server's scripted model,
which is sure of some countries, noisy on others when sampled, and judges answers (see openai_server)."""

from __future__ import annotations

import json
import math
import re

import pytest
import yaml
from capitals import write_capitals_task
from openai_server import CAPITALS, certainty
from test_rag import HIDDEN

import tunewise
from tunewise.errors import InputError
from tunewise.evaluation.experiment import RunOptions


def write_task(root, base_url, arms, *, hidden: bool = False):
    """The capitals task scored with `contains` (zero-shot answers are sentences); with `hidden`, documents
    and ten more test questions only the documents answer."""
    task = write_capitals_task(root, base_url, arms=arms)
    spec = yaml.safe_load(task.read_text())
    spec["metric"] = "contains"
    if hidden:
        docs = root / "docs"
        docs.mkdir()
        for i, (country, capital) in enumerate(HIDDEN.items()):
            filler = " ".join(f"{country} grows barley and rye in valley {j}, and its rivers carry boats." for j in range(8))
            (docs / f"d{i}.md").write_text(f"# {country}\n\nThe capital of {country} is {capital}. {filler}\n")
        with (root / "data.jsonl").open("a") as f:
            for i, (country, capital) in enumerate(HIDDEN.items()):
                row = {"id": f"h{i}", "question": f"What is the capital of {country}?", "answer": capital,
                       "split": "test", "gold_docs": [f"d{i}"]}
                f.write(json.dumps(row) + "\n")
        spec["knowledge"] = {"paths": ["docs"]}
    task.write_text(yaml.safe_dump(spec, sort_keys=False))
    return task


def arms_of(outcome):
    return {a.name: a for a in outcome.summary.arms}


def results(run_dir, arm: str) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return [r for r in rows if r["arm"] == arm]


def test_self_consistency_reports_maj_at_k_from_one_pool_and_resumes_without_resending(tmp_path, server):
    task = write_task(tmp_path / "task", server.base_url, ["zero_shot", {"self_consistency": {"k": 8}}])
    runs = tmp_path / "runs"
    outcome = tunewise.run(task, RunOptions(runs_dir=runs))
    sc = arms_of(outcome)["self_consistency"]
    assert sc.n == 32 and sc.errors == 0
    assert sc.calls == 32 * 8  # every sample is a counted call...
    assert len(server.log.completed()) == 32 + 32  # ...drawn as one request per query (n=8)
    assert list(sc.extras.maj_at_k) == ["1", "2", "4", "8"] == list(sc.extras.oracle_at_k)
    assert sc.extras.maj_at_k["8"] == sc.score == sc.extras.selected
    assert sc.extras.maj_at_k["8"] > sc.extras.maj_at_k["1"] + 0.05  # noisy single samples, the vote helps
    oracle = list(sc.extras.oracle_at_k.values())
    assert oracle == sorted(oracle) and oracle[-1] == sc.extras.coverage >= sc.score
    assert sc.extras.oracle_at_k["1"] == sc.extras.maj_at_k["1"] == sc.extras.single
    assert sc.extras.recovery is not None and 0 < sc.extras.recovery <= 1
    row = results(outcome.store.dir, "self_consistency")[0]
    assert len(row["pool"]["scores"]) == 8 and row["pool"]["picks"]["maj@8"] in range(8)
    report = (outcome.store.dir / "report.md").read_text()
    assert "maj@k" in report and "recovery" in report

    # Killed after half the examples: the resumed run sends nothing it had already sent.
    lines = (outcome.store.dir / "results.jsonl").read_text().splitlines()
    kept = [line for line in lines if '"self_consistency"' not in line] + [
        line for line in lines if '"self_consistency"' in line][:16]
    (outcome.store.dir / "results.jsonl").write_text("".join(line + "\n" for line in kept))
    sent = len(server.log.entries)
    resumed = tunewise.run(task, RunOptions(runs_dir=runs, resume=outcome.store.run_id))
    assert len(server.log.entries) == sent
    again = arms_of(resumed)["self_consistency"]
    assert again.extras.maj_at_k == sc.extras.maj_at_k and again.cached_calls == 16 * 8


def test_more_samples_later_pay_only_for_the_new_ones(tmp_path, server):
    task = write_task(tmp_path / "task", server.base_url, [{"self_consistency": {"k": 4}}])
    tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs"))
    spec = yaml.safe_load(task.read_text())
    spec["arms"] = [{"self_consistency": {"k": 6}}]
    task.write_text(yaml.safe_dump(spec, sort_keys=False))
    more = arms_of(tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs")))["self_consistency"]
    assert more.calls == 32 * 6 and more.cached_calls == 32 * 4
    assert list(more.extras.maj_at_k) == ["1", "2", "4", "6"]


def test_committee_vetoes_compares_both_ways_and_recovers(tmp_path, server):
    arms = [
        {"committee": {"k": 5}},  # one LLM critic per distinct proposal, one comparator vote per order
        {"arm": "committee", "name": "comparators_only", "k": 5, "critics": 0},
        {"arm": "committee", "name": "checked", "k": 5, "check": {"regex": r"The capital of \w+ is (?!\w+ton\.)\w+\."}},
    ]
    task = write_task(tmp_path / "task", server.base_url, arms)
    outcome = tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs"))
    got = arms_of(outcome)
    for name, arm in got.items():
        assert arm.n == 32 and arm.errors == 0, name
        assert arm.extras.coverage >= arm.extras.selected >= arm.extras.single, name
    critic = got["committee"]
    # The scripted critic knows the capitals it is sure of: every wrong proposal of a known country is vetoed.
    known = [r for r in results(outcome.store.dir, "committee") if certainty(_country(r)) != "unknown"]
    assert all(r["score"] == max(r["pool"]["scores"]) for r in known)
    assert critic.extras.recovery == pytest.approx(1.0)
    unknown = [r for r in results(outcome.store.dir, "committee") if certainty(_country(r)) == "unknown"]
    assert unknown and all(r["meta"].get("all_vetoed") and r["pool"]["picks"]["committee"] == 0 for r in unknown)
    # Comparators alone: the honest comparator (which otherwise always says "A") still finds the right one.
    assert got["comparators_only"].extras.recovery == pytest.approx(1.0)
    assert any(r["meta"]["copeland"] for r in results(outcome.store.dir, "comparators_only"))
    # The regex check (no LLM critic calls) drops the made-up "...ton" capitals.
    checked = results(outcome.store.dir, "checked")
    assert all(r["meta"]["critic"] == "check" for r in checked)
    assert any(r["meta"]["vetoed"] for r in checked)
    # Its calls are the proposals and the comparisons (both orders of each pair of survivors), no critic.
    assert got["checked"].calls == sum(5 + 2 * math.comb(len(r["meta"]["copeland"] or [0]), 2) for r in checked)
    assert critic.calls > 32 * 5  # proposals plus critics plus comparators, all counted


def _country(row) -> str:
    return next(c for c, cap in CAPITALS.items() if cap == row["target"])


@pytest.mark.slow
def test_adaptive_rag_retrieves_when_needed_saves_tokens_and_measures_the_gap(tmp_path, server):
    arms = [
        {"rag": {"k": 2, "retriever": "bm25"}},
        {"adaptive_rag": {"k": 2, "retriever": "bm25"}},
        {"arm": "adaptive_rag", "name": "stated", "k": 2, "retriever": "bm25", "gate": "stated"},
    ]
    task = write_task(tmp_path / "task", server.base_url, arms, hidden=True)
    runs = tmp_path / "runs"
    outcome = tunewise.run(task, RunOptions(runs_dir=runs))
    got = arms_of(outcome)
    rag, adaptive = got["rag"], got["adaptive_rag"]
    assert rag.n == adaptive.n == 42
    assert 0.2 < adaptive.extras.retrieval_rate < 0.8
    assert adaptive.score >= rag.score - 0.05
    assert adaptive.extras.tokens_saved_vs == "rag" and adaptive.extras.tokens_saved_pct > 10
    assert adaptive.extras.tokens_saved_pct == pytest.approx(100 * (1 - adaptive.tokens_in / rag.tokens_in))
    assert adaptive.extras.score_vs_baseline == pytest.approx(adaptive.score - rag.score)
    # Every hidden country is retrieved for (its made-up capitals disagree).
    hidden = [r for r in results(outcome.store.dir, "adaptive_rag") if r["example_id"].startswith("h")]
    assert all(r["meta"]["gate"]["retrieve"] and r["score"] == 1 for r in hidden)
    necessity = adaptive.extras.necessity.model_dump()
    assert necessity["k"] == 10 and necessity["r"] == 9 and necessity["train_queries"] == 48
    assert necessity["gate"]["threshold"] == 3 and necessity["gate"]["train_accuracy"] > 0.8
    # The scripted model says it needs no look-up for every country it has heard of: the necessary ones
    # among them are the knowing-doing gap.
    gap = necessity["stated"]
    assert gap["confusion"]["necessary"]["stated_no"] > 0 and gap["confusion"]["necessary"]["stated_yes"] == 0
    assert gap["mismatch_rate"] == pytest.approx(necessity["necessary_rate"])
    record = json.loads((outcome.store.dir / "manifest.json").read_text())["prepared"]["adaptive_rag"]
    assert record["usage"]["calls"] == 48 * 11  # ten samples and one stated-need question per train query
    assert adaptive.fixed_cost == pytest.approx(record["fixed_cost"]) and adaptive.fixed_cost > 0
    assert rag.fixed_cost == 0
    assert got["stated"].extras.retrieval_rate == pytest.approx(10 / 42)  # only the countries it has never heard of
    assert "Knowing-doing gap" in (outcome.store.dir / "report.md").read_text()

    # Resumed with every answer lost: the train measurements and the answers all come from the cache.
    (outcome.store.dir / "results.jsonl").write_text("")
    sent = len(server.log.entries)
    resumed = arms_of(tunewise.run(task, RunOptions(runs_dir=runs, resume=outcome.store.run_id)))
    assert len(server.log.entries) == sent
    assert resumed["adaptive_rag"].score == adaptive.score and resumed["adaptive_rag"].fixed_cost == adaptive.fixed_cost


@pytest.mark.parametrize(
    ("arm", "message"),
    [
        ({"adaptive_rag": {"necessity_k": 5, "necessity_r": 6}}, "necessity_r (6) cannot exceed necessity_k (5)"),
        ({"committee": {"critics": 3}}, "independent judgments only with judge_temperature > 0"),
        ({"committee": {"check": {"regex": "("}}}, "bad check regex"),
        ({"committee": {"check": {"json_schema": {"type": "thing"}}}}, "bad check json_schema"),
        ({"committee": {"check": "python:nowhere:fn"}}, "cannot import check module 'nowhere'"),
        ({"self_consistency": {"temperature": 0}}, "greater than 0"),
        ({"adaptive_rag": {"baseline": "rag_bm25"}}, "baseline 'rag_bm25' is not an arm of this task"),
        ({"self_consistency": {"samples": 4}}, "unknown field 'samples'"),
    ],
)
def test_bad_params_are_refused_at_their_line(tmp_path, arm, message):
    task = write_task(tmp_path / "task", "http://127.0.0.1:9/v1", ["zero_shot", arm])
    line = next(i for i, text in enumerate(task.read_text().splitlines(), 1) if text.startswith("- ") and "zero_shot" not in text)
    with pytest.raises(InputError, match=re.escape(message)) as raised:
        tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs"))
    assert raised.value.line is not None and raised.value.line >= line
    assert not (tmp_path / "runs").exists()
