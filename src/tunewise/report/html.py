"""report.html: a self-contained page (no network) with the recommendation and the arms table."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2

from tunewise.decide import Summary
from tunewise.report.markdown import COLUMNS, arm_rows


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("tunewise.report", "templates"), autoescape=jinja2.select_autoescape(["j2"])
    )


def render_html(summary: Summary, manifest: dict[str, Any]) -> str:
    env = _environment()
    return env.get_template("report.html.j2").render(
        summary=summary, manifest=manifest, headers=COLUMNS, rows=arm_rows(summary)
    )
