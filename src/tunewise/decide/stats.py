"""Statistics of per-example scores: confidence intervals of a mean, and paired tests between arms.

Scores lie in [0, 1]; most metrics give 0 or 1 (exact, normalized, contains, regex), some give
fractions (f1, json). Which test applies is read from the scores themselves:

- CI of a mean: the Wilson score interval when every score is 0 or 1 (never zero-width: 0 of 170
  gives [0, 0.022], where a bootstrap would claim [0, 0]); otherwise a BCa bootstrap.
- A against B on the same examples: McNemar's exact test (a binomial test on the examples exactly one
  of them got right) when both are 0/1; otherwise a paired permutation test (A's and B's scores
  swapped within pairs) for the p-value and a paired bootstrap for the CI of the mean difference.
- Many pairs at once: Holm's step-down adjustment of the p-values.

Bootstraps are seeded, so a report regenerated from the same results says the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np
from scipy import special
from scipy import stats as sps

RESAMPLES = 10_000
_CHUNK = 1_000  # resamples drawn at once: bounds memory at _CHUNK x n floats


@dataclass(frozen=True)
class Interval:
    """A confidence interval and how it was computed."""

    low: float
    high: float
    method: str

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


@dataclass(frozen=True)
class PairedTest:
    """A against B on the examples both answered: mean difference, who won where, and a two-sided p."""

    n: int
    diff: float
    a_better: int
    b_better: int
    p_value: float
    method: str
    ci: tuple[float, float] | None = None


def is_binary(scores: Sequence[float] | np.ndarray) -> bool:
    values = np.asarray(scores, dtype=float)
    return bool(np.all((values == 0.0) | (values == 1.0)))


def wilson(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """The Wilson score interval of a proportion, the CI of a 0/1 score's mean: Newcombe's (1998) formula as
    `scipy.stats.binomtest(...).proportion_ci(method="wilson")` computes it, without the test's p-value search."""
    p = successes / n
    z = float(special.ndtri(0.5 + 0.5 * confidence))
    denom = 2 * (n + z**2)
    center = (2 * n * p + z**2) / denom
    delta = z / denom * math.sqrt(4 * n * p * (1 - p) + z**2)
    return Interval(0.0 if successes == 0 else center - delta, 1.0 if successes == n else center + delta, "wilson")


def mean_ci(scores: Sequence[float], *, confidence: float = 0.95, seed: int = 0) -> Interval:
    """CI of the mean score: Wilson for 0/1 scores, BCa bootstrap (percentile when BCa is undefined) else."""
    values = np.asarray(scores, dtype=float)
    if values.size == 0:
        return Interval(math.nan, math.nan, "none (no results)")
    if is_binary(values):
        return wilson(int(values.sum()), int(values.size), confidence)
    if np.all(values == values[0]):
        return Interval(float(values[0]), float(values[0]), "none (every score equal)")
    for method in ("BCa", "percentile"):
        res = sps.bootstrap(
            (values,), np.mean, confidence_level=confidence, n_resamples=RESAMPLES, method=method, random_state=seed
        )
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            return Interval(low, high, f"{method} bootstrap")
    raise AssertionError("a percentile bootstrap of non-constant scores is always finite")


def examples_for(n: int, half_width: float, target: float = 0.05) -> int:
    """About how many examples bring a CI of `half_width` at `n` examples down to ±`target` (width ~ 1/sqrt(n))."""
    return max(n, math.ceil(n * (half_width / target) ** 2))


def _bootstrap_means(values: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = values.size
    return np.concatenate(
        [values[rng.integers(0, n, size=(min(_CHUNK, RESAMPLES - i), n))].mean(axis=1) for i in range(0, RESAMPLES, _CHUNK)]
    )


def _sign_flip_p(d: np.ndarray, seed: int) -> float:
    """Two-sided p of a paired permutation test: A's and B's scores swapped within pairs, i.e. each
    difference's sign flipped. Exact when 2^n <= RESAMPLES; unlike a bootstrap p-value it stays honest at
    small n (4 pairs can never give p < 0.125)."""
    n = d.size
    observed = abs(d.mean()) * (1 - 1e-12)  # float noise must not break ties with the observed value
    if 2**n <= RESAMPLES:
        signs = np.array(list(product((1.0, -1.0), repeat=n)))
        return float(np.mean(np.abs(signs @ d / n) >= observed))
    rng = np.random.default_rng(seed)
    hits = 0
    for i in range(0, RESAMPLES, _CHUNK):
        signs = rng.choice((1.0, -1.0), size=(min(_CHUNK, RESAMPLES - i), n))
        hits += int(np.sum(np.abs(signs @ d / n) >= observed))
    return (hits + 1) / (RESAMPLES + 1)


def paired_test(a: Sequence[float], b: Sequence[float], *, confidence: float = 0.95, seed: int = 0) -> PairedTest:
    """Test A against B on paired scores (the same examples, in the same order)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired scores need equal lengths, got {x.size} and {y.size}")
    n = int(x.size)
    a_better, b_better = int(np.sum(x > y)), int(np.sum(y > x))
    diff = float(np.mean(x - y)) if n else 0.0
    if is_binary(x) and is_binary(y):
        discordant = a_better + b_better
        p = sps.binomtest(a_better, discordant, 0.5).pvalue if discordant else 1.0
        return PairedTest(n, diff, a_better, b_better, float(p), "mcnemar exact")
    means = _bootstrap_means(x - y, seed)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    p = _sign_flip_p(x - y, seed)
    return PairedTest(n, diff, a_better, b_better, float(p), "paired permutation", (float(low), float(high)))


@dataclass(frozen=True)
class NonInferiority:
    """Whether A is at most `margin` worse than B on paired scores: H0 mean(A - B) <= -margin, one-sided at 5%."""

    n: int
    diff: float
    margin: float
    p_value: float
    method: str

    @property
    def shown(self) -> bool:
        return self.p_value < 0.05


def _tango_z(better: int, worse: int, n: int, theta: float) -> float:
    """Tango's (1998) score statistic for a difference of paired proportions equal to `theta`: (b - c - n theta)
    over its standard error with the cell probability restricted to `theta` (its maximum-likelihood value)."""
    a, b_ = 2 * n, -better - worse + (2 * n - better + worse) * theta
    c = -worse * theta * (1 - theta)
    roots = np.roots([a, b_, c]) if a else np.array([0.0])
    feasible = [float(r.real) for r in roots if abs(r.imag) < 1e-12
                and max(0.0, -theta) - 1e-12 <= r.real <= (1 - theta) / 2 + 1e-12]
    q = feasible[0] if feasible else max(0.0, -theta)
    variance = n * (2 * q + theta - theta**2)
    return (better - worse - n * theta) / math.sqrt(variance) if variance > 0 else math.inf


def non_inferiority(a: Sequence[float], b: Sequence[float], margin: float) -> NonInferiority:
    """Is A non-inferior to B within `margin`? For 0/1 scores Tango's score test for paired proportions (it stays
    honest when the arms never disagree: 20 identical answers do not show equivalence within 0.02); otherwise a
    one-sided paired t-test of the differences shifted by the margin."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired scores need equal lengths, got {x.size} and {y.size}")
    n = int(x.size)
    if n == 0:
        return NonInferiority(0, 0.0, margin, 1.0, "none (no shared examples)")
    diff = float(np.mean(x - y))
    if is_binary(x) and is_binary(y):
        z = _tango_z(int(np.sum(x > y)), int(np.sum(y > x)), n, -margin)
        return NonInferiority(n, diff, margin, float(sps.norm.sf(z)), "tango score")
    d = x - y + margin
    sd = float(np.std(d, ddof=1)) if n > 1 else 0.0
    if sd == 0:
        return NonInferiority(n, diff, margin, 0.0 if d.mean() > 0 else 1.0, "paired t (no spread)")
    t = float(d.mean() / (sd / math.sqrt(n)))
    return NonInferiority(n, diff, margin, float(sps.t.sf(t, n - 1)), "paired t")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error rate), in the order given."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
