"""report.md: the answer first, then the arms, which differences are real, break-even, where the arms
disagree, and every setting."""

from __future__ import annotations

from tunewise.report.boosting import boosting_lines
from tunewise.report.content import CI_NOTE, Report, Table


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ⏎ ")


def _table(table: Table) -> list[str]:
    return [
        "| " + " | ".join(table.headers) + " |",
        "|" + "---|" * len(table.headers),
        *["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows],
        "",
    ]


def _disagreement_lines(report: Report) -> list[str]:
    lines = [report.disagreements.headline, ""]
    for ex in report.disagreements.examples:
        lines += [f"**{_cell(ex.example_id)}** — input: {_cell(ex.input) or '(not recorded)'} — target: `{_cell(ex.target)}`", ""]
        lines += _table(Table(["arm", "output", "score"], [
            [o.arm, f"error: {o.error}" if o.error else o.output or "(empty)", f"{o.score:.2f}"] for o in ex.outputs]))
    return lines


def render_markdown(report: Report) -> str:
    summary = report.summary
    rec = summary.recommendation
    verdict = "meets the requirements" if rec.meets_requirements else "does not meet the requirements"
    lines = [
        f"# {summary.task} — run {summary.run_id}",
        "",
        f"**Recommendation: `{rec.arm}`** ({verdict})",
        "",
        *[f"- {reason}" for reason in rec.reasons],
        "",
        "## Arms",
        "",
        *_table(report.arms),
    ]
    if report.comparisons.rows:
        lines += ["## Which differences are real", "", *_table(report.comparisons)]
    if summary.break_even:
        lines += ["## Break-even", "", *[f"- {b.note}" for b in summary.break_even], ""]
    if report.retrieval:
        lines += ["## Retrieval", "", *_table(report.retrieval)]
    lines += boosting_lines(summary)
    if report.skipped:
        lines += [f"Skipped {len(report.skipped)} unreadable document(s) (--skip-bad):",
                  *[f"- `{s['path']}`: {s['reason']}" for s in report.skipped], ""]
    if report.disagreements.out_of:
        lines += ["## Where the arms disagree", "", *_disagreement_lines(report)]
    lines += ["## Settings", "", *_table(Table(["setting", "value"], [[k, f"`{v}`"] for k, v in report.settings])),
              "## How to read this", "", CI_NOTE, ""]
    return "\n".join(lines)
