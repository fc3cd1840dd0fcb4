"""Choosing from a pool, on constructed cases: maj@k, judges' verdicts, Copeland with ties."""

from __future__ import annotations

import pytest

from tunewise.arms.base import PoolScores, Result
from tunewise.arms.checks import build_check
from tunewise.arms.committee import survivors
from tunewise.arms.pool import pool_stats, recovery
from tunewise.arms.voting import (
    copeland,
    copeland_winner,
    distinct,
    k_schedule,
    majority,
    majority_picks,
    pair_preference,
    parse_choice,
    parse_yes_no,
    plurality_count,
)
from tunewise.metrics import build_normalizer
from tunewise.spec import MetricSpec


def test_k_schedule_doubles_then_ends_at_k_max():
    assert k_schedule(1) == [1]
    assert k_schedule(8) == [1, 2, 4, 8]
    assert k_schedule(10) == [1, 2, 4, 8, 10]


def test_majority_ties_go_to_the_earliest_answer():
    assert majority(["b", "a", "a", "b"]) == 0  # 2-2: "b" came first
    assert majority(["b", "a", "a"]) == 1  # the first "a"
    assert majority(["x", "y", "z"]) == 0
    with pytest.raises(ValueError):
        majority([])


def test_maj_at_k_curve_from_one_fixed_pool():
    pool = ["Lyon", "Paris", "Paris", "Nice", "Paris", "Lyon", "Lyon", "Lyon"]
    picks = majority_picks(pool, k_schedule(8))
    assert picks == {"maj@1": 0, "maj@2": 0, "maj@4": 1, "maj@8": 0}  # 4-4 at k=8: Lyon came first
    assert plurality_count(pool) == 4 and distinct(pool) == [0, 1, 3]


def test_votes_are_grouped_by_the_metrics_normalisation():
    normalize = build_normalizer(MetricSpec(name="normalized"))
    pool = ["paris", "Lyon.", "Paris!", " PARIS "]
    assert majority([normalize(t) for t in pool]) == 0
    exact = build_normalizer(MetricSpec(name="exact"))
    assert majority([exact(t) for t in pool]) == 0 and len({exact(t) for t in pool}) == 4
    regex = build_normalizer(MetricSpec(name="regex", pattern=r"ANSWER: (\w+)"))
    assert regex("ANSWER: Paris (sure)") == regex("so ANSWER: paris") == "paris"
    as_json = build_normalizer(MetricSpec(name="json"))
    assert as_json('{"b": 1, "a": true}') == as_json('```json\n{"a": true, "b": 1}\n```') != as_json('{"a": 1, "b": 1}')


def test_judge_replies_are_parsed_robustly():
    assert parse_yes_no("Yes.") is True and parse_yes_no("no, it is wrong") is False
    assert parse_yes_no("I think YES") is True and parse_yes_no("The capital is Lyon") is None
    assert parse_yes_no("nope") is None  # only whole words count
    assert parse_choice("A") == "A" and parse_choice("(B)") == "B" and parse_choice(" b. ") == "B"
    assert parse_choice("Answer B is better") == "B"
    assert parse_choice("A better answer is B") is None  # the article A makes this ambiguous
    assert parse_choice("I prefer B") == "B" and parse_choice("neither") is None


def test_a_comparator_that_always_says_a_has_no_net_preference():
    always_a = ["A", "A", "A"]
    assert pair_preference(always_a, always_a) == 0
    assert pair_preference(["A", "A"], ["B", "B"]) == 1  # both orders agree: the first wins
    assert pair_preference(["B"], ["A"]) == -1
    assert pair_preference(["A"], ["A", None]) == 0  # an unclear vote counts for neither


def test_copeland_with_ties_goes_to_the_earliest_proposal():
    # 0 beats 1, 2 beats 0, 1 beats 2: a cycle, every score 0, the first proposal wins.
    cycle = copeland(3, {(0, 1): 1, (0, 2): -1, (1, 2): 1})
    assert cycle == [0, 0, 0] and copeland_winner(cycle) == 0
    # 1 and 2 each beat 0 and tie each other: tied at +1, the earlier (1) wins.
    scores = copeland(3, {(0, 1): -1, (0, 2): -1, (1, 2): 0})
    assert scores == [-2, 1, 1] and copeland_winner(scores) == 1
    assert copeland_winner(copeland(4, {(2, 3): -1})) == 3  # missing pairs are ties


def test_one_critic_rejection_drops_a_candidate():
    verdicts = {0: [True, False, True], 1: [True, None], 2: [None], 3: [False]}
    assert survivors([0, 1, 2, 3, 4], verdicts) == [1, 2, 4]  # unclear and unjudged stay
    assert survivors([0, 3], verdicts) == []


def rows(pools: list[tuple[list[float], dict[str, int]]]) -> list[Result]:
    return [
        Result("a", f"e{i}", "", "", scores[picks["committee"]], pool=PoolScores(scores, picks))
        for i, (scores, picks) in enumerate(pools)
    ]


def test_pool_statistics_and_recovery():
    results = rows([
        ([0, 1, 1, 0], {"maj@1": 0, "maj@2": 0, "maj@4": 1, "committee": 1}),  # recovered
        ([0, 0, 1, 0], {"maj@1": 0, "maj@2": 0, "maj@4": 0, "committee": 0}),  # coverage only
        ([1, 1, 1, 1], {"maj@1": 0, "maj@2": 0, "maj@4": 0, "committee": 0}),
        ([0, 0, 0, 0], {"maj@1": 0, "maj@2": 0, "maj@4": 0, "committee": 0}),
    ])
    results.append(Result("a", "err", "", "", 0.0, error="HTTP 500"))  # no pool: 0 everywhere
    stats = pool_stats(results)
    assert stats["maj_at_k"] == {"1": 0.2, "2": 0.2, "4": 0.4}
    assert stats["oracle_at_k"] == {"1": 0.2, "2": 0.4, "4": 0.6}
    assert stats["single"] == 0.2 and stats["selected"] == 0.4 and stats["coverage"] == 0.6
    assert stats["recovery"] == pytest.approx(0.5)
    assert recovery(0.5, 0.5, 0.5) is None  # nothing to recover
    assert pool_stats([Result("a", "e", "", "", 1.0)]) is None


def test_soundness_checks(tmp_path):
    from tunewise.spec import CheckSpec

    year = build_check(CheckSpec.model_validate({"regex": r"\d{4}"}))
    assert year(" 1999 ", {}) and not year("in 1999", {})
    schema = build_check(CheckSpec.model_validate({"json_schema": {"type": "object", "required": ["name"]}}))
    assert schema('```json\n{"name": "x"}\n```', {}) and not schema('{"other": 1}', {}) and not schema("name: x", {})
    (tmp_path / "tests_pass.py").write_text(
        "def run(answer, fields):\n"
        "    scope = {}\n"
        "    exec(answer, scope)\n"
        "    exec(fields['test'], scope)\n"
        "    return True\n"
    )
    tests = build_check(CheckSpec.model_validate("python:tests_pass:run"), tmp_path)
    fields = {"test": "assert add(2, 3) == 5"}
    assert tests("def add(a, b):\n    return a + b", fields)
    assert not tests("def add(a, b):\n    return a - b", fields)  # the task's test fails: so does the check
    assert not tests("def add(a, b) return", fields)  # a syntax error too
    with pytest.raises(ValueError, match="exactly one|one of"):
        CheckSpec.model_validate({"regex": "x", "python": "python:a:b"})
