"""Reports of a run: summary.json, report.md and report.html, written at the end of a run and
regenerated from the store by `tunewise report`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunewise.arms.base import Result
from tunewise.decide.schema import Summary
from tunewise.decide.summary import run_model, summary_of
from tunewise.errors import InputError
from tunewise.evaluation.store import RunStore
from tunewise.report.content import gather
from tunewise.report.html import render_html
from tunewise.report.markdown import render_markdown
from tunewise.spec import ModelSpec
from tunewise.taskfile import load_task


def write_reports(store: RunStore, summary: Summary, results: Sequence[Result] | None = None) -> dict[str, Path]:
    """Write summary.json, report.md and report.html into the run folder (`results`: the run's latest, when
    already read)."""
    report = gather(summary, store.manifest, store.latest().values() if results is None else results)
    return {
        "summary": store.write_text("summary.json", summary.model_dump_json(indent=2) + "\n"),  # NaN is null
        "markdown": store.write_text("report.md", render_markdown(report)),
        "html": store.write_text("report.html", render_html(report)),
    }


def priced_model(
    manifest: dict[str, Any], *, from_task: bool = True, price_in: float | None = None, price_out: float | None = None,
    price_train: float | None = None,
) -> ModelSpec | None:
    """The model a run's answers are priced with: the one it recorded, with the prices of its task file as it is
    now (`from_task`, when the file is still there and reads), then any price given here."""
    model = run_model(manifest)
    path = manifest.get("task_path")
    if from_task and path and Path(path).is_file():
        try:
            now = load_task(path).model
        except InputError:
            now = None
        if now is not None:
            prices = {k: getattr(now, k) for k in ("price_in_per_1m", "price_out_per_1m", "price_train_per_1m")}
            model = model.model_copy(update=prices) if model is not None else now
    given = {k: v for k, v in (("price_in_per_1m", price_in), ("price_out_per_1m", price_out),
                               ("price_train_per_1m", price_train)) if v is not None}
    if given:
        model = (model or ModelSpec(uri=manifest.get("model") or "openai:unknown")).model_copy(update=given)
    return model


def report_run(run_id: str, runs_dir: Path = Path("runs"), *, model: ModelSpec | None = None) -> dict[str, Path]:
    """Recompute a run's summary from its store and write its reports again (also of an unfinished run), its
    answers priced at `model`'s prices (default: the ones the run recorded). Makes no model call."""
    store = RunStore.open(runs_dir, run_id)
    results = list(store.latest().values())
    return write_reports(store, summary_of(store, results, model=model), results)
