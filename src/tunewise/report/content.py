"""What every report format shows, computed once, as sections of blocks (text, bullets, tables, charts,
examples): the arms, which differences are real, break-even, retrieval, each arm's own statistics, where the
arms disagree and every setting of the run. report.md, report.html and the CLI only lay them out."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Union

from tunewise.arms.base import ArmExtras, Result
from tunewise.decide.costs import money
from tunewise.decide.schema import Summary
from tunewise.evaluation.manifest import flat_settings

CI_NOTE = (
    "Scores are means over the test examples; an errored example scores 0. The 95% CI is a Wilson score interval"
    " when every score is 0 or 1, else a BCa bootstrap (10,000 resamples, seeded). Two arms are compared on the"
    " examples both answered without error: McNemar's exact test for 0/1 scores, else a paired permutation test"
    " (with a paired bootstrap CI of the difference); p-values are Holm-adjusted over all pairs and a difference"
    " is called significant at p < 0.05. Latencies are of answered examples; tokens are means per query; costs"
    " are in US$, per 1,000 queries, with one-off (training) costs apart. ★ marks the Pareto front over score,"
    " cost per 1k (tokens per query when no prices are set) and p95 latency."
)
TRUST_NOTE = (
    "Stale-premise rate: the share of answers that are an answer the conversation's superseded or retracted premises"
    " would give (the data's stale_answers), over the examples that have them; Wilson 95% CI. Abstained: the share"
    " the arm declined to answer; score on answered leaves those out. Grounded: the share of answers given with"
    " retrieved passages whose content words are in one of them (answer-in-passage by normalised overlap, at least"
    " 80%; a lexical check, not entailment)."
)
TEXT_LIMIT = 300


@dataclass(frozen=True)
class Table:
    """Rows of text cells; `code` names the columns set as code, `highlight` the row (by its first cell) to mark."""

    headers: list[str]
    rows: list[list[str]]
    code: tuple[int, ...] = ()
    highlight: str | None = None


@dataclass(frozen=True)
class ArmOutput:
    arm: str
    output: str
    score: float
    error: str | None


@dataclass(frozen=True)
class Disagreement:
    """One example the arms scored differently, with every arm's answer."""

    example_id: str
    input: str
    target: str
    outputs: list[ArmOutput]


@dataclass(frozen=True)
class Disagreements:
    """Some examples the arms answered differently; of how many, and how many the recommended arm misses."""

    examples: list[Disagreement]
    total: int
    out_of: int
    recommended: str | None
    missed: int

    @property
    def headline(self) -> str:
        if not self.total:
            return f"The arms score all {self.out_of} examples the same; {len(self.examples)} of them as they are:"
        line = (f"The arms score differently on {self.total} of the {self.out_of} examples they all have results for;"
                f" {len(self.examples)} shown.")
        if self.recommended:
            line += f" {self.recommended} scores lower than another arm on {self.missed} of them."
        return line


def arm_table(summary: Summary) -> Table:
    """One row per arm, formatted once for every report format; $/month only when the volume is known."""
    monthly = summary.requirements.monthly_queries is not None
    headers = ["arm", "score", "95% CI", "n", "$/1k queries", "one-off $", *(["$/month"] if monthly else []),
               "p50 ms", "p95 ms", "tokens in", "tokens out", "errors", "Pareto"]
    rows = [
        [
            a.name,
            f"{a.score:.3f}",
            "—" if a.ci[0] is None or a.ci[1] is None else f"{a.ci[0]:.3f}-{a.ci[1]:.3f}",
            str(a.n),
            money(a.cost_per_1k),
            money(a.fixed_cost),
            *([money(a.monthly_cost) if a.monthly_cost is not None else "—"] if monthly else []),
            f"{a.p50_latency_ms:.0f}",
            f"{a.p95_latency_ms:.0f}",
            f"{a.tokens_in:.0f}",
            f"{a.tokens_out:.1f}",
            str(a.errors),
            "★" if a.pareto else "",
        ]
        for a in summary.arms
    ]
    return Table(headers, rows, highlight=summary.recommendation.arm)


def comparison_table(summary: Summary) -> Table:
    """Every pair of arms, significant differences first."""
    rows = [
        [
            f"{c.a} vs {c.b}",
            str(c.n),
            f"{c.a_score:.3f} vs {c.b_score:.3f}",
            f"{c.diff:+.3f}" + (f" ({c.ci[0]:+.3f} to {c.ci[1]:+.3f})" if c.ci else ""),
            f"{c.a_better} / {c.b_better}",
            c.method,
            f"{c.p_value:.3g}",
            f"{c.p_holm:.3g}",
            ("yes: " + (c.a if c.diff > 0 else c.b) + " is better") if c.significant else "no",
        ]
        for c in sorted(summary.comparisons, key=lambda c: (not c.significant, c.p_holm))
    ]
    return Table(["pair", "shared n", "scores", "difference", "better on (A / B)", "test", "p", "p (Holm)",
                  "significant"], rows)


def racing_section(summary: Summary) -> Section | None:
    """How the race went: its rounds, each dropped arm with its round, n, score so far with CI and reason, and the
    tokens and dollars it saved against every arm answering every test example."""
    race = summary.racing
    if race is None:
        return None
    rounds = ", ".join(f"{r.share:.0%} ({r.n})" for r in race.rounds)
    rows = [
        [a.name, str(a.racing.dropped_round), str(a.racing.n), f"{a.racing.score:.3f}",
         "—" if a.racing.ci[0] is None or a.racing.ci[1] is None else f"{a.racing.ci[0]:.3f}-{a.racing.ci[1]:.3f}",
         a.racing.rule, a.racing.reason]
        for a in summary.arms if a.racing is not None
    ]
    share = race.tokens_spent / race.tokens_exhaustive_est if race.tokens_exhaustive_est else 1.0
    blocks: list[Block] = [Text(
        f"The arms were evaluated in rounds on nested shares of the test split, the same examples for every arm:"
        f" {rounds}. After each round an arm was dropped once the evidence ruled it out as the recommendation:"
        f" {race.method}, each test at level {race.level:.2g}, so that the chance of ever dropping an arm for a false"
        f" reason is at most {race.alpha:g} over all rounds (README, \"Racing\").")]
    if rows:
        blocks.append(Table(["arm", "dropped after round", "n", "score so far", "95% CI", "rule", "reason"], rows))
    else:
        blocks.append(Text("No arm was dropped: every arm answered every round."))
    blocks.append(Text(
        f"Tokens spent: {race.tokens_spent:,} of an estimated {race.tokens_exhaustive_est:,.0f} for every arm on every"
        f" test example ({share:.0%}); saved about {race.tokens_saved_est:,.0f} tokens and"
        f" {money(race.dollars_saved_est)}, estimated from each dropped arm's tokens and cost per query so far times"
        " the examples it skipped.", caption=True))
    return Section("racing", "Racing", blocks)


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def retrieval_table(summary: Summary) -> Table | None:
    """The arms that retrieve: recall@k, groundedness of their answers, MRR and k."""
    rows = [[a.name, f"{a.recall_at_k:.3f}", _share(a.groundedness), f"{a.mrr:.3f}", str(a.retrieval_k)]
            for a in summary.arms if a.recall_at_k is not None and a.mrr is not None]
    return Table(["arm", "retrieval recall@k", "grounded", "MRR", "k"], rows) if rows else None


def trust_table(summary: Summary) -> Table | None:
    """Per arm: stale-premise rate with its CI, abstentions, the score on what was answered and overall, and
    groundedness when an arm retrieved; None unless some arm has a stale-premise rate or an abstention (the
    Retrieval table shows groundedness alone)."""
    arms = [a for a in summary.arms if a.n]
    if not any(a.stale_rate is not None or a.abstention_rate for a in arms):
        return None
    grounded = any(a.groundedness is not None for a in arms)
    rows = [
        [
            a.name,
            _share(a.stale_rate),
            f"{a.stale_ci[0]:.3f}-{a.stale_ci[1]:.3f}" if a.stale_ci else "—",
            "—" if a.stale_n is None else str(a.stale_n),
            _share(a.abstention_rate),
            _share(a.answered_score),
            f"{a.score:.3f}",
            *([_share(a.groundedness)] if grounded else []),
        ]
        for a in arms
    ]
    headers = ["arm", "stale-premise rate", "95% CI", "n with stale answers", "abstained", "score on answered",
               "score overall", *(["grounded"] if grounded else [])]
    return Table(headers, rows, highlight=summary.recommendation.arm)


def stale_comparison_table(summary: Summary) -> Table | None:
    """McNemar's test on the stale indicator for every pair of arms that has one."""
    rows = [
        [f"{c.a} vs {c.b}", str(c.stale.n), f"{c.stale.a_stale} / {c.stale.b_stale}", f"{c.stale.p_value:.3g}",
         f"{c.stale.p_holm:.3g}"]
        for c in sorted(summary.comparisons, key=lambda c: c.stale.p_holm if c.stale else 1.0) if c.stale
    ]
    return Table(["pair", "shared n", "stale only in A / only in B", "McNemar p", "p (Holm)"], rows) if rows else None


def clip(text: str, limit: int = TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def disagreements(results: Iterable[Result], arms: Sequence[str], recommended: str | None, limit: int = 6) -> Disagreements:
    """Examples every arm has a result for and the arms that answered scored differently (errors alone do
    not make a disagreement): half those the recommended arm misses and another gets right (what another
    arm would buy), half those it gets right and another misses. When the arms never disagree, a few
    examples as they are (all wrong, say, shows what the model answers)."""
    by_example: dict[str, dict[str, Result]] = {}
    for r in results:
        by_example.setdefault(r.example_id, {})[r.arm] = r
    complete = {e: rows for e, rows in sorted(by_example.items()) if all(a in rows for a in arms)}
    split = [e for e, rows in complete.items() if len({rows[a].score for a in arms if rows[a].error is None}) > 1]
    misses = [e for e in split if recommended not in arms
              or complete[e][recommended].score < max(complete[e][a].score for a in arms)]
    missed = set(misses)
    hits = [e for e in split if e not in missed]
    half = limit // 2
    chosen = (misses[:half] + hits[:half] + misses[half:] + hits[half:])[:limit] if split else list(complete)[:half]
    examples = [
        Disagreement(
            e,
            clip(next(iter(complete[e].values())).input),
            clip(complete[e][arms[0]].target),
            [ArmOutput(a, clip(complete[e][a].output), complete[e][a].score, complete[e][a].error) for a in arms],
        )
        for e in chosen
    ]
    mine = recommended if recommended in arms else None
    return Disagreements(examples, len(split), len(complete), mine, len(misses) if mine else 0)


Block = Union["Text", "Bullets", Table, "Figure", Disagreement]


@dataclass(frozen=True)
class Text:
    """A paragraph; a `caption` is set smaller, under what it explains."""

    text: str
    caption: bool = False


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Figure:
    """A chart of report.html (`tunewise.report.charts` draws it); report.md names it."""

    id: str
    title: str


@dataclass(frozen=True)
class Section:
    """A titled part of a report, as blocks every format lays out alike."""

    id: str
    title: str
    blocks: list[Block]


def _cell(value: Any) -> str:
    """An extras field as a table cell."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_cell(v)}" for k, v in value.items()) or "—"
    return str(value)


def _shown(value: Any) -> bool:
    """Whether a field of an extras model is a table cell: a scalar, or a mapping of scalars (a curve)."""
    scalar = (str, int, float, bool, type(None))
    return isinstance(value, scalar) or (isinstance(value, dict) and all(isinstance(v, scalar) for v in value.values()))


def extras_sections(summary: Summary) -> list[Section]:
    """Every arm's own statistics (its `extras`), grouped by the section its class names: a table per extras
    class (a row per arm, a column per field shown), its caption, and each arm's notes."""
    grouped: dict[str, dict[type[ArmExtras], list[tuple[str, ArmExtras]]]] = {}
    for arm in summary.arms:
        if arm.extras is not None:
            grouped.setdefault(type(arm.extras).section, {}).setdefault(type(arm.extras), []).append((arm.name, arm.extras))
    sections = []
    for title, by_class in grouped.items():
        blocks: list[Block] = []
        for cls, rows in by_class.items():
            fields = [name for name in cls.model_fields if _shown(getattr(rows[0][1], name))]
            headers = ["arm", *[cls.model_fields[name].title or name for name in fields]]
            blocks.append(Table(headers, [[arm, *[_cell(getattr(x, name)) for name in fields]] for arm, x in rows]))
            if cls.caption and Text(cls.caption, caption=True) not in blocks:  # classes extending one share it
                blocks.append(Text(cls.caption, caption=True))
            notes = [note for arm, x in rows for note in x.notes(arm)]
            if notes:
                blocks.append(Bullets(notes))
        sections.append(Section(re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-"), title, blocks))
    return sections


def priced(summary: Summary) -> bool:
    """Whether any arm has a price or a one-off cost (else costs are all $0 and tokens stand in)."""
    return any(a.cost_per_1k or a.fixed_cost for a in summary.arms if a.n)


@dataclass(frozen=True)
class Report:
    """Everything a report shows, for one run: the answer first, then its sections."""

    summary: Summary
    manifest: dict[str, Any]
    arms: Table
    sections: list[Section]


def _sections(summary: Summary, manifest: dict[str, Any], results: Iterable[Result], arms: Table) -> list[Section]:
    methods = ", ".join(dict.fromkeys(a.ci_method for a in summary.arms if a.ci_method))
    out = [Section("arms", "Arms", [
        arms,
        Text(f"CIs: {methods}. Errored examples score 0; tokens are means per query; costs in US$.", caption=True),
        Figure("chart-score-cost", "Score against cost"),
        Figure("chart-latency", "Latency"),
    ])]
    racing = racing_section(summary)
    if racing is not None:
        out.append(racing)
    comparisons = comparison_table(summary)
    if comparisons.rows:
        out.append(Section("comparisons", "Which differences are real", [comparisons, Text(
            "Paired on the examples both arms answered without error; p-values Holm-adjusted over all "
            f"{len(comparisons.rows)} pairs.", caption=True)]))
    if summary.break_even or priced(summary):
        blocks: list[Block] = [Figure("chart-break-even", "Monthly cost against volume")] if priced(summary) else []
        if summary.break_even:
            blocks.append(Bullets([b.note for b in summary.break_even]))
        out.append(Section("break-even", "Break-even", blocks))
    retrieval = retrieval_table(summary)
    retrieval_blocks: list[Block] = [retrieval] if retrieval else []
    dense = (manifest.get("knowledge") or {}).get("dense_search")
    if dense:  # how the index answered dense queries: exact, or its ANN index with the recall measured
        retrieval_blocks.append(Text(dense["summary"]))
    if retrieval_blocks:
        out.append(Section("retrieval", "Retrieval", retrieval_blocks))
    trust = trust_table(summary)
    if trust:
        shown: list[Block] = [trust, Text(TRUST_NOTE, caption=True)]
        stale = stale_comparison_table(summary)
        if stale:
            shown += [stale, Text("Paired on the examples with stale answers both arms answered without error; "
                                   "McNemar's exact test, Holm-adjusted over these pairs.", caption=True)]
        out.append(Section("trust", "Trust", shown))
    out += extras_sections(summary)
    skipped = (manifest.get("knowledge") or {}).get("skipped") or []
    if skipped:
        out.append(Section("skipped", "Skipped documents", [
            Text(f"Skipped {len(skipped)} unreadable document(s) (--skip-bad):"),
            Bullets([f"{s['path']}: {s['reason']}" for s in skipped])]))
    found = disagreements(results, [a.name for a in summary.arms if a.n], summary.recommendation.arm)
    if found.out_of:
        out.append(Section("disagreements", "Where the arms disagree", [Text(found.headline), *found.examples]))
    settings = flat_settings(manifest, summary.requirements.model_dump())
    out.append(Section("settings", "Settings", [Table(["setting", "value"], [[k, v] for k, v in settings], code=(1,))]))
    out.append(Section("how-to-read", "How to read this", [Text(CI_NOTE, caption=True)]))
    return out


def gather(summary: Summary, manifest: dict[str, Any], results: Iterable[Result]) -> Report:
    """The report's content from the summary, the manifest and the run's latest results."""
    arms = arm_table(summary)
    return Report(summary=summary, manifest=manifest, arms=arms, sections=_sections(summary, manifest, results, arms))
