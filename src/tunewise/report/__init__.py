"""Reports of a run: summary.json, report.md and report.html."""

from __future__ import annotations

from pathlib import Path

from tunewise.decide import Summary
from tunewise.report.html import render_html
from tunewise.report.markdown import render_markdown
from tunewise.store import RunStore


def write_reports(store: RunStore, summary: Summary) -> dict[str, Path]:
    """Write summary.json, report.md and report.html into the run folder."""
    manifest = store.manifest
    return {
        "summary": store.write_json("summary.json", summary.model_dump(mode="json")),
        "markdown": store.write_text("report.md", render_markdown(summary, manifest)),
        "html": store.write_text("report.html", render_html(summary, manifest)),
    }
