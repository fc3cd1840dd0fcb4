"""When a fine-tuned arm's one-off cost is repaid by cheaper queries than the prompting arm it can replace."""

from __future__ import annotations

from collections.abc import Sequence

from tunewise.decide.comparisons import significantly_worse
from tunewise.decide.schema import ArmSummary, BreakEven, Comparison
from tunewise.spec import Requirements


def break_even(arms: Sequence[ArmSummary], comparisons: Sequence[Comparison], req: Requirements) -> list[BreakEven]:
    """For each fine-tuned arm, against the best prompting arm it matches or beats (is not significantly
    worse than): the volume at which its one-off cost is repaid by cheaper queries, and what that means at
    `monthly_queries`."""
    prompting = [a for a in arms if not a.fine_tuned and a.n]
    if not prompting:
        return []
    out = []
    for ft in (a for a in arms if a.fine_tuned and a.n):
        matched = [p for p in prompting if ft.score >= p.score or not significantly_worse(comparisons, ft.name, p.name)]
        if not matched:
            best = max(prompting, key=lambda p: p.score)
            out.append(BreakEven(arm=ft.name, against=None, fixed_cost=ft.fixed_cost, note=(
                f"{ft.name} scores significantly below every prompting arm (best: {best.name} {best.score:.3f}"
                f" against {ft.score:.3f}): it replaces none of them at any volume")))
            continue
        p = max(matched, key=lambda a: (a.score, -a.cost_per_1k))
        saving = p.cost_per_1k - ft.cost_per_1k
        head = f"{ft.name} ({ft.score:.3f}) against {p.name} ({p.score:.3f})"
        if not (ft.cost_per_1k or p.cost_per_1k or ft.fixed_cost):
            out.append(BreakEven(arm=ft.name, against=p.name, fixed_cost=0.0, note=(
                f"{head}: no prices are set (model.price_in_per_1m / price_out_per_1m, and hardware_per_hour or"
                f" model.price_train_per_1m for the training), so there is no break-even to compute; per query it"
                f" reads {ft.tokens_in:.0f} tokens against {p.tokens_in:.0f}")))
            continue
        if saving <= 0:
            out.append(BreakEven(arm=ft.name, against=p.name, fixed_cost=ft.fixed_cost, saving_per_1k=saving, note=(
                f"{head}: ${ft.cost_per_1k:.4f} per 1k queries is no cheaper than ${p.cost_per_1k:.4f},"
                f" so its one-off ${ft.fixed_cost:.2f} is never repaid")))
            continue
        queries = ft.fixed_cost / (saving / 1000)
        volume = queries / req.amortize_months
        if ft.fixed_cost == 0:
            note = f"{head}: no one-off cost recorded (fixed_cost $0), so it is cheaper from the first query"
        else:
            note = (f"{head}: saves ${saving:.4f} per 1k queries, so its one-off ${ft.fixed_cost:.2f} is repaid after"
                    f" {queries:,.0f} queries, i.e. from {volume:,.0f} queries/month over {req.amortize_months:g} months")
        months = None
        if req.monthly_queries:
            months = queries / req.monthly_queries
            verdict = "pays off" if months <= req.amortize_months else f"does not pay off within {req.amortize_months:g} months"
            note += f"; at {req.monthly_queries:,} queries/month it is repaid in {months:.1f} months: it {verdict}"
        out.append(BreakEven(arm=ft.name, against=p.name, fixed_cost=ft.fixed_cost, saving_per_1k=saving,
                             queries_to_repay=queries, monthly_volume=volume, months_to_repay=months, note=note))
    return out
