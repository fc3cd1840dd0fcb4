"""What a synth call spent and kept, per method: the `<out>.stats.json` header and the report's synthetic section."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from pydantic import BaseModel, Field

from tunewise.spec import SynthSpec
from tunewise.synth.sample import Outcome


class MethodStats(BaseModel):
    """One method's attempts: tokens, where samples stopped, what stopped them, and what was kept."""

    attempts: int
    accepted: int
    tokens_in: int
    tokens_out: int
    tokens_out_per_accepted: float | None
    tokens_per_accepted: float | None = Field(description="prompt and generated tokens per accepted sample")
    stopped_at: dict[str, int] = Field(description="rejected samples by the stage they were stopped at (S1, S2, S3)")
    rejections: dict[str, dict[str, int]] = Field(description="stage -> validator -> samples it scored below 1")
    pass_rate: float | None = Field(description="accepted samples every validator scored 1 at the end")


class SynthStats(BaseModel):
    """The set written and, when the baseline ran, how MSIFR compares with generate-then-filter."""

    out: str
    generator: str
    wanted: int
    written: int
    threshold: float
    s2_budget_tokens: int
    validators: list[str]
    msifr: MethodStats
    filter: MethodStats | None = None
    tokens_saved_pct: float | None = Field(None, description="1 - MSIFR's generated tokens per accepted / the baseline's")
    total_tokens_saved_pct: float | None = Field(None, description="the same with prompt tokens counted")


def method_stats(outcomes: list[Outcome]) -> MethodStats:
    accepted = [o for o in outcomes if o.accepted]
    stopped: Counter[str] = Counter()
    rejections: dict[str, Counter[str]] = {}
    for o in outcomes:
        if o.accepted:
            continue
        stage = f"S{o.stage}"
        stopped[stage] += 1
        for name, score in o.scores.items():
            if score < 1:
                rejections.setdefault(stage, Counter())[name] += 1
    tokens_in, tokens_out = sum(o.tokens_in for o in outcomes), sum(o.tokens_out for o in outcomes)
    n = len(accepted)
    return MethodStats(
        attempts=len(outcomes), accepted=n, tokens_in=tokens_in, tokens_out=tokens_out,
        tokens_out_per_accepted=tokens_out / n if n else None,
        tokens_per_accepted=(tokens_in + tokens_out) / n if n else None,
        stopped_at={s: stopped[s] for s in ("S1", "S2", "S3") if stopped[s]},
        rejections={s: dict(sorted(c.items())) for s, c in sorted(rejections.items())},
        pass_rate=sum(all(v >= 1 for v in o.scores.values()) for o in accepted) / n if n else None,
    )


def _saved(ours: float | None, theirs: float | None) -> float | None:
    return None if ours is None or not theirs else round(100 * (1 - ours / theirs), 2)


def stats_of(spec: SynthSpec, kept: dict[str, list[Outcome]], *, validators: list[str], budget: int, wanted: int,
             written: int, out: Path) -> SynthStats:
    msifr = method_stats(kept["msifr"])
    baseline = method_stats(kept["filter"]) if "filter" in kept else None
    return SynthStats(
        out=str(out), generator=spec.generator.uri, wanted=wanted, written=written,
        threshold=spec.threshold, s2_budget_tokens=budget, validators=validators,
        msifr=msifr, filter=baseline,
        tokens_saved_pct=_saved(msifr.tokens_out_per_accepted, baseline.tokens_out_per_accepted) if baseline else None,
        total_tokens_saved_pct=_saved(msifr.tokens_per_accepted, baseline.tokens_per_accepted) if baseline else None,
    )
