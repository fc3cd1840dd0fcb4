"""When a fine-tuned arm's one-off cost is repaid by cheaper queries than the prompting arm it can replace.

A fine-tuned arm replaces a prompting arm only when it is shown to score no worse than it by more than
`requirements.equivalence_margin`: a paired non-inferiority test on the examples both answered, one-sided at 5%.
"Not significantly worse" is not enough: at n=20, 0.600 against 1.000 is not significant either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tunewise.decide.costs import money
from tunewise.decide.schema import ArmSummary, BreakEven
from tunewise.decide.stats import NonInferiority, non_inferiority
from tunewise.spec import Requirements


def equivalence(answered: Mapping[str, Mapping[str, float]], a: str, b: str, margin: float) -> NonInferiority:
    """Is `a` non-inferior to `b` within `margin`, on the examples both answered without error?"""
    shared = sorted(answered.get(a, {}).keys() & answered.get(b, {}).keys())
    return non_inferiority([answered[a][e] for e in shared], [answered[b][e] for e in shared], margin)


def _said(test: NonInferiority) -> str:
    return f"{test.diff:+.3f} on {test.n} shared examples, one-sided {test.method} p={test.p_value:.3g}"


def break_even(
    arms: Sequence[ArmSummary], answered: Mapping[str, Mapping[str, float]], req: Requirements
) -> list[BreakEven]:
    """For each fine-tuned arm, against the best prompting arm it is shown equivalent to (non-inferior within the
    margin): the volume at which its one-off cost is repaid by cheaper queries, and what that means at
    `monthly_queries`."""
    prompting = [a for a in arms if not a.fine_tuned and a.n]
    if not prompting:
        return []
    margin = req.equivalence_margin
    out = []
    for ft in (a for a in arms if a.fine_tuned and a.n):
        tests = {p.name: equivalence(answered, ft.name, p.name, margin) for p in prompting}
        shown = [p for p in prompting if tests[p.name].shown]
        if not shown:
            best = max(prompting, key=lambda p: p.score)
            test = tests[best.name]
            out.append(BreakEven(arm=ft.name, against=None, fixed_cost=ft.fixed_cost, margin=margin,
                                 p_value=test.p_value, note=(
                f"{ft.name} ({ft.score:.3f}) is not shown to score within {margin:g} of any prompting arm: against the"
                f" best, {best.name} ({best.score:.3f}), it differs by {_said(test)}, so it replaces none of them and"
                " no break-even is computed")))
            continue
        p = max(shown, key=lambda a: (a.score, -a.cost_per_1k))
        test = tests[p.name]
        head = (f"{ft.name} ({ft.score:.3f}) is shown to score no worse than {p.name} ({p.score:.3f}) by more than"
                f" {margin:g} ({_said(test)})")
        common = {"arm": ft.name, "against": p.name, "margin": margin, "p_value": test.p_value}
        if req.min_score is not None and p.score < req.min_score:
            out.append(BreakEven(**common, fixed_cost=ft.fixed_cost, note=(
                f"{head}, but neither reaches min_score {req.min_score:g}: there is nothing worth replacing")))
            continue
        if not (ft.cost_per_1k or p.cost_per_1k or ft.fixed_cost):
            out.append(BreakEven(**common, fixed_cost=0.0, note=(
                f"{head}; no prices are set (model.price_in_per_1m / price_out_per_1m, and hardware_per_hour or"
                f" model.price_train_per_1m for the training), so there is no break-even to compute; per query it"
                f" reads {ft.tokens_in:.0f} tokens against {p.tokens_in:.0f}")))
            continue
        saving = p.cost_per_1k - ft.cost_per_1k
        if saving <= 0:
            out.append(BreakEven(**common, fixed_cost=ft.fixed_cost, saving_per_1k=saving, note=(
                f"{head}; at {money(ft.cost_per_1k)} per 1k queries it is no cheaper than {money(p.cost_per_1k)},"
                f" so its one-off {money(ft.fixed_cost)} is never repaid")))
            continue
        queries = ft.fixed_cost / (saving / 1000)
        volume = queries / req.amortize_months
        if ft.fixed_cost == 0:
            note = f"{head}; no one-off cost is recorded (fixed_cost $0), so it is cheaper from the first query"
        else:
            note = (f"{head}; it saves {money(saving)} per 1k queries, so its one-off {money(ft.fixed_cost)} is repaid"
                    f" after {queries:,.0f} queries, i.e. from {volume:,.0f} queries a month over"
                    f" {req.amortize_months:g} months")
        months = None
        if req.monthly_queries:
            months = queries / req.monthly_queries
            verdict = "pays off" if months <= req.amortize_months else f"does not pay off within {req.amortize_months:g} months"
            note += f"; at {req.monthly_queries:,} queries a month it is repaid in {months:.1f} months, so it {verdict}"
        out.append(BreakEven(**common, fixed_cost=ft.fixed_cost, saving_per_1k=saving, queries_to_repay=queries,
                             monthly_volume=volume, months_to_repay=months, note=note))
    return out
