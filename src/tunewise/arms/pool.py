"""Statistics of arms that choose their answer from a pool of candidates (`self_consistency`, `committee`).

The runner scores every candidate (Result.pool: scores in the order drawn, the arm's named picks). From those:

- `maj_at_k` / `oracle_at_k`: for each pool size k the arm reported, the score of the majority of the first
  k candidates, and of the best of them (best-of-k: is a correct answer among them);
- `single` (the first candidate alone), `selected` (the arm's answer), `coverage` (the best candidate of the
  whole pool) and `recovery` = (selected - single) / (coverage - single), the share of what the pool could
  add that the selection got; None when the pool adds nothing (coverage == single).

An example without a pool (it errored) counts 0 in every score, as it does in `score`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import Field

from tunewise.arms.base import ArmExtras, PoolScores, Result


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def recovery(single: float, selected: float, coverage: float) -> float | None:
    """(selected - single) / (coverage - single); None when the pool holds nothing better than one sample."""
    if coverage - single <= 1e-12:
        return None
    return (selected - single) / (coverage - single)


class PoolExtras(ArmExtras):
    """What choosing from the pool bought: maj@k and best-of-k curves, single, selected, coverage, recovery."""

    section = "Boosting"
    caption = ("Candidate pools (every candidate scored): maj@k is the majority of the first k, best-of-k whether any "
               "of them is right; recovery = (selected − single) / (coverage − single).")

    maj_at_k: dict[str, float] = Field(title="maj@k")
    oracle_at_k: dict[str, float] = Field(title="best-of-k")
    single: float = Field(title="single")
    selected: float = Field(title="selected")
    coverage: float = Field(title="coverage")
    recovery: float | None = Field(title="recovery")


def pool_stats(results: Sequence[Result]) -> dict[str, object] | None:
    """The PoolExtras fields of an arm whose results carry pools; None when none does."""
    pools = [r.pool for r in results]
    first = next((p for p in pools if p), None)
    if first is None:
        return None
    ks = sorted(int(name.removeprefix("maj@")) for name in first.picks if name.startswith("maj@"))

    def per_example(value: Callable[[PoolScores], float]) -> float:
        return _mean([value(p) if p else 0.0 for p in pools])

    single = per_example(lambda p: p.scores[0])
    coverage = per_example(lambda p: max(p.scores))
    selected = _mean([r.score for r in results])
    return {
        "maj_at_k": {str(k): per_example(lambda p, k=k: p.scores[p.picks[f"maj@{k}"]]) for k in ks},
        "oracle_at_k": {str(k): per_example(lambda p, k=k: max(p.scores[:k])) for k in ks},
        "single": single,
        "selected": selected,
        "coverage": coverage,
        "recovery": recovery(single, selected, coverage),
    }
