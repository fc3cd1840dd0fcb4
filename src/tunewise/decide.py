"""From per-example results to numbers per arm, paired comparisons, the Pareto front, break-even volumes
and a recommendation whose reasons a builder can check.

The rules:
- An arm meets `min_score` when its mean score does; it meets it clearly when its 95% CI's lower bound
  does too. The cheapest arm that meets it clearly is preferred; when none does, the cheapest that
  meets it, and the reasons say the evidence is thin, how wide the CI is, and about how many examples
  would make it ±0.05. A cheaper arm passed over for a thin CI is named.
- Among the arms meeting every requirement the cheapest wins: by monthly cost (fixed cost spread over
  `amortize_months`, plus per-query cost at `monthly_queries`) when the volume is known, else by cost
  per 1,000 queries; equal costs go to the lower fixed cost, then fewer tokens per query, then lower
  p95 latency. A pricier arm that scores higher is named, with whether the difference is significant.
- With no `min_score`: the cheapest arm not significantly worse than the best-scoring one.
- When no arm meets them: the best-scoring arm, and the size of each gap.
- "Significant" is a paired test on the examples both arms answered, Holm-adjusted over all pairs, at 5%.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np
from pydantic import BaseModel

from tunewise.boost_stats import boost_fields
from tunewise.stats import examples_for, holm, mean_ci, paired_test
from tunewise.store import Result
from tunewise.task import Requirements

ALPHA = 0.05


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
    ci_method: str | None = None
    fine_tuned: bool = False
    pareto: bool = False
    monthly_cost: float | None = None
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


class Comparison(BaseModel):
    """Arm `a` against arm `b` on the examples both answered without error."""

    a: str
    b: str
    n: int
    a_score: float
    b_score: float
    diff: float
    a_better: int
    b_better: int
    method: str
    p_value: float
    p_holm: float
    significant: bool
    ci: list[float] | None = None

    def flipped(self) -> Comparison:
        """The same comparison seen from `b`."""
        return self.model_copy(
            update={
                "a": self.b, "b": self.a, "a_score": self.b_score, "b_score": self.a_score, "diff": -self.diff,
                "a_better": self.b_better, "b_better": self.a_better,
                "ci": [-self.ci[1], -self.ci[0]] if self.ci else None,
            }
        )


class BreakEven(BaseModel):
    """When a fine-tuned arm's one-off cost is repaid by cheaper queries than the prompting arm it can replace."""

    arm: str
    against: str | None
    fixed_cost: float
    saving_per_1k: float | None = None
    queries_to_repay: float | None = None
    monthly_volume: float | None = None
    months_to_repay: float | None = None
    note: str


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
    requirements: Requirements = Requirements()
    comparisons: list[Comparison] = []
    break_even: list[BreakEven] = []


def summarize_arm(
    name: str, results: Iterable[Result], *, seed: int = 0, fixed_cost: float = 0.0, fine_tuned: bool = False,
    record: Mapping[str, Any] | None = None,
) -> ArmSummary:
    """Score (errors count as 0), CI, cost per 1,000 queries, one-off cost, latency percentiles, mean tokens;
    and the arm's own statistics from its results and its `prepare` record (boost_stats)."""
    rows = list(results)
    n = len(rows)
    scores = [r.score for r in rows]
    latencies = [r.latency_ms for r in rows if r.error is None] or [0.0]
    ci = mean_ci(scores, seed=seed)
    mean = (lambda xs: float(np.mean(xs)) if n else 0.0)
    retrieval = [r.meta["retrieval"] for r in rows if "retrieval" in r.meta]
    return ArmSummary(
        name=name,
        score=mean(scores),
        ci=[ci.low, ci.high],
        ci_method=ci.method,
        n=n,
        cost_per_1k=mean([r.cost for r in rows]) * 1000,
        fixed_cost=fixed_cost,
        fine_tuned=fine_tuned,
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


def compare_arms(answered: Mapping[str, Mapping[str, float]], *, seed: int = 0) -> list[Comparison]:
    """Every pair of arms on the examples both answered (arm -> example id -> score), Holm-adjusted."""
    tests = []
    for a, b in combinations(answered, 2):
        common = sorted(answered[a].keys() & answered[b].keys())
        if common:
            x, y = [answered[a][e] for e in common], [answered[b][e] for e in common]
            tests.append((a, b, float(np.mean(x)), float(np.mean(y)), paired_test(x, y, seed=seed)))
    adjusted = holm([t.p_value for *_, t in tests])
    return [
        Comparison(
            a=a, b=b, n=t.n, a_score=sa, b_score=sb, diff=t.diff, a_better=t.a_better, b_better=t.b_better,
            method=t.method, p_value=t.p_value, p_holm=p, significant=p < ALPHA, ci=list(t.ci) if t.ci else None,
        )
        for (a, b, sa, sb, t), p in zip(tests, adjusted)
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


def _fmt(arm: ArmSummary) -> str:
    return f"{arm.name} scores {arm.score:.3f} (95% CI {arm.ci[0]:.3f}-{arm.ci[1]:.3f}, n={arm.n})"


def _price(arm: ArmSummary, req: Requirements) -> str:
    monthly = monthly_cost(arm, req)
    per_1k = f"${arm.cost_per_1k:.4f} per 1k queries"
    if monthly is None:
        return per_1k + (f" plus ${arm.fixed_cost:.2f} one-off" if arm.fixed_cost else "")
    return f"${monthly:,.2f}/month at {req.monthly_queries:,} queries ({per_1k}" + (
        f", ${arm.fixed_cost:.2f} one-off over {req.amortize_months:g} months)" if arm.fixed_cost else ")")


def _cheapness(arm: ArmSummary, req: Requirements) -> tuple[float, ...]:
    cost = monthly_cost(arm, req)
    return (arm.cost_per_1k if cost is None else cost, arm.fixed_cost, arm.tokens_in + arm.tokens_out,
            arm.p95_latency_ms, -arm.score)


def _shortfalls(arm: ArmSummary, req: Requirements, *, score: bool = True) -> list[str]:
    out = []
    if score and req.min_score is not None and arm.score < req.min_score:
        out.append(f"score {arm.score:.3f} is {req.min_score - arm.score:.3f} below min_score {req.min_score:g}")
    if req.max_p95_latency_ms is not None and arm.p95_latency_ms > req.max_p95_latency_ms:
        out.append(f"p95 latency {arm.p95_latency_ms:.0f} ms is {arm.p95_latency_ms - req.max_p95_latency_ms:.0f} ms"
                   f" over max_p95_latency_ms {req.max_p95_latency_ms:g}")
    if req.max_cost_per_1k is not None and arm.cost_per_1k > req.max_cost_per_1k:
        out.append(f"cost ${arm.cost_per_1k:.4f}/1k is ${arm.cost_per_1k - req.max_cost_per_1k:.4f} over"
                   f" max_cost_per_1k ${req.max_cost_per_1k:g}")
    return out


def _more_examples(arm: ArmSummary) -> str:
    half = (arm.ci[1] - arm.ci[0]) / 2
    return f"label more test examples (about {examples_for(arm.n, half):,} for ±0.05)"


def _errors_note(arm: ArmSummary, req: Requirements) -> str | None:
    """What errors did to an arm: scored 0, and whether they alone keep it below min_score."""
    if not arm.errors:
        return None
    note = f"{arm.name}: {arm.errors} of {arm.n} examples errored and were scored 0"
    answered = arm.n - arm.errors
    if req.min_score is not None and arm.score < req.min_score and answered:
        on_answered = arm.score * arm.n / answered
        if on_answered >= req.min_score:
            note += (f"; on the {answered} it answered it scores {on_answered:.3f}, above min_score:"
                     " rerun them with `--resume RUN_ID --retry-errors`")
    return note


def _no_prices(arms: Sequence[ArmSummary]) -> bool:
    return all(a.cost_per_1k == 0 and a.fixed_cost == 0 for a in arms)


def _cheapest_meeting(
    meeting: list[ArmSummary], arms: Sequence[ArmSummary], req: Requirements, comparisons: Sequence[Comparison]
) -> tuple[ArmSummary, list[str]]:
    """The cheapest arm meeting min_score, preferring those whose CI clears it, and what a builder should
    know before taking it."""
    m = req.min_score
    assert m is not None
    clear = [a for a in meeting if a.ci[0] >= m]
    pool = clear or meeting
    best = min(pool, key=lambda a: _cheapness(a, req))
    how = "with its whole CI above min_score" if clear else "on its mean score"
    reasons = [f"{_fmt(best)} >= min_score {m:g} at {_price(best, req)}",
               f"cheapest of {len(pool)} arm(s) meeting the requirements {how}"]
    if len(pool) > 1 and _no_prices(arms):
        reasons[-1] += "; no prices are set, so every arm costs $0 and fewer tokens per query decide"
    if not clear:
        reasons.append(
            f"with n={best.n} its score is known to ±{(best.ci[1] - best.ci[0]) / 2:.2f} and the CI reaches down to"
            f" {best.ci[0]:.3f}, below min_score: the evidence is thin; {_more_examples(best)}")
    for a in sorted((a for a in meeting if _cheapness(a, req) < _cheapness(best, req)), key=lambda a: _cheapness(a, req)):
        reasons.append(
            f"{a.name} is cheaper ({_price(a, req)}) and scores {a.score:.3f}, but its CI reaches down to"
            f" {a.ci[0]:.3f} (n={a.n}): too thin to rely on; {_more_examples(a)} to tell whether it is enough")
    higher = [a for a in pool if a.score > best.score]
    if higher:
        top = max(higher, key=lambda a: a.score)
        c = versus(comparisons, top.name, best.name)
        if c is None:
            reasons.append(f"{top.name} scores higher ({top.score:.3f}) at {_price(top, req)}; no paired test was possible")
        elif c.significant:
            reasons.append(f"{top.name} is significantly better ({c.diff:+.3f} on {c.n} shared examples, {c.method}"
                           f" p={c.p_holm:.3g} Holm-adjusted) at {_price(top, req)}: take it if the margin is worth it")
        else:
            reasons.append(f"{top.name} scores {c.diff:+.3f} higher but the difference is not significant ({c.method}"
                           f" p={c.p_holm:.3g} Holm-adjusted, n={c.n}): the cheaper arm is preferred")
    return best, reasons


def _best_reasons(best: ArmSummary, top: ArmSummary, req: Requirements, comparisons: Sequence[Comparison]) -> list[str]:
    """Why the cheapest arm not significantly worse than the best score, when there is no min_score."""
    tail = "set requirements.min_score to get the cheapest arm good enough"
    if best is top:
        return [f"{_fmt(best)}, the best score, at {_price(best, req)}; {tail}"]
    c = versus(comparisons, best.name, top.name)
    detail = f" ({c.diff:+.3f}, {c.method} p={c.p_holm:.3g} Holm-adjusted, n={c.n})" if c else ""
    return [f"{_fmt(best)} at {_price(best, req)}: the cheapest arm not significantly worse than the best-scoring"
            f" {top.name} ({top.score:.3f}){detail}; {tail}"]


def recommend(
    arms: Sequence[ArmSummary], req: Requirements, comparisons: Sequence[Comparison] = (),
    break_evens: Sequence[BreakEven] = (),
) -> Recommendation:
    """The cheapest arm meeting every requirement; else the best-scoring arm and what it lacks."""
    scored = [a for a in arms if a.n > 0]
    if not scored:
        return Recommendation(arm=None, meets_requirements=False, reasons=["no arm has results yet"])
    meeting = [a for a in scored if not _shortfalls(a, req)]
    errors = [note for a in scored if (note := _errors_note(a, req))]
    economics = [b.note for b in break_evens]
    if meeting and req.min_score is not None:
        best, reasons = _cheapest_meeting(meeting, scored, req, comparisons)
        return Recommendation(arm=best.name, meets_requirements=True, reasons=[*reasons, *economics, *errors])
    if meeting:
        top = max(meeting, key=lambda a: (a.score, tuple(-x for x in _cheapness(a, req))))
        near = [a for a in meeting if a is top or not significantly_worse(comparisons, a.name, top.name)]
        best = min(near, key=lambda a: _cheapness(a, req))
        reasons = _best_reasons(best, top, req, comparisons)
        return Recommendation(arm=best.name, meets_requirements=True, reasons=[*reasons, *economics, *errors])
    best = max(scored, key=lambda a: (a.score, tuple(-x for x in _cheapness(a, req))))
    reasons = [f"no arm meets the requirements; the best is {_fmt(best)} at {_price(best, req)}", *_shortfalls(best, req)]
    if req.min_score is not None and best.score < req.min_score <= best.ci[1]:
        reasons.append(f"its CI reaches {best.ci[1]:.3f}, so it may meet min_score: {_more_examples(best)} to tell")
    for a in scored:
        if a is not best and req.min_score is not None and a.score >= req.min_score:
            reasons.append(f"{a.name} meets min_score ({a.score:.3f}) but {'; '.join(_shortfalls(a, req, score=False))}")
    return Recommendation(arm=best.name, meets_requirements=False, reasons=[*reasons, *economics, *errors])


def build_summary(
    *, run_id: str, task: str, model: str, arms: Sequence[ArmSummary], answered: Mapping[str, Mapping[str, float]],
    requirements: Requirements, seed: int = 0,
) -> Summary:
    """Everything summary.json says: per-arm numbers with the Pareto front and monthly costs, the paired
    comparisons, break-even volumes and the recommendation."""
    comparisons = compare_arms(answered, seed=seed)
    front = pareto_front(arms)
    rows = [a.model_copy(update={"pareto": a.name in front, "monthly_cost": monthly_cost(a, requirements)})
            for a in arms]
    evens = break_even(rows, comparisons, requirements)
    return Summary(
        run_id=run_id, task=task, model=model, arms=rows, requirements=requirements, comparisons=comparisons,
        break_even=evens, recommendation=recommend(rows, requirements, comparisons, evens),
    )


def answered_scores(results: Iterable[Result], arms: Sequence[str]) -> dict[str, dict[str, float]]:
    """arm -> example id -> score, in the order of `arms`, for the examples answered without error (what
    paired tests compare)."""
    out: dict[str, dict[str, float]] = {name: {} for name in arms}
    for r in results:
        if r.error is None and r.arm in out:
            out[r.arm][r.example_id] = r.score
    return out
