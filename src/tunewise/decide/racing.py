"""Racing: which arms the evidence of the rounds so far rules out as the recommendation, so they need not see the
rest of the test split. Pure: numbers in, drops out.

A racing run evaluates the arms in rounds on growing, nested shares of the test split (the same examples for every
arm, in the order of a seeded permutation). After each round but the last, an arm still in the race is dropped when:

(a) `min_score`: an upper confidence bound of its score is below `requirements.min_score`, and it scores significantly
    below another arm in the race that is within the hard caps so far (so it is not the best-scoring arm either,
    which is what is recommended when no arm reaches min_score);
(b) `worse`: it scores significantly below an arm in the race that meets the requirements so far and is no more
    expensive (by what the recommendation calls cheaper: cost, one-off cost, tokens per query, p95 latency);
(c) `cap`: it is over a hard cap with confidence (p95 latency: more than 5% of its answers slower than
    `max_p95_latency_ms`; mean cost per query over `max_cost_per_1k`; stale-premise rate over `max_stale_rate`),
    and another arm in the race is within the caps so far;
(d) `dominated`: a cheaper arm in the race, within the caps so far, reaches min_score with confidence (a lower
    confidence bound of its score is above min_score), so the cheapest arm meeting the requirements is not this one.

Every "with confidence" is an anytime-valid test by betting (Waudby-Smith & Ramdas 2023, "Estimating means of
bounded random variables by betting", JRSS-B 86(1)): against the null "mean >= m" a bettor's wealth
prod_i (1 + lambda_i (m - X_i)), with bets lambda_i >= 0 chosen from the examples before i (aGRAPA), is a nonnegative
supermartingale under the null, so by Ville's inequality it ever reaches 1/level with probability at most `level`,
however many rounds look at it. Scores lie in [0, 1]; a paired difference d in [-1, 1] is tested as (1 + d) / 2; a
cost, nonnegative but unbounded, by the wealth prod_i (1 + lambda_i (C_i / cap - 1)) with lambda_i in [0, 3/4].
The bounds shown are the confidence sequences these tests make, on a grid of 0.005 (and the null tested).

The guarantee: each test runs at level = alpha / J, J being the most tests that can drop one arm (its own score
against min_score, its score against each other arm's, each other arm's score against min_score, one per cap set), so
the chance that an arm is ever dropped for a reason that is false (a score that does reach min_score, a worse score
that is not worse, a cheaper arm that does not reach min_score, a cap that is kept) is at most alpha, over all
rounds. The arm the exhaustive plan would recommend is dropped only for a false reason, so at most alpha of the
time, as long as the point estimates a rule leans on (which arm is no more expensive, within the caps so far)
order the arms as the full test split would. Examples answered with an error are left out of the tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tunewise.decide.costs import money
from tunewise.decide.recommend import cheapness, shortfalls
from tunewise.decide.schema import ArmRacing, ArmSummary
from tunewise.spec import Requirements

METHOD = "betting confidence sequences (Waudby-Smith & Ramdas 2023), aGRAPA bets"
P95_TAIL = 0.05  # p95 latency is over a cap when more than this share of answers is slower
_GRID = np.linspace(0.0, 1.0, 201)
_TRUNCATION = 0.75  # a bet never risks more than three quarters of the wealth on one example
_COLUMNS = 256  # grid points computed at once: bounds memory at _COLUMNS x n floats


@dataclass(frozen=True)
class ArmLook:
    """One arm at a look: its numbers on the examples of the rounds so far (`summary`) and, per example in the race's
    order, its score, latency and cost (nan where the answer errored) and stale indicator (nan where there is none)."""

    summary: ArmSummary
    scores: np.ndarray
    latencies: np.ndarray
    costs: np.ndarray
    stale: np.ndarray

    @property
    def name(self) -> str:
        return self.summary.name


def upper_bound(x: Sequence[float] | np.ndarray, level: float, *, at: Sequence[float] = ()) -> float:
    """The upper end of the betting confidence sequence at `level` for the mean of `x` (values in [0, 1], in the
    order drawn), after the last of them: the largest m on the grid (and `at`) whose test of "mean >= m" never
    reached 1/level. Below m only when that test rejected, so `upper_bound(x, level, at=[m]) < m` is a level test."""
    values = np.asarray(x, dtype=float)
    if values.size == 0:
        return 1.0
    grid = np.union1d(_GRID, np.clip(np.asarray(at, dtype=float), 0.0, 1.0))
    t = np.arange(1, values.size + 1)
    mean = (0.5 + np.cumsum(values)) / (t + 1)
    var = (0.25 + np.cumsum((values - mean) ** 2)) / (t + 1)
    mean_before = np.concatenate(([0.5], mean[:-1]))[:, None]
    var_before = np.concatenate(([0.25], var[:-1]))[:, None]
    threshold = math.log(1 / level)
    kept = []
    for start in range(0, grid.size, _COLUMNS):
        m = grid[None, start:start + _COLUMNS]
        gap = m - mean_before
        bets = np.clip(gap / (var_before + gap**2), 0.0, _TRUNCATION / np.maximum(1.0 - m, 1e-12))
        wealth = np.cumsum(np.log1p(bets * (m - values[:, None])), axis=0)
        kept.append(m[0][~(wealth >= threshold).any(axis=0)])
    survivors = np.concatenate(kept)
    return float(survivors.max()) if survivors.size else 0.0


def lower_bound(x: Sequence[float] | np.ndarray, level: float, *, at: Sequence[float] = ()) -> float:
    """The lower end of the betting confidence sequence: `lower_bound(x, level, at=[m]) > m` is a level test of
    "mean <= m"."""
    return 1.0 - upper_bound(1.0 - np.asarray(x, dtype=float), level, at=[1.0 - a for a in at])


def paired_upper(a: np.ndarray, b: np.ndarray, level: float) -> tuple[float, float, int]:
    """Mean difference a - b on the examples both answered, the upper end of its confidence sequence, and how many
    examples: an upper end below 0 says "a scores lower than b" at `level`."""
    both = ~(np.isnan(a) | np.isnan(b))
    d = a[both] - b[both]
    if not d.size:
        return 0.0, 1.0, 0
    return float(d.mean()), 2 * upper_bound((1 + d) / 2, level, at=[0.5]) - 1, int(d.size)


def mean_exceeds(costs: np.ndarray, cap: float, level: float) -> bool:
    """Whether nonnegative values' mean is over `cap` at `level`: a betting test of "mean <= cap" (wealth
    prod (1 + lambda_i (C_i / cap - 1)), lambda_i in [0, 3/4] chosen from the values before i)."""
    values = costs[~np.isnan(costs)]
    if cap <= 0:
        return bool(np.any(values > 0))
    if not values.size:
        return False
    y = values / cap - 1
    t = np.arange(1, y.size + 1)
    mean = np.cumsum(y) / (t + 1)
    var = (1 + np.cumsum((y - mean) ** 2)) / (t + 1)
    mean_before = np.concatenate(([0.0], mean[:-1]))
    var_before = np.concatenate(([1.0], var[:-1]))
    bets = np.clip(mean_before / (var_before + mean_before**2), 0.0, _TRUNCATION)
    return bool((np.cumsum(np.log1p(bets * y)) >= math.log(1 / level)).any())


def drop_tests(arms: int, req: Requirements) -> int:
    """J: the most tests that can drop one arm: its score against each other arm's, one per cap, and with min_score
    its own score and each other arm's against it."""
    caps = sum(c is not None for c in (req.max_p95_latency_ms, req.max_cost_per_1k, req.max_stale_rate))
    others = max(arms - 1, 0)
    return others + caps + (1 + others if req.min_score is not None else 0)


def _over_cap(look: ArmLook, req: Requirements, level: float) -> str | None:
    """The hard cap this arm is over with confidence, in words; None when none is."""
    latencies = look.latencies[~np.isnan(look.latencies)]
    cap = req.max_p95_latency_ms
    if cap is not None and latencies.size:
        slower = (latencies > cap).astype(float)
        low = lower_bound(slower, level, at=[P95_TAIL])
        if low > P95_TAIL:
            return (f"its p95 latency of {look.summary.p95_latency_ms:.0f} ms is over max_p95_latency_ms {cap:g} with"
                    f" confidence: {slower.mean():.0%} of its answers are slower, at least {low:.1%} (level {level:.2g}),"
                    f" over the {P95_TAIL:.0%} a p95 allows")
    if req.max_cost_per_1k is not None and mean_exceeds(look.costs, req.max_cost_per_1k / 1000, level):
        return (f"its cost of {money(look.summary.cost_per_1k)} per 1k queries is over max_cost_per_1k"
                f" {money(req.max_cost_per_1k)} with confidence (a betting test at level {level:.2g})")
    stale = look.stale[~np.isnan(look.stale)]
    cap = req.max_stale_rate
    if cap is not None and stale.size:
        low = lower_bound(stale, level, at=[cap])
        if low > cap:
            return (f"its stale-premise rate {stale.mean():.3f} is at least {low:.3f} (level {level:.2g}), over"
                    f" max_stale_rate {cap:g}")
    return None


def judge(looks: Sequence[ArmLook], req: Requirements, level: float) -> dict[str, tuple[str, str]]:
    """The arms of one look the rules drop, each with its rule (`min_score`, `worse`, `dominated`, `cap`) and reason."""
    within = {a.name: not shortfalls(a.summary, req, score=False) for a in looks}
    meets = {a.name: not shortfalls(a.summary, req) for a in looks}
    best_first = sorted(looks, key=lambda a: -a.summary.score)
    drops: dict[str, tuple[str, str]] = {}
    for a in looks:
        others = [b for b in best_first if b is not a]
        over = _over_cap(a, req, level)
        if over is not None and any(within[b.name] for b in others):
            drops[a.name] = ("cap", over)
            continue
        n = a.summary.n
        for b in others:
            if meets[b.name] and cheapness(b.summary, req)[:4] <= cheapness(a.summary, req)[:4]:
                diff, high, shared = paired_upper(a.scores, b.scores, level)
                if high < 0:
                    drops[a.name] = ("worse", (
                        f"after {n} examples it scores significantly below {b.name}, which meets the requirements so"
                        f" far and is no more expensive: {diff:+.3f} on {shared} shared examples, at most {high:+.3f}"
                        f" (level {level:.2g})"))
                    break
        if a.name in drops or req.min_score is None:
            continue
        for b in sorted(others, key=lambda b: cheapness(b.summary, req)):
            if within[b.name] and cheapness(b.summary, req)[:4] < cheapness(a.summary, req)[:4]:
                low = lower_bound(b.scores[~np.isnan(b.scores)], level, at=[req.min_score])
                if low > req.min_score:
                    drops[a.name] = ("dominated", (
                        f"after {n} examples {b.name}, which is cheaper and within the caps so far, reaches min_score"
                        f" {req.min_score:g} with confidence (its score {b.summary.score:.3f} is at least {low:.3f},"
                        f" level {level:.2g}), so the cheapest arm meeting the requirements is not this one"))
                    break
        if a.name in drops:
            continue
        answered = a.scores[~np.isnan(a.scores)]
        high = upper_bound(answered, level, at=[req.min_score])
        if high >= req.min_score:
            continue
        for b in others:
            if within[b.name]:
                diff, top, shared = paired_upper(a.scores, b.scores, level)
                if top < 0:
                    drops[a.name] = ("min_score", (
                        f"after {n} examples its score {a.summary.score:.3f} is at most {high:.3f} (level {level:.2g}),"
                        f" below min_score {req.min_score:g}, and significantly below {b.name} ({diff:+.3f} on"
                        f" {shared} shared examples, at most {top:+.3f})"))
                    break
    if len(drops) == len(looks):  # each rule needs an arm better placed still in the race: keep the best of them
        drops.pop(best_first[0].name)
    return drops


def race(names: Sequence[str], looks: int, look: Callable[[int, Sequence[str]], Sequence[ArmLook] | None],
         req: Requirements, alpha: float) -> dict[str, ArmRacing]:
    """The arms dropped, by name: after each of the first `looks` rounds, the rules applied to the arms still in the
    race, as `look(round, arms)` gives them (None while a round is incomplete: the race stops there)."""
    level = alpha / max(1, drop_tests(len(names), req))
    alive = list(names)
    dropped: dict[str, ArmRacing] = {}
    for r in range(looks):
        if len(alive) < 2:
            break
        seen = look(r, alive)
        if seen is None:
            break
        by_name = {a.name: a.summary for a in seen}
        for name, (rule, reason) in judge(seen, req, level).items():
            s = by_name[name]
            dropped[name] = ArmRacing(dropped_round=r + 1, n=s.n, score=s.score, ci=s.ci, rule=rule, reason=reason)
        alive = [n for n in alive if n not in dropped]
    return dropped
