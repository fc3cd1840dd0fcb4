"""Arms against each other on the examples both answered: paired tests of the scores, Holm-adjusted over every
pair, and of the stale indicator where examples have stale answers (Holm-adjusted apart)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations

import numpy as np

from tunewise.arms.base import Result
from tunewise.decide.schema import Comparison, StaleComparison
from tunewise.decide.stats import PairedTest, holm, paired_test

ALPHA = 0.05


def compare_arms(
    answered: Mapping[str, Mapping[str, float]], *, seed: int = 0,
    stale: Mapping[str, Mapping[str, bool]] | None = None,
) -> list[Comparison]:
    """Every pair of arms on the examples both answered (arm -> example id -> score), Holm-adjusted; with the
    stale indicators (arm -> example id -> stale, see `stale_indicators`) tested too, where both have some."""
    tests = []
    for a, b in combinations(answered, 2):
        common = sorted(answered[a].keys() & answered[b].keys())
        if common:
            x, y = [answered[a][e] for e in common], [answered[b][e] for e in common]
            tests.append((a, b, float(np.mean(x)), float(np.mean(y)), paired_test(x, y, seed=seed)))
    adjusted = holm([t.p_value for *_, t in tests])
    comparisons = [
        Comparison(
            a=a, b=b, n=t.n, a_score=sa, b_score=sb, diff=t.diff, a_better=t.a_better, b_better=t.b_better,
            method=t.method, p_value=t.p_value, p_holm=p, significant=p < ALPHA, ci=list(t.ci) if t.ci else None,
        )
        for (a, b, sa, sb, t), p in zip(tests, adjusted)
    ]
    return _with_stale(comparisons, stale) if stale else comparisons


def _stale_test(a: Mapping[str, bool], b: Mapping[str, bool]) -> PairedTest | None:
    """McNemar's exact test on two arms' stale indicators, on the examples both have one for."""
    common = sorted(a.keys() & b.keys())
    return paired_test([float(a[e]) for e in common], [float(b[e]) for e in common]) if common else None


def _with_stale(comparisons: list[Comparison], stale: Mapping[str, Mapping[str, bool]]) -> list[Comparison]:
    tests = {(c.a, c.b): t for c in comparisons if (t := _stale_test(stale.get(c.a, {}), stale.get(c.b, {})))}
    adjusted = dict(zip(tests, holm([t.p_value for t in tests.values()])))
    return [
        c.model_copy(update={"stale": StaleComparison(n=t.n, a_stale=t.a_better, b_stale=t.b_better, p_value=t.p_value,
                                                      p_holm=adjusted[(c.a, c.b)])})
        if (t := tests.get((c.a, c.b))) else c
        for c in comparisons
    ]


def versus(comparisons: Sequence[Comparison], a: str, b: str) -> Comparison | None:
    """The comparison of `a` against `b`, oriented so that its `a` is `a`."""
    for c in comparisons:
        if (c.a, c.b) == (a, b):
            return c
        if (c.a, c.b) == (b, a):
            return c.flipped()
    return None


def significantly_worse(comparisons: Sequence[Comparison], a: str, b: str) -> bool:
    c = versus(comparisons, a, b)
    return c is not None and c.significant and c.diff < 0


def answered_scores(results: Iterable[Result], arms: Sequence[str]) -> dict[str, dict[str, float]]:
    """arm -> example id -> score, in the order of `arms`, for the examples answered without error (what
    paired tests compare)."""
    out: dict[str, dict[str, float]] = {name: {} for name in arms}
    for r in results:
        if r.error is None and r.arm in out:
            out[r.arm][r.example_id] = r.score
    return out


def stale_indicators(results: Iterable[Result], arms: Sequence[str]) -> dict[str, dict[str, bool]]:
    """arm -> example id -> whether its answer was stale, for the examples with stale answers answered without
    error; arms with none are left out."""
    out: dict[str, dict[str, bool]] = {}
    for r in results:
        if r.stale is not None and r.arm in arms:
            out.setdefault(r.arm, {})[r.example_id] = r.stale
    return out
