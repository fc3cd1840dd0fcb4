"""Reports of a run: summary.json, report.md and report.html, written at the end of a run and
regenerated from the store by `tunewise report`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tunewise.arms.base import Result
from tunewise.decide.schema import Summary
from tunewise.decide.summary import summary_of
from tunewise.evaluation.store import RunStore
from tunewise.report.content import gather
from tunewise.report.html import render_html
from tunewise.report.markdown import render_markdown


def write_reports(store: RunStore, summary: Summary, results: Sequence[Result] | None = None) -> dict[str, Path]:
    """Write summary.json, report.md and report.html into the run folder (`results`: the run's latest, when
    already read)."""
    report = gather(summary, store.manifest, store.latest().values() if results is None else results)
    return {
        "summary": store.write_json("summary.json", summary.model_dump(mode="json")),
        "markdown": store.write_text("report.md", render_markdown(report)),
        "html": store.write_text("report.html", render_html(report)),
    }


def report_run(run_id: str, runs_dir: Path = Path("runs")) -> dict[str, Path]:
    """Recompute a run's summary from its store and write its reports again (also of an unfinished run)."""
    store = RunStore.open(runs_dir, run_id)
    results = list(store.latest().values())
    return write_reports(store, summary_of(store, results), results)
