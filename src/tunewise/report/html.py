"""report.html: one self-contained page (plotly.js inlined, nothing fetched) with the answer first, then the
report's sections, the same as report.md's, with the charts drawn where report.md names them."""

from __future__ import annotations

from functools import cache

import jinja2
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from tunewise.report.charts import charts
from tunewise.report.content import Block, Bullets, Figure, Report, Table, Text


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("tunewise.report", "templates"), autoescape=jinja2.select_autoescape(["j2"])
    )


def _kind(block: Block) -> str:
    """Which layout a block gets in the template."""
    kinds: dict[type, str] = {Table: "table", Text: "text", Bullets: "bullets", Figure: "figure"}
    return kinds.get(type(block), "example")


@cache
def _plotly_js() -> Markup:
    return Markup(get_plotlyjs())


def render_html(report: Report) -> str:
    return _environment().get_template("report.html.j2").render(
        r=report, summary=report.summary, manifest=report.manifest, plotly_js=_plotly_js(), kind=_kind,
        charts={c.id: (c, Markup(c.html)) for c in charts(report.summary)},
    )
