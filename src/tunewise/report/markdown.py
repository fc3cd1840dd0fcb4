"""report.md: the recommendation, then one table row per arm."""

from __future__ import annotations

from typing import Any

from tunewise.decide import Summary
from tunewise.report.boosting import boosting_lines

COLUMNS = ["arm", "score", "95% CI", "n", "$/1k queries", "p50 ms", "p95 ms", "tokens in", "tokens out", "errors"]


def arm_rows(summary: Summary) -> list[list[str]]:
    """The table's cells, formatted once for every report format."""
    return [
        [
            a.name,
            f"{a.score:.3f}",
            f"{a.ci[0]:.3f}-{a.ci[1]:.3f}",
            str(a.n),
            f"{a.cost_per_1k:.4f}",
            f"{a.p50_latency_ms:.0f}",
            f"{a.p95_latency_ms:.0f}",
            f"{a.tokens_in:.0f}",
            f"{a.tokens_out:.1f}",
            str(a.errors),
        ]
        for a in summary.arms
    ]


def _retrieval_lines(summary: Summary) -> list[str]:
    rows = [a for a in summary.arms if a.recall_at_k is not None]
    if not rows:
        return []
    return [
        "| arm | retrieval recall@k | MRR | k |",
        "|---|---|---|---|",
        *[f"| {a.name} | {a.recall_at_k:.3f} | {a.mrr:.3f} | {a.retrieval_k} |" for a in rows],
        "",
    ]


def _skipped_lines(manifest: dict[str, Any]) -> list[str]:
    skipped = (manifest.get("knowledge") or {}).get("skipped") or []
    if not skipped:
        return []
    return [f"Skipped {len(skipped)} unreadable document(s) (--skip-bad):", *[f"- `{s['path']}`: {s['reason']}" for s in skipped], ""]


def render_markdown(summary: Summary, manifest: dict[str, Any]) -> str:
    rec = summary.recommendation
    verdict = "meets the requirements" if rec.meets_requirements else "does not meet the requirements"
    lines = [
        f"# {summary.task} — run {summary.run_id}",
        "",
        f"**Recommendation: `{rec.arm}`** ({verdict})",
        "",
        *[f"- {reason}" for reason in rec.reasons],
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
        *["| " + " | ".join(row) + " |" for row in arm_rows(summary)],
        "",
        *_retrieval_lines(summary),
        *boosting_lines(summary),
        *_skipped_lines(manifest),
        f"Model `{summary.model}`; splits {manifest.get('splits')}; seed {manifest.get('seed')}; "
        f"tunewise {manifest.get('tunewise_version')}. Errored examples score 0; tokens are means per query.",
        "",
    ]
    return "\n".join(lines)
