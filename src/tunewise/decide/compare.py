"""Two runs side by side: what changed per arm (score, cost, latency), whether a score change is
significant (a paired test on the example ids both runs answered, Holm-adjusted over the arms), the
recommendations, and the settings that differ."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from tunewise.decide.comparisons import ALPHA, answered_scores
from tunewise.decide.schema import ArmSummary, Recommendation
from tunewise.decide.stats import holm, paired_test
from tunewise.decide.summary import summary_of
from tunewise.evaluation.manifest import flat_settings
from tunewise.evaluation.store import RunStore


class ArmChange(BaseModel):
    """One arm in run A and run B; deltas are B - A, the test pairs B's and A's scores on shared examples."""

    name: str
    a: ArmSummary | None
    b: ArmSummary | None
    score_delta: float | None = None
    cost_delta: float | None = None
    p95_delta: float | None = None
    shared: int = 0
    method: str | None = None
    p_value: float | None = None
    p_holm: float | None = None
    significant: bool = False
    note: str


class SettingChange(BaseModel):
    key: str
    a: str | None
    b: str | None


class RunComparison(BaseModel):
    run_a: str
    run_b: str
    same_task: bool
    arms: list[ArmChange]
    recommendation_a: Recommendation
    recommendation_b: Recommendation
    settings: list[SettingChange]


def _settings_changes(a: dict[str, str], b: dict[str, str]) -> list[SettingChange]:
    keys = [k for k in dict.fromkeys([*a, *b]) if not k.startswith("run.") and a.get(k) != b.get(k)]
    return [SettingChange(key=k, a=a.get(k), b=b.get(k)) for k in keys]


def compare_runs(run_a: str, run_b: str, runs_dir: Path = Path("runs")) -> RunComparison:
    """What changed from run A to run B."""
    stores = RunStore.open(runs_dir, run_a), RunStore.open(runs_dir, run_b)
    summaries = [summary_of(s) for s in stores]
    manifests = [s.manifest for s in stores]
    by_name = [{arm.name: arm for arm in s.arms} for s in summaries]
    names = list(dict.fromkeys([*by_name[0], *by_name[1]]))
    answered = [answered_scores(s.latest().values(), names) for s in stores]
    tests = {}
    for name in names:
        shared = sorted(answered[0][name].keys() & answered[1][name].keys())
        if shared:
            tests[name] = paired_test([answered[1][name][e] for e in shared], [answered[0][name][e] for e in shared])
    adjusted = dict(zip(tests, holm([t.p_value for t in tests.values()])))
    changes = []
    for name in names:
        a, b = by_name[0].get(name), by_name[1].get(name)
        if a is None or b is None:
            changes.append(ArmChange(name=name, a=a, b=b, note=f"only in run {'A' if b is None else 'B'}"))
            continue
        t = tests.get(name)
        if t is None:
            note = "no example answered in both runs: not compared"
        elif adjusted[name] < ALPHA:
            note = f"significant: {t.diff:+.3f} on {t.n} shared examples ({t.method} p={adjusted[name]:.3g} Holm-adjusted)"
        else:
            note = f"not significant ({t.method} p={adjusted[name]:.3g} Holm-adjusted, {t.n} shared examples)"
        changes.append(ArmChange(
            name=name, a=a, b=b, score_delta=b.score - a.score, cost_delta=b.cost_per_1k - a.cost_per_1k,
            p95_delta=b.p95_latency_ms - a.p95_latency_ms, shared=t.n if t else 0, method=t.method if t else None,
            p_value=t.p_value if t else None, p_holm=adjusted.get(name), significant=adjusted.get(name, 1.0) < ALPHA,
            note=note,
        ))
    flat = [dict(flat_settings(m, s.requirements.model_dump())) for s, m in zip(summaries, manifests)]
    return RunComparison(
        run_a=run_a, run_b=run_b,
        same_task=manifests[0].get("task_fingerprint") == manifests[1].get("task_fingerprint"),
        arms=changes, recommendation_a=summaries[0].recommendation, recommendation_b=summaries[1].recommendation,
        settings=_settings_changes(*flat),
    )
