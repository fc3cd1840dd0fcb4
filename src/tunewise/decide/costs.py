"""What an arm costs a month at the builder's volume, and which arms are on the Pareto front."""

from __future__ import annotations

from collections.abc import Sequence

from tunewise.decide.schema import ArmSummary
from tunewise.spec import Requirements


def pareto_front(arms: Sequence[ArmSummary]) -> set[str]:
    """Arms no other arm beats on one of (score, cost per 1k, p95 latency) without losing on another.
    With no prices set every arm costs $0, so tokens per query stand in for cost."""
    scored = [a for a in arms if a.n > 0]
    priced = any(a.cost_per_1k for a in scored)

    def key(a: ArmSummary) -> tuple[float, float, float]:
        return (-a.score, a.cost_per_1k if priced else a.tokens_in + a.tokens_out, a.p95_latency_ms)

    def dominates(o: ArmSummary, a: ArmSummary) -> bool:
        return all(x <= y for x, y in zip(key(o), key(a))) and key(o) != key(a)

    return {a.name for a in scored if not any(dominates(o, a) for o in scored if o is not a)}


def monthly_cost(arm: ArmSummary, req: Requirements) -> float | None:
    """US$ per month at `monthly_queries`, the fixed cost spread over `amortize_months`; None without a volume."""
    if req.monthly_queries is None:
        return None
    return arm.fixed_cost / req.amortize_months + arm.cost_per_1k * req.monthly_queries / 1000
