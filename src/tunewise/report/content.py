"""What every report format shows, computed once: the arms table, the comparisons, the examples where
the arms disagree and every setting of the run. report.md, report.html and the CLI only lay it out."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tunewise.decide import Summary
from tunewise.store import Result

CI_NOTE = (
    "Scores are means over the test examples; an errored example scores 0. The 95% CI is a Wilson score interval"
    " when every score is 0 or 1, else a BCa bootstrap (10,000 resamples, seeded). Two arms are compared on the"
    " examples both answered without error: McNemar's exact test for 0/1 scores, else a paired permutation test"
    " (with a paired bootstrap CI of the difference); p-values are Holm-adjusted over all pairs and a difference"
    " is called significant at p < 0.05. Latencies are of answered examples; tokens are means per query; costs"
    " are in US$, per 1,000 queries, with one-off (training) costs apart. ★ marks the Pareto front over score,"
    " cost per 1k (tokens per query when no prices are set) and p95 latency."
)
TEXT_LIMIT = 300


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class ArmOutput:
    arm: str
    output: str
    score: float
    error: str | None


@dataclass(frozen=True)
class Disagreement:
    """One example the arms scored differently, with every arm's answer."""

    example_id: str
    input: str
    target: str
    outputs: list[ArmOutput]


@dataclass(frozen=True)
class Disagreements:
    """Some examples the arms answered differently; of how many, and how many the recommended arm misses."""

    examples: list[Disagreement]
    total: int
    out_of: int
    recommended: str | None
    missed: int

    @property
    def headline(self) -> str:
        if not self.total:
            return f"The arms score all {self.out_of} examples the same; {len(self.examples)} of them as they are:"
        line = (f"The arms score differently on {self.total} of the {self.out_of} examples they all have results for;"
                f" {len(self.examples)} shown.")
        if self.recommended:
            line += f" {self.recommended} scores lower than another arm on {self.missed} of them."
        return line


def arm_table(summary: Summary) -> Table:
    """One row per arm, formatted once for every report format; $/month only when the volume is known."""
    monthly = summary.requirements.monthly_queries is not None
    headers = ["arm", "score", "95% CI", "n", "$/1k queries", "fixed $", *(["$/month"] if monthly else []),
               "p50 ms", "p95 ms", "tokens in", "tokens out", "errors", "Pareto"]
    rows = [
        [
            a.name,
            f"{a.score:.3f}",
            f"{a.ci[0]:.3f}-{a.ci[1]:.3f}",
            str(a.n),
            f"{a.cost_per_1k:.4f}",
            f"{a.fixed_cost:.2f}",
            *([f"{a.monthly_cost:,.2f}"] if monthly and a.monthly_cost is not None else []),
            f"{a.p50_latency_ms:.0f}",
            f"{a.p95_latency_ms:.0f}",
            f"{a.tokens_in:.0f}",
            f"{a.tokens_out:.1f}",
            str(a.errors),
            "★" if a.pareto else "",
        ]
        for a in summary.arms
    ]
    return Table(headers, rows)


def comparison_table(summary: Summary) -> Table:
    """Every pair of arms, significant differences first."""
    rows = [
        [
            f"{c.a} vs {c.b}",
            str(c.n),
            f"{c.a_score:.3f} vs {c.b_score:.3f}",
            f"{c.diff:+.3f}" + (f" ({c.ci[0]:+.3f} to {c.ci[1]:+.3f})" if c.ci else ""),
            f"{c.a_better} / {c.b_better}",
            c.method,
            f"{c.p_value:.3g}",
            f"{c.p_holm:.3g}",
            ("yes: " + (c.a if c.diff > 0 else c.b) + " is better") if c.significant else "no",
        ]
        for c in sorted(summary.comparisons, key=lambda c: (not c.significant, c.p_holm))
    ]
    return Table(["pair", "shared n", "scores", "difference", "better on (A / B)", "test", "p", "p (Holm)",
                  "significant"], rows)


def retrieval_table(summary: Summary) -> Table | None:
    rows = [[a.name, f"{a.recall_at_k:.3f}", f"{a.mrr:.3f}", str(a.retrieval_k)]
            for a in summary.arms if a.recall_at_k is not None and a.mrr is not None]
    return Table(["arm", "retrieval recall@k", "MRR", "k"], rows) if rows else None


def clip(text: str, limit: int = TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def disagreements(results: Iterable[Result], arms: Sequence[str], recommended: str | None, limit: int = 6) -> Disagreements:
    """Examples every arm has a result for and the arms that answered scored differently (errors alone do
    not make a disagreement): half those the recommended arm misses and another gets right (what another
    arm would buy), half those it gets right and another misses. When the arms never disagree, a few
    examples as they are (all wrong, say, shows what the model answers)."""
    by_example: dict[str, dict[str, Result]] = {}
    for r in results:
        by_example.setdefault(r.example_id, {})[r.arm] = r
    complete = {e: rows for e, rows in sorted(by_example.items()) if all(a in rows for a in arms)}
    split = [e for e, rows in complete.items() if len({rows[a].score for a in arms if rows[a].error is None}) > 1]
    misses = [e for e in split if recommended not in arms
              or complete[e][recommended].score < max(complete[e][a].score for a in arms)]
    missed = set(misses)
    hits = [e for e in split if e not in missed]
    half = limit // 2
    chosen = (misses[:half] + hits[:half] + misses[half:] + hits[half:])[:limit] if split else list(complete)[:half]
    examples = [
        Disagreement(
            e,
            clip(next(iter(complete[e].values())).input),
            clip(complete[e][arms[0]].target),
            [ArmOutput(a, clip(complete[e][a].output), complete[e][a].score, complete[e][a].error) for a in arms],
        )
        for e in chosen
    ]
    mine = recommended if recommended in arms else None
    return Disagreements(examples, len(split), len(complete), mine, len(misses) if mine else 0)


def _flatten(prefix: str, value: Any) -> Iterable[tuple[str, str]]:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from _flatten(f"{prefix}.{k}" if prefix else str(k), v)
    else:
        yield prefix, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def settings(summary: Summary, manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """Every setting the run used, as dotted keys: task, model, data, arms, requirements, training, versions."""
    arms = {p.get("name") or p.get("arm"): p for p in manifest.get("arms", [])}
    knowledge = {k: v for k, v in (manifest.get("knowledge") or {}).items() if k != "skipped"}
    sections: dict[str, Any] = {
        "run": {k: manifest.get(k) for k in ("run_id", "status", "created_at", "updated_at", "task_path", "task_fingerprint")},
        "versions": {"tunewise": manifest.get("tunewise_version"), "python": manifest.get("python")},
        "model": None if manifest.get("settings") else manifest.get("model"),
        "task": manifest.get("settings") or {},
        "metric": manifest.get("metric"),
        "requirements": summary.requirements.model_dump(),
        "seed": manifest.get("seed"),
        "splits": manifest.get("splits"),
        "arms": arms,
        "training": manifest.get("training") or {},
        "index": knowledge,
    }
    return [(k, v) for k, v in _flatten("", sections) if v not in ("null", "{}")]


@dataclass(frozen=True)
class Report:
    """Everything a report shows, for one run."""

    summary: Summary
    manifest: dict[str, Any]
    arms: Table
    comparisons: Table
    retrieval: Table | None
    disagreements: Disagreements
    settings: list[tuple[str, str]]
    skipped: list[dict[str, str]]


def gather(summary: Summary, manifest: dict[str, Any], results: Iterable[Result]) -> Report:
    """The report's content from the summary, the manifest and the run's latest results."""
    return Report(
        summary=summary,
        manifest=manifest,
        arms=arm_table(summary),
        comparisons=comparison_table(summary),
        retrieval=retrieval_table(summary),
        disagreements=disagreements(results, [a.name for a in summary.arms if a.n], summary.recommendation.arm),
        settings=settings(summary, manifest),
        skipped=(manifest.get("knowledge") or {}).get("skipped") or [],
    )
