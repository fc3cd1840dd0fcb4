"""report.md's section for the boosting and adaptive arms: maj@k curves, recovery, retrieval gating."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunewise.decide import ArmSummary, Summary


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "—" if value is None else format(value, fmt)


def _curve(points: dict[str, float] | None) -> str:
    return ", ".join(f"{k}: {v:.3f}" for k, v in (points or {}).items()) or "—"


def _pool_lines(arms: list[ArmSummary]) -> list[str]:
    rows = [a for a in arms if a.coverage is not None]
    if not rows:
        return []
    return [
        "Candidate pools (every candidate scored): maj@k is the majority of the first k, best-of-k whether any "
        "of them is right; recovery = (selected − single) / (coverage − single).",
        "",
        "| arm | maj@k | best-of-k | single | selected | coverage | recovery |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {a.name} | {_curve(a.maj_at_k)} | {_curve(a.oracle_at_k)} | {_num(a.single)} | {_num(a.selected)} "
            f"| {_num(a.coverage)} | {_num(a.recovery)} |"
            for a in rows
        ],
        "",
    ]


def _gap(a: ArmSummary) -> list[str]:
    necessity = a.necessity or {}
    stated = necessity.get("stated")
    if not stated:
        return []
    c = stated["confusion"]
    return [
        f"Knowing-doing gap of {a.name} on {necessity.get('train_queries')} train queries, the model's stated need "
        f"against measured necessity: necessary — said yes {c['necessary']['stated_yes']}, said no "
        f"{c['necessary']['stated_no']}; not necessary — said yes {c['not_necessary']['stated_yes']}, said no "
        f"{c['not_necessary']['stated_no']}; no clear answer {stated['unparsed']}; mismatch rate "
        f"{_num(stated['mismatch_rate'])}.",
        "",
    ]


def _rule(gate: dict) -> str:
    """The fitted gate in words."""
    if gate.get("kind") != "agreement":
        return str(gate.get("kind", "—"))
    t, g = gate["threshold"], gate["probes"]
    if t > g:
        return "always retrieve"
    if t <= 1:
        return "never retrieve"
    return f"retrieve when fewer than {t} of {g} closed-book samples agree"


def _gate_lines(arms: list[ArmSummary]) -> list[str]:
    rows = [a for a in arms if a.retrieval_rate is not None or a.necessity]
    if not rows:
        return []
    lines = [
        "| arm | retrieval rate | prompt tokens saved | against | score − baseline | necessary on train | k / r | gate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for a in rows:
        n = a.necessity or {}
        gate = n.get("gate") or {}
        lines.append(
            f"| {a.name} | {_num(a.retrieval_rate)} | {_num(a.tokens_saved_pct, '.1f')}% | {a.tokens_saved_vs or '—'} "
            f"| {_num(a.score_vs_baseline, '+.3f')} | {_num(n.get('necessary_rate'))} | {n.get('k')} / {n.get('r')} "
            f"| {_rule(gate)} (train accuracy {_num(gate.get('train_accuracy'))}) |"
        )
    lines.append("")
    for a in rows:
        lines.extend(_gap(a))
    return lines


def boosting_lines(summary: Summary) -> list[str]:
    """The section's Markdown lines; none when the run has no such arm."""
    body = [*_pool_lines(summary.arms), *_gate_lines(summary.arms)]
    return ["## Boosting and adaptive retrieval", "", *body] if body else []
