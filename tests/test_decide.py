"""Scores, CIs and the recommendation, on constructed results."""

from __future__ import annotations

import pytest

from tunewise.decide import bootstrap_ci, recommend, summarize_arm
from tunewise.store import Result
from tunewise.task import Requirements


def results(arm: str, scores: list[float], *, cost: float = 0.001, latency: float = 100.0, errors: int = 0) -> list[Result]:
    rows = [Result(arm, f"e{i}", "x", "x", s, cost=cost, latency_ms=latency + i, calls=1) for i, s in enumerate(scores)]
    for r in rows[:errors]:
        r.error, r.score = "HTTP 500: boom", 0.0
    return rows


def test_bootstrap_ci_brackets_the_mean_and_narrows_with_n():
    small = bootstrap_ci([1, 0] * 10)
    large = bootstrap_ci([1, 0] * 200)
    assert small[0] < 0.5 < small[1] and large[0] < 0.5 < large[1]
    assert (large[1] - large[0]) < (small[1] - small[0]) / 3
    assert bootstrap_ci([1.0] * 5) == (1.0, 1.0)
    assert bootstrap_ci([0, 1, 1, 0, 1]) == bootstrap_ci([0, 1, 1, 0, 1])  # seeded


def test_summary_counts_errors_as_zero_and_excludes_their_latency():
    arm = summarize_arm("a", results("a", [1, 1, 1, 1], errors=1, latency=100))
    assert arm.score == 0.75 and arm.errors == 1 and arm.n == 4
    assert arm.p50_latency_ms == 102.0  # latencies of the three answered examples: 101, 102, 103
    assert arm.cost_per_1k == pytest.approx(1.0)


def test_cheapest_arm_meeting_the_bar_wins():
    cheap = summarize_arm("zero_shot", results("zero_shot", [1] * 45 + [0] * 5, cost=0.001))
    dear = summarize_arm("few_shot", results("few_shot", [1] * 48 + [0] * 2, cost=0.004))
    rec = recommend([cheap, dear], Requirements(min_score=0.8))
    assert rec.arm == "zero_shot" and rec.meets_requirements


def test_no_arm_meets_the_bar_names_the_best_and_the_gap():
    a = summarize_arm("a", results("a", [1] * 6 + [0] * 4))
    b = summarize_arm("b", results("b", [1] * 7 + [0] * 3))
    rec = recommend([a, b], Requirements(min_score=0.9))
    assert rec.arm == "b" and not rec.meets_requirements
    assert any("score 0.700 < min_score 0.9" in r for r in rec.reasons)


def test_latency_and_cost_limits_exclude_arms():
    fast = summarize_arm("fast", results("fast", [1] * 9 + [0], latency=50, cost=0.01))
    slow = summarize_arm("slow", results("slow", [1] * 10, latency=5000, cost=0.001))
    rec = recommend([fast, slow], Requirements(min_score=0.8, max_p95_latency_ms=1000))
    assert rec.arm == "fast"
    rec = recommend([fast, slow], Requirements(min_score=0.8, max_cost_per_1k=5))
    assert rec.arm == "slow"


def test_thin_evidence_is_said_plainly():
    tiny = summarize_arm("a", results("a", [1] * 9 + [0] * 3))
    rec = recommend([tiny], Requirements(min_score=0.7))
    assert rec.meets_requirements
    assert any("evidence is thin" in r and "n=12" in r for r in rec.reasons)


def test_tie_without_min_score_prefers_the_cheaper_arm():
    a = summarize_arm("a", results("a", [1, 0] * 10, cost=0.002))
    b = summarize_arm("b", results("b", [0, 1] * 10, cost=0.001))
    assert recommend([a, b], Requirements()).arm == "b"


def test_errors_are_mentioned_in_the_reasons():
    a = summarize_arm("a", results("a", [1] * 20, errors=2))
    rec = recommend([a], Requirements(min_score=0.5))
    assert any("2 of 20 examples errored" in r for r in rec.reasons)
