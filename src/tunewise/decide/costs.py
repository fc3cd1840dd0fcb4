"""What an arm costs a month at the builder's volume, and which arms are on the Pareto front."""

from __future__ import annotations

import math
from collections.abc import Sequence

from tunewise.decide.schema import ArmSummary
from tunewise.spec import Requirements


def money(amount: float) -> str:
    """US$ readable at every scale: three significant digits below $100 (so $0.0028 and $0.0040 stay apart), whole
    dollars with thousands separators above."""
    if amount == 0:
        return "$0"
    if amount < 0:
        return "-" + money(-amount)
    if amount >= 100:
        return f"${amount:,.0f}"
    digits = max(2, 2 - math.floor(math.log10(amount)))
    whole, _, cents = f"{amount:.{digits}f}".partition(".")
    return f"${whole}.{cents[:2] + cents[2:].rstrip('0')}"


def cost_key(arm: ArmSummary, req: Requirements) -> float:
    """What "cheaper" compares: monthly cost (one-off cost included) when the volume is known, else cost per 1k."""
    monthly = monthly_cost(arm, req)
    return arm.cost_per_1k if monthly is None else monthly


def pareto_front(arms: Sequence[ArmSummary], req: Requirements | None = None) -> set[str]:
    """Arms no other arm beats on one of (score, cost, p95 latency) without losing on another. Cost is monthly cost
    when `monthly_queries` is set (one-off costs included, as the recommendation ranks), else cost per 1k queries;
    with no prices set every arm costs $0, so tokens per query stand in for cost."""
    req = req or Requirements()
    scored = [a for a in arms if a.n > 0]
    priced = any(a.cost_per_1k or a.fixed_cost for a in scored)

    def key(a: ArmSummary) -> tuple[float, float, float]:
        return (-a.score, cost_key(a, req) if priced else a.tokens_in + a.tokens_out, a.p95_latency_ms)

    def dominates(o: ArmSummary, a: ArmSummary) -> bool:
        return all(x <= y for x, y in zip(key(o), key(a))) and key(o) != key(a)

    return {a.name for a in scored if not any(dominates(o, a) for o in scored if o is not a)}


def monthly_cost(arm: ArmSummary, req: Requirements) -> float | None:
    """US$ per month at `monthly_queries`, the fixed cost spread over `amortize_months`; None without a volume."""
    if req.monthly_queries is None:
        return None
    return arm.fixed_cost / req.amortize_months + arm.cost_per_1k * req.monthly_queries / 1000
