"""The decision rules on constructed results: scores, ties, no arm meeting the bar, tiny n, break-even,
errors, the Pareto front."""

from __future__ import annotations

import pytest

from tunewise.arms.base import Result
from tunewise.decide.comparisons import answered_scores
from tunewise.decide.costs import pareto_front
from tunewise.decide.recommend import recommend
from tunewise.decide.schema import ArmSummary, Summary
from tunewise.decide.summary import build_summary, summarize_arm
from tunewise.spec import Requirements


def results(
    arm: str, scores: list[float], *, cost: float = 0.001, latency: float = 100.0, errors: int = 0, tokens_in: int = 50
) -> list[Result]:
    rows = [Result(arm, f"e{i}", "x", "x", s, cost=cost, latency_ms=latency + i, calls=1, tokens_in=tokens_in)
            for i, s in enumerate(scores)]
    for r in rows[:errors]:
        r.error, r.score = "HTTP 500: boom", 0.0
    return rows


def decide(arms: dict[str, list[Result]], req: Requirements, *, fixed: dict[str, float] | None = None) -> Summary:
    """The whole decision (comparisons, break-even, recommendation) on constructed per-arm results."""
    fixed = fixed or {}
    rows = [summarize_arm(name, rs, fixed_cost=fixed.get(name, 0.0), fine_tuned=name in fixed) for name, rs in arms.items()]
    every = [r for rs in arms.values() for r in rs]
    return build_summary(run_id="r", task="t", model="m", arms=rows, answered=answered_scores(every, list(arms)),
                         requirements=req)


def reason(summary: Summary | object, *words: str) -> str:
    reasons = summary.recommendation.reasons if isinstance(summary, Summary) else summary.reasons
    found = [r for r in reasons if all(w in r for w in words)]
    assert found, f"no reason with {words} in {reasons}"
    return found[0]


def test_summary_counts_errors_as_zero_and_excludes_their_latency():
    arm = summarize_arm("a", results("a", [1, 1, 1, 1], errors=1, latency=100))
    assert arm.score == 0.75 and arm.errors == 1 and arm.n == 4
    assert arm.p50_latency_ms == 102.0  # latencies of the three answered examples: 101, 102, 103
    assert arm.cost_per_1k == pytest.approx(1.0)
    assert arm.ci_method == "wilson"


def test_cheapest_arm_meeting_the_bar_wins():
    s = decide({"zero_shot": results("zero_shot", [1] * 180 + [0] * 20, cost=0.001),
                "few_shot": results("few_shot", [1] * 190 + [0] * 10, cost=0.004)}, Requirements(min_score=0.8))
    assert s.recommendation.arm == "zero_shot" and s.recommendation.meets_requirements
    assert "with its whole CI above min_score" in reason(s, "cheapest of 2")


def test_tie_a_pricier_arm_not_significantly_better_loses_and_is_named():
    # few_shot is right on 3 more examples: McNemar p = 0.25, not significant
    s = decide({"zero_shot": results("zero_shot", [1] * 180 + [0] * 20, cost=0.001),
                "few_shot": results("few_shot", [1] * 183 + [0] * 17, cost=0.004)}, Requirements(min_score=0.8))
    assert s.recommendation.arm == "zero_shot"
    assert "the cheaper arm is preferred" in reason(s, "few_shot", "not significant")


def test_tie_a_significantly_better_pricier_arm_is_said_to_be_so():
    s = decide({"zero_shot": results("zero_shot", [1] * 175 + [0] * 25, cost=0.001),
                "few_shot": results("few_shot", [1] * 198 + [0] * 2, cost=0.004)}, Requirements(min_score=0.8))
    assert s.recommendation.arm == "zero_shot"  # the bar is met; the margin is the builder's call
    assert "+0.115 on 200 shared examples" in reason(s, "few_shot is significantly better")


def test_tie_on_cost_goes_to_fewer_tokens_and_says_why():
    s = decide({"few_shot": results("few_shot", [1] * 50, cost=0.0, tokens_in=400),
                "zero_shot": results("zero_shot", [1] * 50, cost=0.0, tokens_in=60)}, Requirements(min_score=0.8))
    assert s.recommendation.arm == "zero_shot"
    assert "no prices are set" in reason(s, "cheapest of 2")


def test_without_min_score_the_cheapest_not_significantly_worse_than_the_best():
    close = decide({"a": results("a", [1, 0] * 10, cost=0.002), "b": results("b", [0, 1] * 10, cost=0.001)}, Requirements())
    assert close.recommendation.arm == "b"
    far = decide({"best": results("best", [1] * 60, cost=0.002), "cheap": results("cheap", [1] * 20 + [0] * 40, cost=0.001)},
                 Requirements())
    assert far.recommendation.arm == "best"
    assert "set requirements.min_score" in far.recommendation.reasons[0]


def test_no_arm_meets_the_bar_names_the_best_and_the_gap():
    s = decide({"a": results("a", [1] * 60 + [0] * 40), "b": results("b", [1] * 70 + [0] * 30)}, Requirements(min_score=0.9))
    rec = s.recommendation
    assert rec.arm == "b" and not rec.meets_requirements
    reason(s, "no arm meets the requirements; the best is b, which scores 0.700")
    reason(s, "its score 0.700 is 0.200 below min_score 0.9")


def test_no_arm_meets_but_the_best_may_with_more_examples():
    s = decide({"a": results("a", [1] * 8 + [0] * 2)}, Requirements(min_score=0.85))
    assert not s.recommendation.meets_requirements
    assert "about" in reason(s, "its CI reaches", "may meet min_score")


def test_latency_and_cost_limits_exclude_arms():
    fast = summarize_arm("fast", results("fast", [1] * 9 + [0], latency=50, cost=0.01))
    slow = summarize_arm("slow", results("slow", [1] * 10, latency=5000, cost=0.001))
    rec = recommend([fast, slow], Requirements(min_score=0.8, max_p95_latency_ms=1000))
    assert rec.arm == "fast"
    rec = recommend([fast, slow], Requirements(min_score=0.8, max_cost_per_1k=5))
    assert rec.arm == "slow"
    rec = recommend([fast, slow], Requirements(min_score=0.8, max_cost_per_1k=0.5, max_p95_latency_ms=1000))
    assert not rec.meets_requirements
    assert rec.arm == "slow"  # none is within the caps: the best overall, and what it lacks
    reason(rec, "none is within the latency and cost caps; the best overall is slow, which scores 1.000")
    reason(rec, "its p95 latency of 5009 ms is 4009 ms over max_p95_latency_ms 1000")
    reason(rec, "fast meets min_score (0.900), but its cost of $10.00 per 1k queries is 20.0x max_cost_per_1k $0.50")


def test_tiny_n_is_said_plainly_with_how_many_examples_would_do():
    s = decide({"a": results("a", [1] * 9 + [0] * 3)}, Requirements(min_score=0.7))
    assert s.recommendation.meets_requirements
    thin = reason(s, "evidence is thin", "n=12")
    assert "known to ±0.22" in thin and "label more test examples (about 236 for ±0.05)" in thin


def test_tiny_n_does_not_beat_an_arm_whose_ci_clears_the_bar():
    s = decide({"cheap": results("cheap", [1] * 5, cost=0.001), "sure": results("sure", [1] * 190 + [0] * 10, cost=0.003)},
               Requirements(min_score=0.8))
    assert s.recommendation.arm == "sure"
    reason(s, "cheap is cheaper", "too thin to rely on", "n=5")


def _ft_vs_prompting(monthly_queries: int | None) -> Summary:
    # prompting $1.10 per 1k; the fine-tune $0.10 per 1k plus $100 once: 100,000 queries repay it
    return decide(
        {"few_shot": results("few_shot", [1] * 95 + [0] * 5, cost=0.0011),
         "finetune": results("finetune", [1] * 96 + [0] * 4, cost=0.0001)},
        Requirements(min_score=0.8, monthly_queries=monthly_queries), fixed={"finetune": 100.0},
    )


def test_break_even_arithmetic():
    (b,) = _ft_vs_prompting(None).break_even
    assert (b.arm, b.against) == ("finetune", "few_shot")
    assert b.saving_per_1k == pytest.approx(1.0)
    assert b.queries_to_repay == pytest.approx(100_000)
    assert b.monthly_volume == pytest.approx(100_000 / 12)
    assert b.months_to_repay is None


def test_a_fine_tune_that_pays_off_only_above_a_volume():
    low = _ft_vs_prompting(5_000)  # 20 months to repay: prompting costs $5.50/month, the fine-tune $8.83
    assert low.recommendation.arm == "few_shot"
    assert low.break_even[0].months_to_repay == pytest.approx(20)
    assert "does not pay off within 12 months" in reason(low, "finetune", "repaid in 20.0 months")
    high = _ft_vs_prompting(50_000)  # 2 months: $55 against $13.33
    assert high.recommendation.arm == "finetune"
    assert "it pays off" in reason(high, "repaid in 2.0 months")
    assert {a.name: round(a.monthly_cost, 2) for a in high.arms} == {"few_shot": 55.0, "finetune": 13.33}


def test_a_fine_tune_no_cheaper_per_query_never_breaks_even():
    s = decide({"zero_shot": results("zero_shot", [1] * 200, cost=0.0001),
                "finetune": results("finetune", [1] * 200, cost=0.0002)},
               Requirements(min_score=0.8, monthly_queries=10**6), fixed={"finetune": 5.0})
    (b,) = s.break_even
    assert b.queries_to_repay is None and "never repaid" in b.note
    assert s.recommendation.arm == "zero_shot"


def test_without_prices_break_even_says_so_instead_of_never():
    s = decide({"zero_shot": results("zero_shot", [1] * 200, cost=0.0), "finetune": results("finetune", [1] * 200, cost=0.0)},
               Requirements(min_score=0.8), fixed={"finetune": 0.0})
    (b,) = s.break_even
    assert b.queries_to_repay is None and "no prices are set" in b.note and "never" not in b.note


def test_a_fine_tune_significantly_worse_than_every_prompt_replaces_none():
    s = decide({"few_shot": results("few_shot", [1] * 100, cost=0.01),
                "finetune": results("finetune", [1] * 50 + [0] * 50, cost=0.0001)},
               Requirements(min_score=0.4), fixed={"finetune": 1.0})
    (b,) = s.break_even
    assert b.against is None and "replaces none" in b.note


def test_break_even_needs_equivalence_not_merely_no_significant_difference():
    # At n=20, 12 of 20 against 20 of 20 is not significant after Holm, but it is far from equivalent.
    s = decide({"few_shot_rag": results("few_shot_rag", [1] * 20, cost=0.004),
                "finetune": results("finetune", [1] * 12 + [0] * 8, cost=0.0001)},
               Requirements(monthly_queries=100_000), fixed={"finetune": 1.0})
    (b,) = s.break_even
    assert b.against is None and b.queries_to_repay is None and b.p_value > 0.05
    assert "is not shown to score within 0.02 of any prompting arm" in b.note and "pays off" not in b.note
    # Twenty identical answers do not show equivalence within 0.02 either; two hundred do.
    few = decide({"p": results("p", [1] * 20, cost=0.004), "finetune": results("finetune", [1] * 20, cost=0.0001)},
                 Requirements(), fixed={"finetune": 1.0})
    many = decide({"p": results("p", [1] * 200, cost=0.004), "finetune": results("finetune", [1] * 200, cost=0.0001)},
                  Requirements(), fixed={"finetune": 1.0})
    assert few.break_even[0].against is None and many.break_even[0].against == "p"


def test_an_arm_scoring_nothing_is_never_said_to_pay_off():
    s = decide({"zero_shot": results("zero_shot", [0] * 300, cost=0.004),
                "finetune": results("finetune", [0] * 300, cost=0.0001)},
               Requirements(min_score=0.5, monthly_queries=10**6), fixed={"finetune": 1.0})
    (b,) = s.break_even
    assert "nothing worth replacing" in b.note and "pays off" not in b.note and b.queries_to_repay is None


def test_when_nothing_meets_the_bar_the_best_within_the_caps_and_the_best_overall_are_both_named():
    s = decide({"zero_shot": results("zero_shot", [1] * 24 + [0] * 16, cost=0.0004),
                "few_shot": results("few_shot", [1] * 29 + [0] * 11, cost=0.0009),
                "few_shot_rag": results("few_shot_rag", [1] * 31 + [0] * 9, cost=0.0028)},
               Requirements(min_score=0.85, max_cost_per_1k=1.0))
    rec = s.recommendation
    assert rec.arm == "few_shot" and not rec.meets_requirements  # the best that can be deployed
    reason(s, "within the latency and cost caps the best is few_shot, which scores 0.725")
    reason(s, "the best overall is few_shot_rag, which scores 0.775", "2.8x max_cost_per_1k $1.00")


def test_a_pricier_arm_that_scores_higher_is_the_cheapest_of_the_top_scorers():
    s = decide({"cheap": results("cheap", [1] * 180 + [0] * 20, cost=0.001),
                "top_pricey": results("top_pricey", [1] * 195 + [0] * 5, cost=0.009),
                "top_cheaper": results("top_cheaper", [1] * 195 + [0] * 5, cost=0.004)},
               Requirements(min_score=0.8))
    assert s.recommendation.arm == "cheap"
    named = reason(s, "top_")
    assert named.startswith("top_cheaper")


def test_money_is_readable_at_every_scale():
    from tunewise.decide.costs import money

    assert [money(x) for x in (0, 0.00042, 0.0028, 0.004, 0.5, 12.345, 133.3, 1234.5, -0.2)] == [
        "$0", "$0.00042", "$0.0028", "$0.004", "$0.50", "$12.35", "$133", "$1,234", "-$0.20"]
    s = decide({"a": results("a", [1] * 10, cost=0.0000030), "b": results("b", [1] * 10, cost=0.0000042)},
               Requirements(monthly_queries=1000))
    from tunewise.report.content import arm_table

    monthly = [row[6] for row in arm_table(s).rows]
    assert monthly == ["$0.003", "$0.0042"]  # once both "0.00"


def test_pareto_front_over_monthly_cost_when_the_volume_is_known():
    prompting = arm("prompting", 0.9, 1.0, 100)
    tuned = arm("finetune", 0.9, 0.5, 100).model_copy(update={"fixed_cost": 1000.0, "fine_tuned": True})
    assert pareto_front([prompting, tuned]) == {"finetune"}  # per 1k queries the fine-tune is cheaper...
    at_volume = pareto_front([prompting, tuned], Requirements(monthly_queries=1000))
    assert at_volume == {"prompting"}  # ...but at 1,000 queries a month its one-off cost makes it the dearer


def test_an_arm_without_results_has_a_null_ci_and_summary_json_is_strict(tmp_path):
    import json

    s = decide({"a": results("a", [1] * 10), "b": []}, Requirements())
    assert s.arms[1].ci == [None, None]

    def refuse(name: str) -> None:
        raise ValueError(f"not strict JSON: {name}")

    parsed = json.loads(s.model_dump_json(), parse_constant=refuse)
    assert parsed["arms"][1]["ci"] == [None, None]


def test_an_arm_with_errors_is_scored_with_them_and_the_reasons_say_so():
    s = decide({"flaky": results("flaky", [1] * 40, errors=10, cost=0.001),
                "steady": results("steady", [1] * 36 + [0] * 4, cost=0.002)}, Requirements(min_score=0.8))
    flaky = s.arms[0]
    assert flaky.score == 0.75 and flaky.errors == 10
    assert s.recommendation.arm == "steady"
    reason(s, "10 of 40 examples of flaky errored", "on the 30 it answered it scores 1.000", "--retry-errors")
    # paired tests use only examples both arms answered
    (c,) = s.comparisons
    assert c.n == 30 and c.a_score == 1.0


def test_errors_of_the_recommended_arm_are_mentioned():
    s = decide({"a": results("a", [1] * 20, errors=2)}, Requirements(min_score=0.5))
    reason(s, "2 of 20 examples of a errored")


def test_no_results_yet():
    rec = recommend([summarize_arm("a", [])], Requirements(min_score=0.5))
    assert rec.arm is None and rec.reasons == ["no arm has results yet"]


def arm(name: str, score: float, cost: float, p95: float, tokens: float = 0) -> ArmSummary:
    return ArmSummary(name=name, score=score, ci=[score, score], n=10, cost_per_1k=cost, p50_latency_ms=p95,
                      p95_latency_ms=p95, tokens_in=tokens, tokens_out=0, errors=0, calls=10, cached_calls=0, fresh_cost=0)


def test_pareto_front():
    arms = [arm("cheap", 0.6, 1, 100), arm("good", 0.9, 3, 300), arm("fast", 0.5, 2, 50),
            arm("dominated", 0.6, 2, 200), arm("twin", 0.6, 1, 100)]
    assert pareto_front(arms) == {"cheap", "good", "fast", "twin"}  # equal on all three: neither dominates


def test_pareto_front_without_prices_uses_tokens_for_cost():
    arms = [arm("short", 0.5, 0, 100, tokens=40), arm("long", 0.5, 0, 100, tokens=400), arm("better", 0.7, 0, 100, tokens=400)]
    assert pareto_front(arms) == {"short", "better"}


def test_comparisons_are_holm_adjusted_over_all_pairs():
    s = decide({"a": results("a", [1] * 30 + [0] * 10), "b": results("b", [1] * 20 + [0] * 20),
                "c": results("c", [1] * 21 + [0] * 19)}, Requirements())
    assert len(s.comparisons) == 3
    for c in s.comparisons:
        assert c.p_holm >= c.p_value
    ab = next(c for c in s.comparisons if (c.a, c.b) == ("a", "b"))
    assert ab.p_value == pytest.approx(2 * 0.5**10) and ab.significant


def trusted(arm: str, scores: list[float], stale: list[bool | None], *, abstained: int = 0, cost: float = 0.001,
            grounded: list[float | None] | None = None) -> list[Result]:
    """Results with trust measures: the first `abstained` declined, stale and grounded per example."""
    rows = results(arm, scores, cost=cost)
    for i, r in enumerate(rows):
        r.stale, r.abstained = stale[i], i < abstained
        r.grounded = grounded[i] if grounded else None
    return rows


def test_stale_rate_has_a_wilson_ci_over_the_examples_with_stale_answers_only():
    # 10 examples, 6 with stale answers, 3 of them answered stale
    a = summarize_arm("a", trusted("a", [1] * 4 + [0] * 6, [None] * 4 + [True] * 3 + [False] * 3))
    assert a.stale_n == 6 and a.stale_rate == 0.5
    assert a.stale_ci == pytest.approx([0.1876, 0.8124], abs=1e-4)  # Wilson 95% for 3 of 6
    plain = summarize_arm("p", results("p", [1, 0]))
    assert plain.stale_rate is None and plain.stale_ci is None and plain.stale_n is None
    assert plain.abstention_rate == 0.0 and plain.answered_score == 0.5 and plain.groundedness is None


def test_abstentions_are_counted_and_the_score_on_answered_leaves_them_out():
    a = summarize_arm("a", trusted("a", [0, 0, 1, 1, 1, 0, 0, 0], [False] * 8, abstained=2,
                                   grounded=[None, None, 1.0, 1.0, 0.0, None, None, None]))
    assert a.abstention_rate == 0.25 and a.score == 0.375
    assert a.answered_score == pytest.approx(3 / 6)
    assert a.groundedness == pytest.approx(2 / 3)  # over the answers that retrieved
    assert summarize_arm("b", trusted("b", [0, 0], [False, False], abstained=2)).answered_score is None


def test_max_stale_rate_fails_an_arm_over_it_on_the_point_estimate():
    stale_only = trusted("stale", [1] * 18 + [0] * 2, [True] * 2 + [False] * 8 + [None] * 10)  # 0.2 over 10
    s = decide({"stale": stale_only}, Requirements(min_score=0.8, max_stale_rate=0.1))
    assert not s.recommendation.meets_requirements
    reason(s, "its stale-premise rate 0.200 (95% CI 0.057-0.510, n=10) is over max_stale_rate 0.1")
    reason(s, "none is within the latency, cost and stale-premise caps")
    # its CI reaches below 0.1, but the point estimate decides; a pricier arm under the cap is taken instead
    careful = trusted("careful", [1] * 18 + [0] * 2, [False] * 10 + [None] * 10, cost=0.002)
    s = decide({"stale": stale_only, "careful": careful}, Requirements(min_score=0.8, max_stale_rate=0.1))
    assert s.recommendation.arm == "careful" and s.recommendation.meets_requirements
    reason(s, "stale is cheaper ($1.00 per 1k queries) and scores 0.900, but its stale-premise rate 0.200")
    at_the_cap = decide({"stale": stale_only}, Requirements(min_score=0.8, max_stale_rate=0.2))
    assert at_the_cap.recommendation.meets_requirements  # a rate equal to the cap is within it


def test_max_stale_rate_without_stale_answers_is_said_to_be_unchecked():
    s = decide({"a": results("a", [1] * 10)}, Requirements(min_score=0.5, max_stale_rate=0.1))
    assert s.recommendation.meets_requirements
    reason(s, "max_stale_rate 0.1 was not checked")


def test_stale_answers_are_compared_pairwise_with_mcnemar():
    from tunewise.decide.comparisons import stale_indicators

    plain = trusted("plain", [0] * 12, [True] * 10 + [False, None])
    verified = trusted("verified", [1] * 12, [False] * 11 + [None])
    verified[10].error = "HTTP 500: boom"  # not answered: out of the pairing
    verified[10].stale = None
    every = plain + verified
    s = build_summary(run_id="r", task="t", model="m", arms=[summarize_arm("plain", plain),
                      summarize_arm("verified", verified)], answered=answered_scores(every, ["plain", "verified"]),
                      requirements=Requirements(), stale=stale_indicators(every, ["plain", "verified"]))
    (c,) = s.comparisons
    assert c.stale is not None and (c.stale.n, c.stale.a_stale, c.stale.b_stale) == (10, 10, 0)
    assert c.stale.p_value == pytest.approx(2 * 0.5**10) and c.flipped().stale.a_stale == 0


def test_summary_json_reads_back_typed_with_any_arms_extras():
    from tunewise.arms.base import ArmExtras

    class Curve(ArmExtras):
        maj_at_k: dict[str, float]
        tried: int

    s = decide({"a": results("a", [1, 0]), "b": results("b", [1, 1])}, Requirements())
    s.arms[0] = s.arms[0].model_copy(update={"extras": Curve(maj_at_k={"1": 0.5}, tried=3)})
    back = Summary.model_validate_json(s.model_dump_json())
    assert back.arms[0].extras.model_dump() == {"maj_at_k": {"1": 0.5}, "tried": 3}
    assert back.model_dump() == s.model_dump()
