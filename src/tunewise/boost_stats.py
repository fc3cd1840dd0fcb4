"""Per-arm statistics of the boosting and adaptive arms, from scored results (extra summary.json fields).

Arms that choose from a pool (`self_consistency`, `committee`) leave the runner every candidate to
score (`meta.pool`: `scores` in the order drawn, `picks` naming indices). From those:

- `maj_at_k` / `oracle_at_k`: for each pool size k the arm reported, the score of the majority of the
  first k candidates, and of the best of them (best-of-k: is a correct answer among them);
- `single` (the first candidate alone), `selected` (the arm's answer), `coverage` (the best candidate
  of the whole pool) and `recovery` = (selected - single) / (coverage - single), the share of what
  the pool could add that the selection got; None when the pool adds nothing (coverage == single).

`adaptive_rag` leaves its gate's decision per query (`meta.gate`), and its train-time measurements in
the manifest: `retrieval_rate`, `tokens_saved_pct` (prompt tokens against always retrieving: the run's
`baseline` arm when it has one, else the rag prompts it sent, averaged, as the estimate) and
`necessity` (k, r, how often retrieval was necessary on train, the gate, and the stated need against
measured necessity: the knowing-doing gap).

An example without a pool or a gate (it errored) counts 0 in every score, as it does in `score`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tunewise.decide import ArmSummary
    from tunewise.store import Result


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def recovery(single: float, selected: float, coverage: float) -> float | None:
    """(selected - single) / (coverage - single); None when the pool holds nothing better than one sample."""
    if coverage - single <= 1e-12:
        return None
    return (selected - single) / (coverage - single)


def pool_fields(rows: Sequence[Result]) -> dict[str, Any]:
    """maj@k, best-of-k, single, selected, coverage and recovery of an arm whose results carry pools."""
    pools = [r.meta.get("pool") for r in rows]
    if not any(pools):
        return {}
    first = next(p for p in pools if p)
    ks = sorted(int(name.removeprefix("maj@")) for name in first["picks"] if name.startswith("maj@"))

    def per_example(value: Callable[[dict[str, Any]], float]) -> float:
        return _mean([value(p) if p else 0.0 for p in pools])

    single = per_example(lambda p: p["scores"][0])
    coverage = per_example(lambda p: max(p["scores"]))
    selected = _mean([r.score for r in rows])
    return {
        "maj_at_k": {str(k): per_example(lambda p, k=k: p["scores"][p["picks"][f"maj@{k}"]]) for k in ks} or None,
        "oracle_at_k": {str(k): per_example(lambda p, k=k: max(p["scores"][:k])) for k in ks} or None,
        "single": single,
        "selected": selected,
        "coverage": coverage,
        "recovery": recovery(single, selected, coverage),
    }


def gate_fields(rows: Sequence[Result], record: Mapping[str, Any]) -> dict[str, Any]:
    """Retrieval rate, prompt tokens saved (estimated from the rag prompts sent) and train-time necessity."""
    gates = [r.meta.get("gate") for r in rows]
    if not any(gates) and "necessity" not in record:
        return {}
    out: dict[str, Any] = {"necessity": record.get("necessity")}
    decided = [g for g in gates if g]
    if decided:
        out["retrieval_rate"] = _mean([float(g["retrieve"]) for g in decided])
        rag_prompts = [g["rag_tokens_in"] for g in decided if "rag_tokens_in" in g]
        if rag_prompts and _mean(rag_prompts) > 0:
            out["tokens_saved_pct"] = 100 * (1 - _mean([r.tokens_in for r in rows]) / _mean(rag_prompts))
            out["tokens_saved_vs"] = "estimate"
    return out


def boost_fields(rows: Sequence[Result], record: Mapping[str, Any]) -> dict[str, Any]:
    """Every extra field these arms have (none for other arms)."""
    return {**pool_fields(rows), **gate_fields(rows, record)}


def compare_with_baselines(arms: Sequence[ArmSummary], params: Sequence[Mapping[str, Any]]) -> None:
    """Measure adaptive arms against the run's `baseline` arm (default `rag`) when it has results:
    prompt tokens saved against it, and the score difference. `params` are the arms' parameters, in order."""
    by_name = {a.name: a for a in arms}
    for arm, p in zip(arms, params):
        base = by_name.get(p.get("baseline") or "")
        if arm.retrieval_rate is None or base is None or base is arm or not base.n or base.tokens_in <= 0:
            continue
        arm.tokens_saved_pct = 100 * (1 - arm.tokens_in / base.tokens_in)
        arm.tokens_saved_vs = base.name
        arm.score_vs_baseline = arm.score - base.score
