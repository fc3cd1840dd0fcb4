"""report.md: the answer first, then the report's sections, each block as Markdown."""

from __future__ import annotations

from tunewise.report.content import Block, Bullets, Disagreement, Figure, Report, Table, Text


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ⏎ ")


def _table(table: Table) -> list[str]:
    def cell(i: int, text: str) -> str:
        return f"`{_cell(text)}`" if i in table.code else _cell(text)

    return [
        "| " + " | ".join(table.headers) + " |",
        "|" + "---|" * len(table.headers),
        *["| " + " | ".join(cell(i, c) for i, c in enumerate(row)) + " |" for row in table.rows],
        "",
    ]


def _example(ex: Disagreement) -> list[str]:
    head = f"**{_cell(ex.example_id)}** — input: {_cell(ex.input) or '(not recorded)'} — target: `{_cell(ex.target)}`"
    return [head, "", *_table(Table(["arm", "output", "score"], [
        [o.arm, f"error: {o.error}" if o.error else o.output or "(empty)", f"{o.score:.2f}"] for o in ex.outputs]))]


def _block(block: Block) -> list[str]:
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Text):
        return [f"_{block.text}_" if block.caption else block.text, ""]
    if isinstance(block, Bullets):
        return [*[f"- {item}" for item in block.items], ""]
    if isinstance(block, Figure):
        return [f"_Chart in report.html: {block.title}._", ""]
    return _example(block)


def render_markdown(report: Report) -> str:
    summary = report.summary
    rec = summary.recommendation
    verdict = "meets the requirements" if rec.meets_requirements else "does not meet the requirements"
    lines = [f"# {summary.task} — run {summary.run_id}", "", f"**Recommendation: `{rec.arm}`** ({verdict})", "",
             *[f"- {reason}" for reason in rec.reasons], ""]
    for section in report.sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            lines += _block(block)
    return "\n".join(lines)
