"""report.html opened in headless Chromium: every chart is drawn, the console stays clean, nothing is
fetched from a network. CI installs Debian's chromium (TUNEWISE_REQUIRE_BROWSER=1 makes its absence fail)."""

from __future__ import annotations

import os

import pytest
from chromium import Chromium, chromium_path
from constructed_run import ArmSpec, write_run

from tunewise.report import report_run

pytestmark = pytest.mark.slow

DRAWN = """(() => {
  if (document.readyState !== "complete") return null;
  const charts = [...document.querySelectorAll(".plotly-graph-div")].map(d => ({
    id: d.id, svgs: d.querySelectorAll(".main-svg").length, points: d.querySelectorAll(".point, .bars path, .js-line").length,
  }));
  return charts.length && charts.every(c => c.svgs > 0 && c.points > 0) ? charts : null;
})()"""


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    if path is None:
        if os.environ.get("TUNEWISE_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed, and TUNEWISE_REQUIRE_BROWSER is set")
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; `make test` does it as root)")
    with Chromium(path) as b:
        yield b


def test_report_html_draws_every_chart_with_a_clean_console_and_no_network(tmp_path, browser):
    store = write_run(tmp_path, [
        ArmSpec("zero_shot", [1] * 20 + [0] * 20, cost=0.0005),
        ArmSpec("few_shot", [1] * 34 + [0] * 6, cost=0.002, latency_ms=200),
        ArmSpec("rag", [1] * 35 + [0] * 5, cost=0.003, latency_ms=400, errors=(1, 2)),
        ArmSpec("finetune", [1] * 36 + [0] * 4, cost=0.0004, arm_type="finetune", fixed_cost=20.0, latency_ms=80),
    ], requirements={"min_score": 0.8, "monthly_queries": 200_000, "max_p95_latency_ms": 1000})
    html = report_run(store.run_id, tmp_path)["html"]
    page = browser.load(html.resolve().as_uri(), DRAWN)
    assert page.value is not None, "the charts were not drawn"
    assert [c["id"] for c in page.value] == ["chart-score-cost", "chart-latency", "chart-break-even"]
    assert page.errors == []
    assert page.requests == [html.resolve().as_uri()]
