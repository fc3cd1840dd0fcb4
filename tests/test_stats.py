"""Confidence intervals and paired tests, against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from tunewise.decide.stats import examples_for, holm, is_binary, mean_ci, paired_test

Z = 1.959963984540054


def test_wilson_for_binary_scores_is_never_zero_width():
    none = mean_ci([0] * 170)
    assert none.method == "wilson"
    assert none.low == 0.0 and none.high == pytest.approx(Z**2 / (170 + Z**2))  # 0.0221, not [0, 0]
    every = mean_ci([1] * 170)
    assert every.high == pytest.approx(1.0) and every.low == pytest.approx(170 / (170 + Z**2))


def test_wilson_brackets_the_mean_and_narrows_with_n():
    small, large = mean_ci([1, 0] * 10), mean_ci([1, 0] * 200)
    assert small.low < 0.5 < small.high and large.low < 0.5 < large.high
    assert large.half_width < small.half_width / 3
    # textbook value: 7 of 10 -> [0.3968, 0.8922]
    seven = mean_ci([1] * 7 + [0] * 3)
    assert (round(seven.low, 4), round(seven.high, 4)) == (0.3968, 0.8922)


def test_continuous_scores_get_a_seeded_bootstrap():
    scores = [0.2, 0.5, 0.9, 0.4, 0.75, 0.3, 0.6, 0.1]
    ci = mean_ci(scores)
    assert ci.method == "BCa bootstrap"
    assert ci.low < np.mean(scores) < ci.high
    assert mean_ci(scores) == ci  # the same results always give the same report
    assert not is_binary(scores) and is_binary([0.0, 1.0, 1])


def test_constant_continuous_scores_say_there_is_no_interval():
    ci = mean_ci([0.5] * 6)
    assert (ci.low, ci.high) == (0.5, 0.5) and ci.method.startswith("none")


def test_mcnemar_looks_only_at_discordant_pairs():
    a = [1] * 10 + [0] * 30
    b = [0] * 40
    t = paired_test(a, b)
    assert t.method == "mcnemar exact" and (t.a_better, t.b_better) == (10, 0)
    assert t.p_value == pytest.approx(2 * 0.5**10)
    # examples both got right (or both wrong) change nothing
    assert paired_test(a + [1] * 100, b + [1] * 100).p_value == pytest.approx(t.p_value)
    assert paired_test([1, 0] * 20, [0, 1] * 20).p_value == pytest.approx(1.0)
    assert paired_test(b, a).p_value == pytest.approx(t.p_value) and paired_test(b, a).diff == -t.diff


def test_paired_permutation_is_exact_and_honest_at_small_n():
    four = paired_test([0.5, 0.6, 0.7, 0.4], [0.1, 0.2, 0.3, 0.2])
    assert four.method == "paired permutation"
    assert four.p_value == pytest.approx(2 / 16)  # every difference positive: 2 of the 16 sign patterns
    assert paired_test([0.4, 0.6], [0.4, 0.6]).p_value == 1.0


def test_paired_permutation_finds_a_real_shift_and_not_a_fake_one():
    rng = np.random.default_rng(3)
    base = rng.random(300)
    noise = rng.normal(0, 0.1, 300)
    shifted = paired_test(np.clip(base + 0.05 + noise, 0, 1), base)
    assert shifted.p_value < 0.001 and shifted.ci[0] > 0
    same = paired_test(np.clip(base + noise, 0, 1), base)
    assert same.p_value > 0.05 and same.ci[0] < 0 < same.ci[1]


def test_holm_adjusts_step_down():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert holm([]) == []


def test_examples_for_scales_with_the_square_of_the_width():
    assert examples_for(40, 0.10) == 160
    assert examples_for(400, 0.02) == 400  # already narrower than ±0.05
