"""report.html: one self-contained page (plotly.js inlined, nothing fetched) with the answer first, then
the arms, the charts, which differences are real, where the arms disagree, and every setting."""

from __future__ import annotations

from functools import cache

import jinja2
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from tunewise.report.charts import charts
from tunewise.report.content import CI_NOTE, Report


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("tunewise.report", "templates"), autoescape=jinja2.select_autoescape(["j2"])
    )


@cache
def _plotly_js() -> Markup:
    return Markup(get_plotlyjs())


def render_html(report: Report) -> str:
    return _environment().get_template("report.html.j2").render(
        r=report, summary=report.summary, manifest=report.manifest, note=CI_NOTE, plotly_js=_plotly_js(),
        charts=[(c, Markup(c.html)) for c in charts(report.summary)],
    )
