"""From per-example results to summary.json: numbers per arm, each arm's own statistics, and the decision.

`summary_of(store)` needs the run store alone (manifest + results), so it works on unfinished runs, and
`tunewise report` can write a run's reports again.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from tunewise.arms.base import Arm, ArmExtras, ArmRecord, Result
from tunewise.arms.registry import arm_class
from tunewise.decide.break_even import break_even
from tunewise.decide.comparisons import answered_scores, compare_arms, stale_indicators
from tunewise.decide.costs import money, monthly_cost, pareto_front
from tunewise.decide.racing import METHOD, ArmLook, race, race_level
from tunewise.decide.recommend import recommend
from tunewise.decide.schema import ArmRacing, ArmSummary, Budget, RacingRound, RacingSummary, Summary
from tunewise.decide.stats import mean_ci
from tunewise.evaluation.manifest import BUDGET_REACHED, RacingPlan, prepared
from tunewise.evaluation.store import RunStore
from tunewise.calls.caller import Prices
from tunewise.spec import ArmParams, ModelSpec, Requirements


def summarize_arm(
    name: str, results: Iterable[Result], *, seed: int = 0, fixed_cost: float = 0.0, fine_tuned: bool = False,
    extras: ArmExtras | None = None, prices: Prices | None = None,
) -> ArmSummary:
    """Score (errors count as 0), CI, cost per 1,000 queries (each answer's tokens at `prices`, else the cost
    recorded with it), one-off cost, latency percentiles, mean tokens, retrieval quality, trust (stale-premise
    rate, abstentions, score on what was answered, groundedness) and the arm's own statistics (`extras`)."""
    rows = list(results)
    costs = [r.cost if prices is None else prices.of(r.tokens_in, r.tokens_out) for r in rows]
    n = len(rows)
    scores = [r.score for r in rows]
    latencies = [r.latency_ms for r in rows if r.error is None] or [0.0]
    ci = mean_ci(scores, seed=seed)
    mean = (lambda xs: float(np.mean(xs)) if n else 0.0)
    retrieval = [r.retrieval for r in rows if r.retrieval is not None]
    stale = [float(r.stale) for r in rows if r.stale is not None]
    stale_ci = mean_ci(stale) if stale else None
    answered = [r.score for r in rows if not r.abstained]
    grounded = [r.grounded for r in rows if r.grounded is not None]
    return ArmSummary(
        name=name,
        score=mean(scores),
        ci=[ci.low, ci.high] if n else [None, None],
        ci_method=ci.method,
        n=n,
        cost_per_1k=mean(costs) * 1000,
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
        recall_at_k=float(np.mean([x.recall for x in retrieval])) if retrieval else None,
        groundedness=float(np.mean(grounded)) if grounded else None,
        mrr=float(np.mean([x.rr for x in retrieval])) if retrieval else None,
        retrieval_k=max(x.k for x in retrieval) if retrieval else None,
        stale_rate=float(np.mean(stale)) if stale else None,
        stale_ci=[stale_ci.low, stale_ci.high] if stale_ci else None,
        stale_n=len(stale) if stale else None,
        abstention_rate=mean([float(r.abstained) for r in rows]) if n else None,
        answered_score=float(np.mean(answered)) if answered else None,
        extras=extras,
    )


def build_summary(
    *, run_id: str, task: str, model: str, arms: Sequence[ArmSummary], answered: Mapping[str, Mapping[str, float]],
    requirements: Requirements, seed: int = 0, prices: dict[str, float] | None = None,
    stale: Mapping[str, Mapping[str, bool]] | None = None, dropped: Collection[str] = (),
) -> Summary:
    """Everything summary.json says: per-arm numbers with the Pareto front and monthly costs, the paired
    comparisons (of the stale indicators too, given `stale`), break-even volumes and the recommendation, which
    never comes from an arm racing `dropped` (nor do break-even volumes)."""
    comparisons = compare_arms(answered, seed=seed, stale=stale)
    front = pareto_front(arms, requirements)
    rows = [a.model_copy(update={"pareto": a.name in front, "monthly_cost": monthly_cost(a, requirements)})
            for a in arms]
    racing = [a for a in rows if a.name not in dropped]
    evens = break_even(racing, answered, requirements)
    return Summary(
        run_id=run_id, task=task, model=model, prices=prices, arms=rows, requirements=requirements, comparisons=comparisons,
        break_even=evens, recommendation=recommend(racing, requirements, comparisons, evens),
    )


class _RunArm:
    """One arm of a recorded run, as its class reads it back: parameters and prepare record, typed."""

    def __init__(self, entry: dict[str, Any], record: dict[str, Any], base_dir: Path | None, model: ModelSpec | None):
        self.name = entry.get("name") or entry["arm"]
        self.fixed_cost = float(record.get("fixed_cost", 0.0))
        self.cls: type[Arm] | None = None
        self.params: ArmParams | None = None
        self.record: ArmRecord | None = None
        self.prices: Prices | None = None
        try:  # a user's arm whose module is gone leaves its numbers, without its own statistics
            self.cls = arm_class(entry["arm"], base_dir, verify=bool(entry.get("verify")))
            self.params = self.cls.Params.model_validate(entry)
            self.record = self.cls.Record.model_validate(record) if record else None
        except (ValueError, ValidationError):
            pass
        if model is not None:  # priced now, from tokens
            self.prices = self.cls.prices(self.params, model) if self.cls and self.params else Prices(
                model.price_in_per_1m, model.price_out_per_1m)
            if self.record is not None:
                self.fixed_cost = self.record.priced(self.prices, model)

    def extras(self, results: Sequence[Result], peers: Mapping[str, Sequence[Result]]) -> ArmExtras | None:
        if self.cls is None or self.params is None:
            return None
        return self.cls.summarize(self.params, results, self.record, peers)


def run_model(manifest: dict[str, Any]) -> ModelSpec | None:
    """The model a run recorded, with its prices; None for a run that recorded none (costs stay as recorded)."""
    settings = (manifest.get("settings") or {}).get("model")
    return ModelSpec.model_validate(settings) if settings else None


def _run_arms(manifest: dict[str, Any], model: ModelSpec | None) -> list[_RunArm]:
    records = prepared(manifest)
    base = manifest.get("base_dir") or (str(Path(manifest["task_path"]).parent) if manifest.get("task_path") else None)
    return [_RunArm(entry, records.get(entry.get("name") or entry["arm"], {}), Path(base) if base else None, model)
            for entry in manifest["arms"]]


def _by_arm(results: Iterable[Result], names: Sequence[str]) -> dict[str, list[Result]]:
    by_arm: dict[str, list[Result]] = {name: [] for name in names}
    for r in results:
        by_arm.setdefault(r.arm, []).append(r)
    return by_arm


def _cost(arm: _RunArm, r: Result) -> float:
    return r.cost if arm.prices is None else arm.prices.of(r.tokens_in, r.tokens_out)


def _look(arm: _RunArm, rows: Sequence[Result], seed: int) -> ArmLook:
    """An arm on the examples of the rounds so far, as the racing rules read it."""
    def per_example(value: Any) -> np.ndarray:
        return np.array([math.nan if v is None else float(v) for v in map(value, rows)])

    return ArmLook(
        summary=summarize_arm(arm.name, rows, seed=seed, fixed_cost=arm.fixed_cost, prices=arm.prices),
        scores=per_example(lambda r: 0.0 if r.error else r.score),
        latencies=per_example(lambda r: None if r.error else r.latency_ms),
        costs=per_example(lambda r: _cost(arm, r)),
        stale=per_example(lambda r: None if r.error or r.stale is None else r.stale),
    )


def _race(plan: RacingPlan, arms: Sequence[_RunArm], by_arm: Mapping[str, Sequence[Result]], req: Requirements,
          seed: int) -> dict[str, ArmRacing]:
    """Which arms the rounds recorded so far drop, recomputed from the results alone (so a resumed run decides as
    the run it continues did)."""
    answers = {name: {r.example_id: r for r in rows} for name, rows in by_arm.items()}
    arm_of = {a.name: a for a in arms}

    def look(r: int, alive: Sequence[str]) -> list[ArmLook] | None:
        ids = plan.order[:plan.sizes[r]]
        if any(i not in answers.get(name, {}) for name in alive for i in ids):
            return None
        return [_look(arm_of[name], [answers[name][i] for i in ids], seed) for name in alive]

    return race([a.name for a in arms], len(plan.sizes) - 1, look, req, plan.alpha, plan.sizes[-1])


def racing_drops(store: RunStore) -> set[str]:
    """The arms a racing run's recorded results drop so far (`RunOptions.race`): none for a run that does not race."""
    manifest = store.manifest
    plan = manifest.get("racing")
    if plan is None:
        return set()
    arms = _run_arms(manifest, run_model(manifest))
    by_arm = _by_arm(store.latest().values(), manifest["arm_names"])
    req = Requirements.model_validate(manifest.get("requirements") or {})
    return set(_race(RacingPlan.model_validate(plan), arms, by_arm, req, manifest.get("seed", 0)))


def _racing_summary(plan: RacingPlan, rows: list[ArmSummary], arms: Sequence[_RunArm],
                    by_arm: Mapping[str, Sequence[Result]], req: Requirements) -> RacingSummary:
    """The race's rounds, and its spend against the exhaustive plan; each dropped row's savings filled in (`rows`)."""
    total = plan.sizes[-1]
    for i, row in enumerate(rows):
        if row.racing is not None:
            skipped = max(total - row.n, 0)
            rows[i] = row.model_copy(update={"racing": row.racing.model_copy(update={
                "tokens_saved_est": (row.tokens_in + row.tokens_out) * skipped,
                "dollars_saved_est": row.cost_per_1k / 1000 * skipped})})
    dropped = {row.name: row.racing for row in rows if row.racing is not None}
    saved_tokens = sum(d.tokens_saved_est for d in dropped.values())
    spent = sum(r.tokens_in + r.tokens_out for rs in by_arm.values() for r in rs)
    return RacingSummary(
        method=METHOD, alpha=plan.alpha, level=race_level(len(rows), req, plan.alpha),
        rounds=[RacingRound(round=r + 1, share=share, n=size,
                            arms=[row.name for row in rows if row.racing is None or row.racing.dropped_round > r])
                for r, (share, size) in enumerate(zip(plan.shares, plan.sizes))],
        dropped=list(dropped), tokens_spent=spent, tokens_saved_est=saved_tokens,
        tokens_exhaustive_est=spent + saved_tokens,
        dollars_spent=sum(_cost(a, r) for a in arms for r in by_arm.get(a.name, [])),
        dollars_saved_est=sum(d.dollars_saved_est for d in dropped.values()),
    )


def _budget_note(manifest: dict[str, Any]) -> list[str]:
    """What the recommendation's reasons say first when the run stopped at its budget."""
    budget = manifest.get("budget")
    if manifest.get("status") != BUDGET_REACHED or not budget:
        return []
    return [f"the run stopped at its budget of {money(budget['usd'])} ({money(budget['spent'])} spent) before every"
            " arm had answered its test examples: this is what the evidence so far supports; resume with a larger"
            " --budget to finish"]


def _racing_note(racing: RacingSummary | None, rows: Sequence[ArmSummary]) -> list[str]:
    """Which arms racing dropped, for the recommendation's reasons."""
    if racing is None or not racing.dropped:
        return []
    said = "; ".join(f"{row.name} after round {row.racing.dropped_round} (n={row.racing.n}, score"
                     f" {row.racing.score:.3f})" for row in rows if row.racing is not None)
    return [f"racing dropped {len(racing.dropped)} arm(s) before the full test set, as ruled out: {said};"
            f" about {racing.tokens_saved_est:,.0f} tokens ({money(racing.dollars_saved_est)}) saved"]


def summary_of(store: RunStore, results: Sequence[Result] | None = None, *, model: ModelSpec | None = None) -> Summary:
    """The summary of a run from its manifest and results alone (`results`: its latest ones, when already read).

    Answers are priced from their tokens at the prices of `model`, by default the model the run recorded: a
    cached answer costs what this run's prices say, and a finished run can be priced again without a call. A racing
    run's drops are recomputed from its results; a dropped arm keeps its row, with `racing` saying why."""
    manifest = store.manifest
    results = list(store.latest().values()) if results is None else results
    model = model or run_model(manifest)
    seed = manifest.get("seed", 0)
    names = manifest["arm_names"]
    requirements = Requirements.model_validate(manifest.get("requirements") or {})
    arms = _run_arms(manifest, model)
    by_arm = _by_arm(results, names)
    plan = RacingPlan.model_validate(manifest["racing"]) if manifest.get("racing") else None
    dropped = _race(plan, arms, by_arm, requirements, seed) if plan is not None else {}
    rows = [
        summarize_arm(
            arm.name, by_arm[arm.name], seed=seed, fixed_cost=arm.fixed_cost,
            fine_tuned=arm.cls is not None and arm.cls.Params.trains, prices=arm.prices,
            extras=arm.extras(by_arm[arm.name], {n: rs for n, rs in by_arm.items() if n != arm.name}),
        ).model_copy(update={"racing": dropped.get(arm.name)})
        for arm in arms
    ]
    racing = _racing_summary(plan, rows, arms, by_arm, requirements) if plan is not None else None
    summary = build_summary(
        run_id=store.run_id,
        task=manifest["task"],
        model=manifest["model"],
        arms=rows,
        answered=answered_scores(results, names),
        stale=stale_indicators(results, names),
        requirements=requirements,
        seed=seed,
        prices=None if model is None else {"price_in_per_1m": model.price_in_per_1m,
                                           "price_out_per_1m": model.price_out_per_1m,
                                           "price_train_per_1m": model.price_train_per_1m},
        dropped=dropped,
    )
    rec = summary.recommendation
    budget = manifest.get("budget")
    return summary.model_copy(update={
        "status": manifest.get("status"), "racing": racing,
        "budget": Budget.model_validate(budget) if budget else None,
        "recommendation": rec.model_copy(
            update={"reasons": [*_budget_note(manifest), *rec.reasons, *_racing_note(racing, rows)]}),
    })
