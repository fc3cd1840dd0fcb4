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
- `max_stale_rate` is a hard cap on an arm's stale-premise rate, its point estimate (the CI is named). A
  cheaper arm scoring enough that a hard cap rules out is named, with the cap.
- When no arm meets them: the best-scoring arm within the hard caps (latency, cost, stale-premise rate), the
  best overall when that is another one, and the size of each gap.
- "Significant" is a paired test on the examples both arms answered, Holm-adjusted over all pairs, at 5%.
"""

from __future__ import annotations

from collections.abc import Sequence

from tunewise.decide.comparisons import significantly_worse, versus
from tunewise.decide.costs import cost_key, money, monthly_cost
from tunewise.decide.schema import ArmSummary, BreakEven, Comparison, Recommendation
from tunewise.decide.stats import examples_for
from tunewise.spec import Requirements


def _fmt(arm: ArmSummary) -> str:
    return f"{arm.name}, which scores {arm.score:.3f} (95% CI {arm.ci[0]:.3f}-{arm.ci[1]:.3f}, n={arm.n})"


def _price(arm: ArmSummary, req: Requirements) -> str:
    monthly = monthly_cost(arm, req)
    per_1k = f"{money(arm.cost_per_1k)} per 1k queries"
    if monthly is None:
        return per_1k + (f" plus {money(arm.fixed_cost)} one-off" if arm.fixed_cost else "")
    return f"{money(monthly)} a month at {req.monthly_queries:,} queries ({per_1k}" + (
        f", {money(arm.fixed_cost)} one-off over {req.amortize_months:g} months)" if arm.fixed_cost else ")")


def cheapness(arm: ArmSummary, req: Requirements) -> tuple[float, ...]:
    """What "cheaper" orders by: cost, then one-off cost, tokens per query, p95 latency, and the higher score."""
    return (cost_key(arm, req), arm.fixed_cost, arm.tokens_in + arm.tokens_out, arm.p95_latency_ms, -arm.score)


def _best(arms: Sequence[ArmSummary], req: Requirements) -> ArmSummary:
    """The best-scoring arm; of equal scores, the cheapest."""
    return max(arms, key=lambda a: (a.score, tuple(-x for x in cheapness(a, req))))


def shortfalls(arm: ArmSummary, req: Requirements, *, score: bool = True) -> list[str]:
    """Each requirement the arm's numbers miss, in words (`score`: min_score too, else the hard caps alone)."""
    out = []
    if score and req.min_score is not None and arm.score < req.min_score:
        out.append(f"its score {arm.score:.3f} is {req.min_score - arm.score:.3f} below min_score {req.min_score:g}")
    if req.max_p95_latency_ms is not None and arm.p95_latency_ms > req.max_p95_latency_ms:
        out.append(f"its p95 latency of {arm.p95_latency_ms:.0f} ms is {arm.p95_latency_ms - req.max_p95_latency_ms:.0f}"
                   f" ms over max_p95_latency_ms {req.max_p95_latency_ms:g}")
    if req.max_cost_per_1k is not None and arm.cost_per_1k > req.max_cost_per_1k:
        over = arm.cost_per_1k / req.max_cost_per_1k if req.max_cost_per_1k else float("inf")
        out.append(f"its cost of {money(arm.cost_per_1k)} per 1k queries is {over:.1f}x max_cost_per_1k"
                   f" {money(req.max_cost_per_1k)}")
    if req.max_stale_rate is not None and arm.stale_rate is not None and arm.stale_rate > req.max_stale_rate:
        ci = f"95% CI {arm.stale_ci[0]:.3f}-{arm.stale_ci[1]:.3f}, " if arm.stale_ci else ""
        out.append(f"its stale-premise rate {arm.stale_rate:.3f} ({ci}n={arm.stale_n}) is over max_stale_rate"
                   f" {req.max_stale_rate:g}")
    return out


def _caps(req: Requirements) -> str:
    return "the latency, cost and stale-premise caps" if req.max_stale_rate is not None else "the latency and cost caps"


def _capped_out(best: ArmSummary, arms: Sequence[ArmSummary], req: Requirements) -> list[str]:
    """The arms cheaper than `best` that score enough but a hard cap rules out, and which cap."""
    return [f"{a.name} is cheaper ({_price(a, req)}) and scores {a.score:.3f}, but {'; '.join(over)}"
            for a in sorted(arms, key=lambda a: cheapness(a, req))
            if cheapness(a, req) < cheapness(best, req) and (req.min_score is None or a.score >= req.min_score)
            and (over := shortfalls(a, req, score=False))]


def _unchecked(arms: Sequence[ArmSummary], req: Requirements) -> list[str]:
    """Requirements no arm's results could test."""
    if req.max_stale_rate is not None and all(a.stale_rate is None for a in arms):
        return [f"max_stale_rate {req.max_stale_rate:g} was not checked: no test example answered has stale_answers"]
    return []


def _more_examples(arm: ArmSummary) -> str:
    half = (arm.ci[1] - arm.ci[0]) / 2
    return f"label more test examples (about {examples_for(arm.n, half):,} for ±0.05)"


def _errors_note(arm: ArmSummary, req: Requirements) -> str | None:
    """What errors did to an arm: scored 0, and whether they alone keep it below min_score."""
    if not arm.errors:
        return None
    note = f"{arm.errors} of {arm.n} examples of {arm.name} errored and were scored 0"
    answered = arm.n - arm.errors
    if req.min_score is not None and arm.score < req.min_score and answered:
        on_answered = arm.score * arm.n / answered
        if on_answered >= req.min_score:
            note += (f"; on the {answered} it answered it scores {on_answered:.3f}, above min_score, so rerun them"
                     " with `--resume RUN_ID --retry-errors`")
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
    best = min(pool, key=lambda a: cheapness(a, req))
    how = "with its whole CI above min_score" if clear else "on its mean score"
    reasons = [f"{_fmt(best)}, meets min_score {m:g} at {_price(best, req)}",
               f"it is the cheapest of {len(pool)} arm(s) meeting the requirements {how}"]
    if len(pool) > 1 and _no_prices(arms):
        reasons[-1] += "; no prices are set, so every arm costs $0 and fewer tokens per query decide"
    if not clear:
        reasons.append(
            f"with n={best.n} its score is known to ±{(best.ci[1] - best.ci[0]) / 2:.2f} and the CI reaches down to"
            f" {best.ci[0]:.3f}, below min_score, so the evidence is thin: {_more_examples(best)}")
    for a in sorted((a for a in meeting if cheapness(a, req) < cheapness(best, req)), key=lambda a: cheapness(a, req)):
        reasons.append(
            f"{a.name} is cheaper ({_price(a, req)}) and scores {a.score:.3f}, but its CI reaches down to"
            f" {a.ci[0]:.3f} (n={a.n}), too thin to rely on: {_more_examples(a)} to tell whether it is enough")
    higher = [a for a in pool if a.score > best.score]
    if higher:
        top = min((a for a in higher if a.score == max(h.score for h in higher)), key=lambda a: cheapness(a, req))
        c = versus(comparisons, top.name, best.name)
        if c is None:
            reasons.append(f"{top.name} scores higher ({top.score:.3f}) at {_price(top, req)}; no paired test was possible")
        elif c.significant:
            reasons.append(f"{top.name} is significantly better ({c.diff:+.3f} on {c.n} shared examples, {c.method}"
                           f" p={c.p_holm:.3g} Holm-adjusted) at {_price(top, req)}: take it if the margin is worth it")
        else:
            reasons.append(f"{top.name} scores {c.diff:+.3f} higher, but the difference is not significant ({c.method}"
                           f" p={c.p_holm:.3g} Holm-adjusted, n={c.n}), so the cheaper arm is preferred")
    return best, reasons


def _best_reasons(best: ArmSummary, top: ArmSummary, req: Requirements, comparisons: Sequence[Comparison]) -> list[str]:
    """Why the cheapest arm not significantly worse than the best score, when there is no min_score."""
    tail = "set requirements.min_score to get the cheapest arm good enough"
    if best is top:
        return [f"{_fmt(best)}, has the best score, at {_price(best, req)}; {tail}"]
    c = versus(comparisons, best.name, top.name)
    detail = f" ({c.diff:+.3f}, {c.method} p={c.p_holm:.3g} Holm-adjusted, n={c.n})" if c else ""
    return [f"{_fmt(best)}, costs {_price(best, req)} and is the cheapest arm not significantly worse than the"
            f" best-scoring {top.name} ({top.score:.3f}){detail}; {tail}"]


def _none_meets(scored: list[ArmSummary], req: Requirements) -> tuple[ArmSummary, list[str]]:
    """When no arm meets the requirements: the best within the hard caps (it can be deployed), the best overall
    when that is another arm, and what each lacks."""
    within = [a for a in scored if not shortfalls(a, req, score=False)]
    overall = _best(scored, req)
    if within:
        best = _best(within, req)
        capped = any(x is not None for x in (req.max_p95_latency_ms, req.max_cost_per_1k, req.max_stale_rate))
        where = f"within {_caps(req)} the best is" if capped else "the best is"
        reasons = [f"no arm meets the requirements; {where} {_fmt(best)}, at {_price(best, req)}",
                   *shortfalls(best, req)]
    else:
        best = overall
        reasons = [f"no arm meets the requirements, and none is within {_caps(req)}; the best overall is"
                   f" {_fmt(best)}, at {_price(best, req)}", *shortfalls(best, req)]
    if req.min_score is not None and best.score < req.min_score <= best.ci[1]:
        reasons.append(f"its CI reaches {best.ci[1]:.3f}, so it may meet min_score: {_more_examples(best)} to tell")
    if overall is not best:
        reasons.append(f"the best overall is {_fmt(overall)}, at {_price(overall, req)}, but "
                       + "; ".join(shortfalls(overall, req, score=False)))
    for a in scored:
        if a is not best and a is not overall and req.min_score is not None and a.score >= req.min_score:
            reasons.append(f"{a.name} meets min_score ({a.score:.3f}), but {'; '.join(shortfalls(a, req, score=False))}")
    return best, reasons


def recommend(
    arms: Sequence[ArmSummary], req: Requirements, comparisons: Sequence[Comparison] = (),
    break_evens: Sequence[BreakEven] = (),
) -> Recommendation:
    """The cheapest arm meeting every requirement; else the best arm within the hard caps, and what it lacks."""
    scored = [a for a in arms if a.n > 0]
    if not scored:
        return Recommendation(arm=None, meets_requirements=False, reasons=["no arm has results yet"])
    meeting = [a for a in scored if not shortfalls(a, req)]
    caveats = [*(note for a in scored if (note := _errors_note(a, req))), *_unchecked(scored, req)]
    economics = [b.note for b in break_evens]
    if meeting and req.min_score is not None:
        best, reasons = _cheapest_meeting(meeting, scored, req, comparisons)
        reasons += _capped_out(best, scored, req)
        return Recommendation(arm=best.name, meets_requirements=True, reasons=[*reasons, *economics, *caveats])
    if meeting:
        top = _best(meeting, req)
        near = [a for a in meeting if a is top or not significantly_worse(comparisons, a.name, top.name)]
        best = min(near, key=lambda a: cheapness(a, req))
        reasons = _best_reasons(best, top, req, comparisons) + _capped_out(best, scored, req)
        return Recommendation(arm=best.name, meets_requirements=True, reasons=[*reasons, *economics, *caveats])
    best, reasons = _none_meets(scored, req)
    return Recommendation(arm=best.name, meets_requirements=False, reasons=[*reasons, *economics, *caveats])
