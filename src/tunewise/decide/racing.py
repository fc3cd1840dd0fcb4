"""Racing: which arms the evidence of the rounds so far rules out as the recommendation, so they need not see the
rest of the test split. Pure: numbers in, drops out.

A racing run evaluates the arms in rounds on growing, nested shares of the test split (the same examples for every
arm, in the order of a seeded permutation). After each round but the last, an arm still in the race is dropped when:

(a) `min_score`: its score on the whole test split is below `requirements.min_score` with confidence, and below
    another arm's in the race that is within the hard caps so far (so it is not the best-scoring arm either, which
    is what is recommended when no arm reaches min_score);
(b) `worse`: its score is below, with confidence, that of an arm in the race that meets the requirements so far and
    is no more expensive (by what the recommendation calls cheaper: cost, one-off cost, tokens per query, p95 latency);
(c) `cap`: it is over a hard cap with confidence (p95 latency: more than 5% of its answers slower than
    `max_p95_latency_ms`; mean cost per query over `max_cost_per_1k`; stale-premise rate over `max_stale_rate`),
    and another arm in the race is within the caps so far;
(d) `dominated`: a cheaper arm in the race, within the caps so far, clears min_score with confidence: its score on
    the whole split reaches the share at which its CI lies above min_score (`clear_share`), and the recommendation
    takes the cheapest arm whose CI clears min_score;
(e) `unclear`: its score on the whole split is, with confidence, short of that share, while another arm in the race,
    within the caps so far, clears min_score with confidence: the recommendation prefers arms whose CI clears it.

Every "with confidence" is an anytime-valid test by betting. The means tested are the whole test split's, the mean
the exhaustive plan would measure: the rounds' examples are draws without replacement from it, and the betting
confidence sequence for sampling without replacement (Waudby-Smith & Ramdas 2020, "Confidence sequences for sampling
without replacement", NeurIPS) closes on that mean as the rounds use the split up. Against the null "mean >= m" a
bettor's wealth prod_i (1 + lambda_i (mu_i(m) - X_i)), where mu_i(m) = (N m - sum_{j<i} X_j) / (N - i + 1) is what
the undrawn examples must average, with bets lambda_i >= 0 chosen from the examples before i (aGRAPA; "Estimating
means of bounded random variables by betting", JRSS-B 2023), is a nonnegative supermartingale under the null, so by
Ville's inequality it ever reaches 1/level with probability at most `level`, however many rounds look at it. Scores
lie in [0, 1] (an error scores 0, as in the summary); a paired difference d in [-1, 1] is tested as (1 + d) / 2; a
cost, nonnegative but unbounded, by the with-replacement wealth prod_i (1 + lambda_i (C_i / cap - 1)) with
lambda_i in [0, 3/4]; latency and stale shares with replacement too. The bounds shown are the confidence sequences
these tests make, on a grid of 0.005 (and the null tested).

The guarantee: each confidence sequence runs at level = alpha / J, J being the most that can drop one arm (its own
score's, its score's difference from each other arm's, each other arm's score's, one per cap set: every test of a
score, against min_score or the share that clears it, reads the same sequence), so the chance that an arm is ever
dropped for a reason that is false on the whole test split is at most alpha, over all rounds. The arm the
exhaustive plan would recommend is dropped only for a false reason, so at most alpha of the time (over the seeded
order of the split), as long as the point estimates a rule leans on (which arm is no more expensive, within the
caps so far) order the arms as the whole split would.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tunewise.decide.costs import money
from tunewise.decide.recommend import cheapness, shortfalls
from tunewise.decide.schema import ArmRacing, ArmSummary
from tunewise.decide.stats import is_binary, wilson
from tunewise.spec import Requirements

METHOD = ("betting confidence sequences for sampling without replacement (Waudby-Smith & Ramdas 2020),"
          " aGRAPA bets")
P95_TAIL = 0.05  # p95 latency is over a cap when more than this share of answers is slower
_GRID = np.linspace(0.0, 1.0, 201)
_TRUNCATION = 0.75  # a bet never risks more than three quarters of the wealth on one example
_COLUMNS = 256  # grid points computed at once: bounds memory at _COLUMNS x n floats


@dataclass(frozen=True)
class ArmLook:
    """One arm at a look: its numbers on the examples of the rounds so far (`summary`) and, per example in the race's
    order, its score (0 where the answer errored, as in the summary; nan for a draw to leave out), latency and cost
    (nan where the answer errored) and stale indicator (nan where there is none)."""

    summary: ArmSummary
    scores: np.ndarray
    latencies: np.ndarray
    costs: np.ndarray
    stale: np.ndarray

    @property
    def name(self) -> str:
        return self.summary.name


def _rejected(values: np.ndarray, m: np.ndarray, threshold: float, population: int | None) -> np.ndarray:
    """For each m, whether the bettor against "mean >= m" has ever reached wealth e^threshold on `values`."""
    t = np.arange(1, values.size + 1)[:, None]
    mean = (0.5 + np.cumsum(values)) / (t[:, 0] + 1)
    var = (0.25 + np.cumsum((values - mean) ** 2)) / (t[:, 0] + 1)
    mean_before = np.concatenate(([0.5], mean[:-1]))[:, None]
    var_before = np.concatenate(([0.25], var[:-1]))[:, None]
    if population is None:
        mu = np.broadcast_to(m[None, :], (values.size, m.size))
    else:
        sum_before = np.concatenate(([0.0], np.cumsum(values)[:-1]))[:, None]
        mu = (population * m[None, :] - sum_before) / (population - t + 1)
    gap = mu - mean_before
    bets = np.clip(gap / (var_before + gap**2), 0.0, _TRUNCATION / np.maximum(1.0 - mu, 1e-12))
    steps = np.log1p(bets * (mu - values[:, None]))
    steps[mu > 1 + 1e-12] = np.inf  # the undrawn values would have to average more than 1: "mean >= m" is false
    return (np.cumsum(steps, axis=0) >= threshold).any(axis=0)


def rejects(x: Sequence[float] | np.ndarray, m: float, level: float, *, population: int | None = None) -> bool:
    """Whether the betting test at `level` rejects "mean >= m" on `x` (values in [0, 1], in the order drawn), at any
    of them: one column of `upper_bound`'s grid, so `rejects(x, m, level)` is `upper_bound(x, level, at=[m]) < m`."""
    values = np.asarray(x, dtype=float)
    return bool(values.size) and bool(_rejected(values, np.array([float(m)]), math.log(1 / level), population)[0])


def upper_bound(x: Sequence[float] | np.ndarray, level: float, *, at: Sequence[float] = (),
                population: int | None = None) -> float:
    """The upper end of the betting confidence sequence at `level` for the mean of `x` (values in [0, 1], in the
    order drawn), after the last of them: the largest m on the grid (and `at`) whose test of "mean >= m" never
    reached 1/level. Below m only when that test rejected, so `upper_bound(x, level, at=[m]) < m` is a level test.

    With `population`, `x` are the first draws without replacement from that many values and the mean is theirs
    (Waudby-Smith & Ramdas 2020): under "mean = m" the next draw's mean is what the undrawn values must average,
    (population * m - sum so far) / (undrawn), so the bound closes on the population's mean as the draws run out."""
    values = np.asarray(x, dtype=float)
    if values.size == 0:
        return 1.0
    grid = np.union1d(_GRID, np.clip(np.asarray(at, dtype=float), 0.0, 1.0))
    threshold = math.log(1 / level)
    kept = [m[~_rejected(values, m, threshold, population)] for m in np.array_split(grid, -(-grid.size // _COLUMNS))]
    survivors = np.concatenate(kept)
    return float(survivors.max()) if survivors.size else 0.0


def lower_bound(x: Sequence[float] | np.ndarray, level: float, *, at: Sequence[float] = (),
                population: int | None = None) -> float:
    """The lower end of the betting confidence sequence: `lower_bound(x, level, at=[m]) > m` is a level test of
    "mean <= m"."""
    return 1.0 - upper_bound(1.0 - np.asarray(x, dtype=float), level, at=[1.0 - a for a in at], population=population)


def paired_upper(a: np.ndarray, b: np.ndarray, level: float, population: int | None = None) -> tuple[float, float, int]:
    """Mean difference a - b on the examples both answered, the upper end of its confidence sequence, and how many
    examples: an upper end below 0 says "a scores lower than b" at `level` (on the `population` examples the draws
    come from, when both answered every one drawn)."""
    d, whole = _differences(a, b, population)
    if not d.size:
        return 0.0, 1.0, 0
    return float(d.mean()), 2 * upper_bound((1 + d) / 2, level, at=[0.5], population=whole) - 1, int(d.size)


def scores_below(a: np.ndarray, b: np.ndarray, level: float, population: int | None = None) -> bool:
    """Whether `paired_upper(a, b, level, population)` is below 0, testing that one point alone."""
    d, whole = _differences(a, b, population)
    return rejects((1 + d) / 2, 0.5, level, population=whole)


def _differences(a: np.ndarray, b: np.ndarray, population: int | None) -> tuple[np.ndarray, int | None]:
    both = ~(np.isnan(a) | np.isnan(b))
    return a[both] - b[both], population if both.all() else None


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
    """J: the most confidence sequences that can drop one arm: its score's difference from each other arm's, one per
    cap, and with min_score its own score's and each other arm's."""
    caps = sum(c is not None for c in (req.max_p95_latency_ms, req.max_cost_per_1k, req.max_stale_rate))
    others = max(arms - 1, 0)
    return others + caps + (1 + others if req.min_score is not None else 0)


def race_level(arms: int, req: Requirements, alpha: float) -> float:
    """The level each confidence sequence of a race of `arms` runs at: alpha over J (`drop_tests`)."""
    return alpha / max(1, drop_tests(arms, req))


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


def clear_share(n: int, min_score: float, binary: bool) -> float:
    """The least score on n examples whose CI, as the summary computes it, lies at or above min_score: for 0/1 scores
    the least k/n whose Wilson interval does (above 1 when none does); for others min_score plus the half-width of a
    normal 95% CI at the largest spread scores in [0, 1] can have, 1.96 * 0.5 / sqrt(n)."""
    if not binary:
        return min_score + 1.96 * 0.5 / math.sqrt(n)
    low, high = 0, n + 1
    while low < high:
        k = (low + high) // 2
        if wilson(k, n).low >= min_score:
            high = k
        else:
            low = k + 1
    return low / n


@dataclass(frozen=True)
class _Rules:
    """The tests of one look: at `level`, on the whole split of `population` examples (None: with replacement);
    `grain`, the spacing of the means that split can have (1/population for 0/1 scores, 0 for others)."""

    req: Requirements
    level: float
    population: int | None
    grain: float = 0.0

    def whole(self, x: np.ndarray) -> int | None:
        return self.population if self.population is not None and not np.isnan(x).any() else None

    def below(self, x: np.ndarray, m: float) -> tuple[bool, float]:
        """Whether the whole split's mean is below m with confidence, and (when it is) the upper bound."""
        answered, whole = x[~np.isnan(x)], self.whole(x)
        if not rejects(answered, m, self.level, population=whole):
            return False, math.nan
        return True, upper_bound(answered, self.level, at=[m], population=whole)

    def reaches(self, x: np.ndarray, share: float) -> tuple[bool, float]:
        """Whether the whole split's mean is at least `share` with confidence, and (when it is) the lower bound. On
        a grain the test is against half a grain below `share` (a possible mean as well), which a mean above it can
        only be by reaching `share`, so rounding cannot tip it."""
        answered, whole = x[~np.isnan(x)], self.whole(x)
        under = share - self.grain / 2 if whole else share
        if not rejects(1 - answered, 1 - under, self.level, population=whole):
            return False, math.nan
        return True, lower_bound(answered, self.level, at=[under], population=whole)

    def short_of(self, x: np.ndarray, share: float) -> tuple[bool, float]:
        """Whether the whole split's mean is below `share` with confidence (on a grain: below half a grain under
        it), and (when it is) the upper bound."""
        return self.below(x, share - self.grain / 2 if self.whole(x) else share)

    def paired(self, a: ArmLook, b: ArmLook) -> tuple[float, float, int] | None:
        """a's score less b's, its upper bound and the examples paired, when a scores below b with confidence."""
        if not scores_below(a.scores, b.scores, self.level, self.population):
            return None
        return paired_upper(a.scores, b.scores, self.level, self.population)


def judge(looks: Sequence[ArmLook], req: Requirements, level: float, population: int | None = None
          ) -> dict[str, tuple[str, str]]:
    """The arms of one look the rules drop, each with its rule (`min_score`, `worse`, `cap`, `dominated`, `unclear`)
    and reason; `population`: the test split's size, whose means the tests are about (None: with replacement)."""
    binary = all(is_binary(a.scores[~np.isnan(a.scores)]) for a in looks)
    rules = _Rules(req, level, population, 1 / population if binary and population else 0.0)
    within = {a.name: not shortfalls(a.summary, req, score=False) for a in looks}
    meets = {a.name: not shortfalls(a.summary, req) for a in looks}
    best_first = sorted(looks, key=lambda a: -a.summary.score)
    clears: dict[str, tuple[bool, float]] = {}
    share = 1.0
    if req.min_score is not None:
        share = clear_share(population or max(a.summary.n for a in looks), req.min_score, binary)
        clears = {a.name: rules.reaches(a.scores, share) if share <= 1 else (False, 0.0) for a in looks}
    drops: dict[str, tuple[str, str]] = {}
    for a in looks:
        others = [b for b in best_first if b is not a]
        reason = _drop(a, others, rules, within, meets, clears, share)
        if reason is not None:
            drops[a.name] = reason
    if len(drops) == len(looks):  # each rule needs an arm better placed still in the race: keep the best of them
        drops.pop(best_first[0].name)
    return drops


def _drop(a: ArmLook, others: Sequence[ArmLook], rules: _Rules, within: dict[str, bool], meets: dict[str, bool],
          clears: dict[str, tuple[bool, float]], share: float) -> tuple[str, str] | None:
    """The first rule that drops arm `a`, and why in words; None when none does."""
    req, level, n = rules.req, rules.level, a.summary.n
    over = _over_cap(a, req, level)
    if over is not None and any(within[b.name] for b in others):
        return "cap", over
    cheaper = [b for b in others if meets[b.name] and cheapness(b.summary, req)[:4] <= cheapness(a.summary, req)[:4]]
    found = _first_above(a, cheaper, rules)
    if found is not None:
        b, (diff, high, shared) = found
        return "worse", (
            f"after {n} examples it scores significantly below {b.name}, which meets the requirements so far and is"
            f" no more expensive: {diff:+.3f} on {shared} shared examples, at most {high:+.3f} (level {level:.2g})")
    if req.min_score is None:
        return None
    clearing = [b for b in others if within[b.name] and clears[b.name][0]]
    for b in sorted(clearing, key=lambda b: cheapness(b.summary, req)):
        if cheapness(b.summary, req)[:4] < cheapness(a.summary, req)[:4]:
            return "dominated", (
                f"after {n} examples {b.name}, which is cheaper and within the caps so far, clears min_score"
                f" {req.min_score:g} with confidence (its score {b.summary.score:.3f} is at least"
                f" {clears[b.name][1]:.3f}, level {level:.2g}, where a score of {share:.3f} or more has its CI above"
                " min_score), so the cheapest arm whose CI clears min_score is not this one")
    short, high = rules.short_of(a.scores, share) if clearing else (False, math.nan)
    if short:
        b = clearing[0]
        return "unclear", (
            f"after {n} examples its score {a.summary.score:.3f} is at most {high:.3f} (level {level:.2g}), short"
            f" of the {share:.3f} at which its CI would clear min_score {req.min_score:g}, while {b.name}, within the"
            f" caps so far, clears it with confidence (its score {b.summary.score:.3f} is at least"
            f" {clears[b.name][1]:.3f}): the recommendation prefers an arm whose CI clears min_score")
    short, high = rules.below(a.scores, req.min_score)
    found = _first_above(a, [b for b in others if within[b.name]], rules) if short else None
    if found is None:
        return None
    b, (diff, top, shared) = found
    return "min_score", (
        f"after {n} examples its score {a.summary.score:.3f} is at most {high:.3f} (level {level:.2g}), below"
        f" min_score {req.min_score:g}, and significantly below {b.name} ({diff:+.3f} on {shared} shared examples,"
        f" at most {top:+.3f})")


def _first_above(a: ArmLook, candidates: Sequence[ArmLook], rules: _Rules
                 ) -> tuple[ArmLook, tuple[float, float, int]] | None:
    """The first of `candidates` that `a` scores below with confidence, with the difference, its upper bound and the
    examples paired."""
    for b in candidates:
        below = rules.paired(a, b)
        if below is not None:
            return b, below
    return None


def race(names: Sequence[str], looks: int, look: Callable[[int, Sequence[str]], Sequence[ArmLook] | None],
         req: Requirements, alpha: float, population: int | None = None) -> dict[str, ArmRacing]:
    """The arms dropped, by name: after each of the first `looks` rounds, the rules applied to the arms still in the
    race, as `look(round, arms)` gives them (None while a round is incomplete: the race stops there)."""
    level = race_level(len(names), req, alpha)
    alive = list(names)
    dropped: dict[str, ArmRacing] = {}
    for r in range(looks):
        if len(alive) < 2:
            break
        seen = look(r, alive)
        if seen is None:
            break
        by_name = {a.name: a.summary for a in seen}
        for name, (rule, reason) in judge(seen, req, level, population).items():
            s = by_name[name]
            dropped[name] = ArmRacing(dropped_round=r + 1, n=s.n, score=s.score, ci=s.ci, rule=rule, reason=reason)
        alive = [n for n in alive if n not in dropped]
    return dropped
