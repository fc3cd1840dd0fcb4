"""From per-example results to numbers per arm and a recommendation.

Scores get a 95% bootstrap CI (scipy); the recommendation is the cheapest arm that meets the
task's requirements, or the best arm and the size of its gap when none does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel

from tunewise.boost_stats import boost_fields
from tunewise.store import Result
from tunewise.task import Requirements


class ArmSummary(BaseModel):
    """One arm's row in summary.json. Costs in US$; tokens are means per query."""

    name: str
    score: float
    ci: list[float]
    n: int
    cost_per_1k: float
    fixed_cost: float = 0.0
    p50_latency_ms: float
    p95_latency_ms: float
    tokens_in: float
    tokens_out: float
    errors: int
    calls: int
    cached_calls: int
    fresh_cost: float
    recall_at_k: float | None = None
    mrr: float | None = None
    retrieval_k: int | None = None
    # self_consistency and committee: scores from the pool of candidates (see boost_stats)
    maj_at_k: dict[str, float] | None = None
    oracle_at_k: dict[str, float] | None = None
    single: float | None = None
    selected: float | None = None
    coverage: float | None = None
    recovery: float | None = None
    # adaptive_rag (see boost_stats)
    retrieval_rate: float | None = None
    tokens_saved_pct: float | None = None
    tokens_saved_vs: str | None = None
    score_vs_baseline: float | None = None
    necessity: dict[str, Any] | None = None


class Recommendation(BaseModel):
    arm: str | None
    meets_requirements: bool
    reasons: list[str]


class Summary(BaseModel):
    """The contract of summary.json (see DESIGN.md); extra fields are additive."""

    run_id: str
    task: str
    model: str
    arms: list[ArmSummary]
    recommendation: Recommendation


def bootstrap_ci(scores: Sequence[float], *, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (2,000 resamples, seeded so reports are reproducible)."""
    values = np.asarray(scores, dtype=float)
    if values.size == 0:
        return (float("nan"), float("nan"))
    if values.size == 1 or np.all(values == values[0]):
        return (float(values[0]), float(values[0]))
    from scipy.stats import bootstrap

    res = bootstrap(
        (values,), np.mean, confidence_level=confidence, n_resamples=2000, method="percentile", random_state=seed
    )
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))


def summarize_arm(
    name: str, results: Iterable[Result], *, seed: int = 0, fixed_cost: float = 0.0, record: Mapping[str, Any] | None = None
) -> ArmSummary:
    """Score (errors count as 0), CI, cost per 1,000 queries, one-off cost, latency percentiles, mean tokens;
    and the arm's own statistics from its results and its `prepare` record (boost_stats)."""
    rows = list(results)
    n = len(rows)
    scores = [r.score for r in rows]
    latencies = [r.latency_ms for r in rows if r.error is None] or [0.0]
    lo, hi = bootstrap_ci(scores, seed=seed)
    mean = (lambda xs: float(np.mean(xs)) if n else 0.0)
    retrieval = [r.meta["retrieval"] for r in rows if "retrieval" in r.meta]
    return ArmSummary(
        name=name,
        score=mean(scores),
        ci=[lo, hi],
        n=n,
        cost_per_1k=mean([r.cost for r in rows]) * 1000,
        fixed_cost=fixed_cost,
        p50_latency_ms=float(np.percentile(latencies, 50)),
        p95_latency_ms=float(np.percentile(latencies, 95)),
        tokens_in=mean([r.tokens_in for r in rows]),
        tokens_out=mean([r.tokens_out for r in rows]),
        errors=sum(r.error is not None for r in rows),
        calls=sum(r.calls for r in rows),
        cached_calls=sum(r.cached_calls for r in rows),
        fresh_cost=sum(r.fresh_cost for r in rows),
        recall_at_k=float(np.mean([x["recall"] for x in retrieval])) if retrieval else None,
        mrr=float(np.mean([x["rr"] for x in retrieval])) if retrieval else None,
        retrieval_k=max(x["k"] for x in retrieval) if retrieval else None,
        **boost_fields(rows, record or {}),
    )


def _fmt(arm: ArmSummary) -> str:
    return f"{arm.name} scores {arm.score:.3f} (95% CI {arm.ci[0]:.3f}-{arm.ci[1]:.3f}, n={arm.n})"


def _shortfalls(arm: ArmSummary, req: Requirements) -> list[str]:
    out = []
    if req.min_score is not None and arm.score < req.min_score:
        out.append(f"score {arm.score:.3f} < min_score {req.min_score:g}")
    if req.max_p95_latency_ms is not None and arm.p95_latency_ms > req.max_p95_latency_ms:
        out.append(f"p95 latency {arm.p95_latency_ms:.0f} ms > {req.max_p95_latency_ms:g} ms")
    if req.max_cost_per_1k is not None and arm.cost_per_1k > req.max_cost_per_1k:
        out.append(f"cost ${arm.cost_per_1k:.4f}/1k > ${req.max_cost_per_1k:g}/1k")
    return out


def recommend(arms: Sequence[ArmSummary], req: Requirements) -> Recommendation:
    """The cheapest arm meeting every requirement; else the best-scoring arm and what it lacks."""
    scored = [a for a in arms if a.n > 0]
    if not scored:
        return Recommendation(arm=None, meets_requirements=False, reasons=["no arm has results yet"])
    meeting = [a for a in scored if not _shortfalls(a, req)]
    if meeting:
        if req.min_score is None:
            best = max(meeting, key=lambda a: (a.score, -a.cost_per_1k))
            reasons = [f"{_fmt(best)}, the best score; set requirements.min_score to get the cheapest arm good enough"]
        else:
            best = min(meeting, key=lambda a: (a.cost_per_1k, -a.score))
            reasons = [
                f"{_fmt(best)} >= min_score {req.min_score:g} at ${best.cost_per_1k:.4f} per 1k queries",
                f"cheapest of {len(meeting)} arm(s) meeting the requirements",
            ]
            if best.ci[0] < req.min_score:
                reasons.append(
                    f"its CI reaches down to {best.ci[0]:.3f}, below min_score: with n={best.n} the evidence is thin;"
                    " label more examples to be sure"
                )
        if best.errors:
            reasons.append(f"{best.errors} of {best.n} examples errored and were scored 0")
        return Recommendation(arm=best.name, meets_requirements=True, reasons=reasons)
    best = max(scored, key=lambda a: (a.score, -a.cost_per_1k))
    return Recommendation(
        arm=best.name,
        meets_requirements=False,
        reasons=[f"no arm meets the requirements; the best is {_fmt(best)}", *_shortfalls(best, req)],
    )
