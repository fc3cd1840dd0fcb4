"""The report's charts, as Plotly figures: score against cost with CIs, latency, monthly cost against
volume (where a fine-tuned arm breaks even). Only report.html imports this (and plotly)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from tunewise.decide.schema import ArmSummary, Summary
from tunewise.report.content import priced

HEIGHT = 420
CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}
RECOMMENDED = "#1b7f3b"
OTHER = "#3b5b92"


@dataclass(frozen=True)
class Chart:
    """A chart's id (its div), title, what it shows in words, and its HTML (no plotly.js: the page has it once)."""

    id: str
    title: str
    caption: str
    html: str


def _html(fig: go.Figure, div_id: str) -> str:
    fig.update_layout(template="plotly_white", height=HEIGHT, margin={"l": 60, "r": 30, "t": 30, "b": 50})
    return pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=div_id, config=CONFIG,
                       default_height=f"{HEIGHT}px")


def _colors(arms: list[ArmSummary], recommended: str | None) -> list[str]:
    return [RECOMMENDED if a.name == recommended else OTHER for a in arms]


def score_cost_chart(summary: Summary) -> Chart:
    """Each arm at its cost per 1k queries and score, with its 95% CI; the bars of the requirements."""
    arms = [a for a in summary.arms if a.n]
    req = summary.requirements
    priced = any(a.cost_per_1k for a in arms)
    x = [a.cost_per_1k if priced else a.tokens_in + a.tokens_out for a in arms]
    fig = go.Figure(go.Scatter(
        x=x, y=[a.score for a in arms], mode="markers+text", text=[a.name for a in arms], textposition="middle right",
        marker={"size": 13, "color": _colors(arms, summary.recommendation.arm),
                "symbol": ["star" if a.pareto else "circle" for a in arms]},
        error_y={"type": "data", "symmetric": False, "array": [a.ci[1] - a.score for a in arms],
                 "arrayminus": [a.score - a.ci[0] for a in arms], "thickness": 1.5},
        hovertemplate="%{text}<br>score %{y:.3f}<br>" + ("$%{x:.4f} per 1k" if priced else "%{x:.0f} tokens") + "<extra></extra>",
    ))
    if req.min_score is not None:
        fig.add_hline(y=req.min_score, line_dash="dash", line_color="#b00020", annotation_text=f"min_score {req.min_score:g}")
    if priced and req.max_cost_per_1k is not None:
        fig.add_vline(x=req.max_cost_per_1k, line_dash="dot", line_color="#b00020", annotation_text="max_cost_per_1k")
    lo, hi = min(x, default=0.0), max(x, default=1.0)
    pad = (hi - lo) * 0.1 or abs(hi) * 0.1 or 1.0
    fig.update_layout(xaxis_title="US$ per 1,000 queries" if priced else "tokens per query (no prices set)",
                      xaxis_range=[lo - pad, hi + 2 * pad],  # room for the labels right of the markers
                      yaxis_title="score (95% CI)", yaxis_range=[-0.05, 1.08], showlegend=False)
    caption = ("Higher and further left is better; ★ marks the Pareto front, green the recommendation."
               + ("" if priced else " No prices are set, so every arm costs $0: tokens per query stand in for cost."))
    return Chart("chart-score-cost", "Score against cost", caption, _html(fig, "chart-score-cost"))


def latency_chart(summary: Summary) -> Chart:
    """p50 and p95 latency per arm, against the latency limit."""
    arms = [a for a in summary.arms if a.n]
    names = [a.name for a in arms]
    fig = go.Figure([
        go.Bar(name="p50", x=names, y=[a.p50_latency_ms for a in arms], marker_color="#8fb3e0"),
        go.Bar(name="p95", x=names, y=[a.p95_latency_ms for a in arms], marker_color=OTHER),
    ])
    limit = summary.requirements.max_p95_latency_ms
    if limit is not None:
        fig.add_hline(y=limit, line_dash="dash", line_color="#b00020", annotation_text=f"max p95 {limit:g} ms")
    fig.update_layout(barmode="group", yaxis_title="latency per query (ms)", legend={"orientation": "h", "y": 1.1})
    return Chart("chart-latency", "Latency", "Per query, over the examples answered without error.",
                 _html(fig, "chart-latency"))


def break_even_chart(summary: Summary) -> Chart | None:
    """Monthly cost of each arm against monthly volume, its one-off cost spread over `amortize_months`:
    where a fine-tuned arm's line crosses a prompting arm's, it breaks even. None when nothing is priced."""
    arms = [a for a in summary.arms if a.n]
    if not priced(summary):
        return None
    req = summary.requirements
    marks = [b.monthly_volume for b in summary.break_even if b.monthly_volume] + (
        [req.monthly_queries] if req.monthly_queries else [])
    top = max([1e6, *(10 * m for m in marks)])
    volumes = np.logspace(2, np.log10(top), 80)
    fig = go.Figure([
        go.Scatter(x=volumes, y=a.fixed_cost / req.amortize_months + a.cost_per_1k * volumes / 1000, mode="lines",
                   name=a.name + (" (fine-tuned)" if a.fine_tuned else ""),
                   line={"dash": "solid" if a.fine_tuned else "dot", "width": 3 if a.name == summary.recommendation.arm else 2},
                   hovertemplate=a.name + ": $%{y:,.2f}/month at %{x:,.0f} queries<extra></extra>")
        for a in arms
    ])
    if req.monthly_queries:
        fig.add_vline(x=req.monthly_queries, line_dash="dash", line_color="#b00020")
        # an annotation on a log axis is placed by log10 of its value (a shape is not)
        fig.add_annotation(x=np.log10(req.monthly_queries), y=1, yref="paper", xanchor="left", showarrow=False,
                           text=f" monthly_queries {req.monthly_queries:,}", font={"color": "#b00020"})
    positive = all(a.cost_per_1k > 0 or a.fixed_cost > 0 for a in arms)  # a log axis cannot show $0
    fig.update_layout(xaxis={"type": "log", "dtick": 1, "title": "queries per month"},
                      yaxis={"type": "log", "dtick": 1} if positive else {"type": "linear"},
                      yaxis_title="US$ per month", legend={"orientation": "h", "y": -0.2})
    caption = (f"One-off (training) costs are spread over {req.amortize_months:g} months (requirements.amortize_months);"
               " solid lines are fine-tuned arms. Where lines cross, the cheaper arm changes.")
    return Chart("chart-break-even", "Monthly cost against volume", caption, _html(fig, "chart-break-even"))


def charts(summary: Summary) -> list[Chart]:
    return [c for c in (score_cost_chart(summary), latency_chart(summary), break_even_chart(summary)) if c is not None]
