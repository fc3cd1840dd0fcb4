"""summary.json, report.md and report.html written from constructed runs."""

from __future__ import annotations

import json
import re

import pytest
from constructed_run import ArmSpec, write_run

from tunewise.arms.base import Result
from tunewise.report import report_run
from tunewise.report.content import disagreements

CONTRACT = {"name", "score", "ci", "n", "cost_per_1k", "fixed_cost", "p50_latency_ms", "p95_latency_ms", "tokens_in",
            "tokens_out", "errors"}


def ladder(tmp_path, **requirements):
    return write_run(tmp_path, [
        ArmSpec("zero_shot", [1] * 20 + [0] * 20, cost=0.0005),
        ArmSpec("few_shot", [1] * 34 + [0] * 6, cost=0.002, latency_ms=200),
        ArmSpec("finetune", [1] * 36 + [0] * 4, cost=0.0004, arm_type="finetune", fixed_cost=20.0, latency_ms=80),
    ], requirements={"min_score": 0.8, **requirements})


def test_summary_json_keeps_the_contract_and_adds_the_decision(tmp_path):
    store = ladder(tmp_path, monthly_queries=200_000)
    paths = report_run(store.run_id, tmp_path)
    summary = json.loads(paths["summary"].read_text())
    assert {"run_id", "task", "arms", "recommendation"} <= summary.keys()
    for arm in summary["arms"]:
        assert CONTRACT <= arm.keys() and isinstance(arm["pareto"], bool)
    assert set(summary["recommendation"]) == {"arm", "meets_requirements", "reasons"}
    assert summary["requirements"]["amortize_months"] == 12
    assert len(summary["comparisons"]) == 3
    assert [b["arm"] for b in summary["break_even"]] == ["finetune"]
    arms = {a["name"]: a for a in summary["arms"]}
    assert arms["finetune"]["fine_tuned"] and arms["finetune"]["monthly_cost"] == pytest.approx(20 / 12 + 0.4 * 200)
    assert arms["finetune"]["pareto"] and not arms["few_shot"]["pareto"]


def test_report_md_puts_the_answer_first_then_every_section(tmp_path):
    store = ladder(tmp_path)
    text = report_run(store.run_id, tmp_path)["markdown"].read_text()
    order = ["**Recommendation: `finetune`**", "## Arms", "## Which differences are real", "## Break-even",
             "## Where the arms disagree", "## Settings", "## How to read this"]
    positions = [text.index(heading) for heading in order]
    assert positions == sorted(positions)
    assert "| finetune vs zero_shot" in text or "| zero_shot vs finetune" in text
    assert "requirements.amortize_months | `12`" in text


def test_report_html_is_self_contained_with_three_charts(tmp_path):
    store = ladder(tmp_path)
    html = report_run(store.run_id, tmp_path)["html"].read_text()
    assert re.findall(r'class="plotly-graph-div"', html) and len(re.findall(r'<div id="chart-', html)) == 3
    assert not re.search(r"<script[^>]+src=", html) and not re.search(r"<link[^>]+href=", html)
    assert "Plotly.newPlot" in html and len(html) > 3_000_000  # plotly.js itself is inlined


def test_user_text_is_escaped_in_html_and_markdown(tmp_path):
    store = write_run(tmp_path, [ArmSpec("a", [1, 0]), ArmSpec("b", [0, 1])],
                      inputs=["<script>alert(1)</script> | pipe", "plain"])
    paths = report_run(store.run_id, tmp_path)
    html = paths["html"].read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "\\| pipe" in paths["markdown"].read_text()


def test_without_prices_the_cost_axis_is_tokens_and_no_break_even_chart(tmp_path):
    store = write_run(tmp_path, [ArmSpec("a", [1] * 5 + [0] * 5, cost=0.0), ArmSpec("b", [1] * 9 + [0], cost=0.0)])
    html = report_run(store.run_id, tmp_path)["html"].read_text()
    assert "tokens per query (no prices set)" in html
    assert 'id="chart-break-even"' not in html


def test_both_reports_show_the_trust_table_and_the_paired_stale_test_when_an_arm_has_them(tmp_path):
    store = write_run(tmp_path, [
        ArmSpec("plain", [0] * 10 + [1] * 10, stale=[True] * 10 + [False] * 10),
        ArmSpec("verified", [0] * 4 + [1] * 16, stale=[False] * 20, abstained=range(4), cost=0.002),
    ], requirements={"max_stale_rate": 0.1})
    paths = report_run(store.run_id, tmp_path)
    summary = json.loads(paths["summary"].read_text())
    arms = {a["name"]: a for a in summary["arms"]}
    assert arms["plain"]["stale_rate"] == 0.5 and arms["plain"]["stale_n"] == 20
    assert arms["verified"]["abstention_rate"] == 0.2 and arms["verified"]["answered_score"] == 1.0
    assert summary["recommendation"]["arm"] == "verified"
    (pair,) = summary["comparisons"]
    assert {pair["stale"]["a_stale"], pair["stale"]["b_stale"]} == {10, 0}
    md, html = paths["markdown"].read_text(), paths["html"].read_text()
    assert "## Trust" in md and '<h2 id="trust">Trust</h2>' in html
    assert "| plain | 0.500 | 0.299-0.701 | 20 | 0.000 | 0.500 | 0.500 |" in md
    assert "| verified | 0.000 | 0.000-0.161 | 20 | 0.200 | 1.000 | 0.800 |" in md
    assert "stale only in A / only in B" in md and "stale only in A / only in B" in html
    assert md.index("## Trust") < md.index("## Where the arms disagree")


def test_no_trust_section_when_no_arm_has_stale_answers_or_abstains(tmp_path):
    paths = report_run(ladder(tmp_path).run_id, tmp_path)
    assert "Trust" not in paths["markdown"].read_text() and 'id="trust"' not in paths["html"].read_text()
    arm = json.loads(paths["summary"].read_text())["arms"][0]
    assert arm["stale_rate"] is None and arm["abstention_rate"] == 0.0 and arm["groundedness"] is None


def result(arm: str, example: str, score: float, error: str | None = None) -> Result:
    return Result(arm, example, "out", "gold", score, error=error, input=f"input {example}")


def test_disagreements_show_the_recommended_arms_misses_first_and_ignore_errors():
    rows = [
        result("cheap", "e1", 0), result("dear", "e1", 1),  # cheap misses, dear right
        result("cheap", "e2", 1), result("dear", "e2", 0),  # cheap right, dear misses
        result("cheap", "e3", 1), result("dear", "e3", 0, error="HTTP 500"),  # an error alone
        result("cheap", "e4", 1), result("dear", "e4", 1),  # agree
        result("cheap", "e5", 0),  # dear has no result yet
    ]
    d = disagreements(rows, ["cheap", "dear"], "cheap", limit=2)
    assert [e.example_id for e in d.examples] == ["e1", "e2"]
    assert (d.total, d.out_of, d.missed) == (2, 4, 1)
    assert d.examples[0].input == "input e1" and [o.arm for o in d.examples[0].outputs] == ["cheap", "dear"]
    assert "cheap scores lower than another arm on 1 of them" in d.headline


def test_when_the_arms_never_disagree_a_few_answers_are_shown_as_they_are():
    rows = [result(arm, f"e{i}", 0) for arm in ("a", "b") for i in range(10)]
    d = disagreements(rows, ["a", "b"], "a", limit=6)
    assert d.total == 0 and [e.example_id for e in d.examples] == ["e0", "e1", "e2"]
    assert d.headline == "The arms score all 10 examples the same; 3 of them as they are:"


@pytest.mark.slow
def test_both_formats_hold_the_same_sections_with_every_arms_statistics(tmp_path, server):
    """Boosting, adaptive retrieval, fine-tuning, retrieval and bootstrapped demonstrations: each section is
    built once and laid out by both formats, so report.md and report.html hold the same ones, in order."""
    import tunewise
    from test_rag import write_knowledge_task

    from tunewise.evaluation.experiment import RunOptions

    task = write_knowledge_task(tmp_path / "task", server.base_url, [
        "zero_shot", {"few_shot": {"k": 2, "selector": "bootstrap", "max_bootstrap": 12}},
        {"rag": {"k": 2, "retriever": "bm25"}}, {"adaptive_rag": {"k": 2, "retriever": "bm25", "max_train": 12}},
        {"self_consistency": {"k": 4}}, {"committee": {"k": 3}}, {"finetune": {"poll_s": 0.01}},
    ])
    outcome = tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs"))
    md = (outcome.store.dir / "report.md").read_text()
    html = (outcome.store.dir / "report.html").read_text()
    md_sections = re.findall(r"^## (.+)$", md, re.M)
    html_sections = [re.sub(r"&amp;", "&", t) for t in re.findall(r"<h2 id=\"[^\"]+\">([^<]+)</h2>", html)]
    assert md_sections == html_sections
    for title in ("Arms", "Retrieval", "Demonstrations", "Boosting", "Adaptive retrieval", "Fine-tuning",
                  "Where the arms disagree", "Settings"):
        assert title in md_sections, title
    extras = {a.name: a.extras for a in outcome.summary.arms}
    assert extras["zero_shot"] is None and extras["rag"] is None
    assert extras["few_shot"].tried == 12 and extras["finetune"].method == "provider"
    for name, column in (("self_consistency", "maj@k"), ("committee", "vetoed per query"),
                         ("adaptive_rag", "retrieval rate"), ("finetune", "tokens trained")):
        assert column in md and column in html, (name, column)
