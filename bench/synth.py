"""MSIFR against generate-then-filter, on generators whose defect rates per stage are known.

The generator is the scripted word-problem writer of tests/synth_writer.py: each attempt's sample is decided by its
prompt, with at most one defect planted at a stated rate (an input that is not a question or copies a dev/test
input: seen at S1; a hedge opening the answer: S2; wrong arithmetic or no final answer: S3). Both methods make the
same attempts; the exact tokens MSIFR should generate follow from what was planted, and are printed beside what
it generated. Quality is the same measure on both sides: the share of accepted samples the writer planted no
defect in (its truth, not the validators').

    .venv/bin/python bench/synth.py [--quick] [--n N]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from synth_writer import ScriptedGenerator, pieces, write, write_problems_task  # noqa: E402
from tables import table  # noqa: E402

from tunewise.data import load_dataset  # noqa: E402
from tunewise.near_duplicates import NearDuplicates  # noqa: E402
from tunewise.synth.format import parse  # noqa: E402
from tunewise.synth.run import Plan, SynthOptions, asynthesize  # noqa: E402
from tunewise.synth.sample import Outcome  # noqa: E402
from tunewise.taskfile import load_task  # noqa: E402

# (defect, share, stage it shows at). "strong": 40% of samples defective; "weak": 65%.
MODES = {
    "strong": (("unposed", 0.10, 1), ("copy", 0.05, 1), ("hedge", 0.10, 2), ("arithmetic", 0.10, 3), ("unparsed", 0.05, 3)),
    "weak": (("unposed", 0.20, 1), ("copy", 0.10, 1), ("hedge", 0.20, 2), ("arithmetic", 0.10, 3), ("unparsed", 0.05, 3)),
}
VALIDATORS = ["well_posed", {"duplicate": {"max_rouge_l": 0.9}}, "hedging", "markers", "arithmetic", "parses", "grounded"]


def expected_tokens(plan: Plan, outcomes: list[Outcome], evaluation: list[str], rates: tuple) -> int:
    """What MSIFR should generate for these attempts, from what the writer planted: the input and its marker for
    an S1 defect, that plus the S2 budget for an S2 defect, the whole sample otherwise. A sample whose input
    happens to come within the ROUGE-L bound of a train/dev/test input (recomputed here), or of one accepted in an
    earlier wave (taken from the run: it depends on what was accepted), is stopped at S1 too.
    """
    references = NearDuplicates(plan.references.max_rouge_l)
    for split in ("train", "dev", "test"):
        for e in getattr(load_dataset(plan.task), split):
            references.add(e.input, split)
    total = 0
    for o in outcomes:
        written = write(plan.request(o.attempt).messages[-1][1], evaluation, rates)
        parts = pieces(written.text)
        s1 = next(i for i, p in enumerate(parts) if p.strip() == "ANSWER:") + 1
        copies = references.match(parse(written.text).input) is not None or o.scores.get("duplicate_accepted", 1) < 1
        stage = 1 if copies else written.stage or 3
        total += {1: s1, 2: s1 + plan.budget}.get(min(stage, written.stage or 3), len(parts))
    return total


def quality(plan: Plan, outcomes: list[Outcome], evaluation: list[str], rates: tuple) -> float:
    accepted = [o for o in outcomes if o.accepted]
    clean = sum(write(plan.request(o.attempt).messages[-1][1], evaluation, rates).defect is None for o in accepted)
    return clean / len(accepted) if accepted else 0.0


def run_mode(name: str, n: int, folder: Path) -> dict:
    rates = MODES[name]
    task = load_task(write_problems_task(folder / name, {"uri": "openai:scripted-writer"}, synth={"validators": VALIDATORS}))
    dataset = load_dataset(task)
    evaluation = [e.input for e in dataset.dev + dataset.test]
    generator = ScriptedGenerator(evaluation, rates)
    kept: dict[str, list[Outcome]] = {"msifr": [], "filter": []}

    def record(o: Outcome) -> None:
        kept[o.method].append(o)

    start = time.perf_counter()
    out = folder / name / "synth.jsonl"
    stats = asyncio.run(asynthesize(task, SynthOptions(n=n, out=out, baseline=True, on_sample=record), generator))
    seconds = time.perf_counter() - start
    plan = Plan(task, task.synth)
    shown = sum(share for _, share, _ in rates)
    return {"name": name, "stats": stats, "seconds": seconds, "defective": shown,
            "expected": expected_tokens(plan, kept["msifr"], evaluation, rates),
            "quality": {m: quality(plan, kept[m], evaluation, rates) for m in kept}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 accepted examples per mode (under a minute)")
    parser.add_argument("--n", type=int, default=None, help="accepted examples wanted per mode")
    args = parser.parse_args()
    n = args.n or (200 if args.quick else 1000)
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_mode(name, n, Path(tmp)) for name in MODES]
    rows = []
    for r in results:
        s = r["stats"]
        rows.append([
            r["name"], f"{r['defective']:.0%}", str(s.msifr.attempts), f"{s.msifr.accepted} / {s.filter.accepted}",
            f"{s.msifr.tokens_out:,}", f"{r['expected']:,}", f"{s.filter.tokens_out:,}",
            f"{s.msifr.tokens_out_per_accepted:.1f} / {s.filter.tokens_out_per_accepted:.1f}",
            f"{s.tokens_saved_pct:.1f}%", f"{s.total_tokens_saved_pct:.1f}%",
            f"{r['quality']['msifr']:.3f} / {r['quality']['filter']:.3f}", f"{r['seconds']:.1f}",
        ])
    print(table(["generator", "defective", "attempts", "accepted msifr/filter", "msifr tokens", "expected",
                 "filter tokens", "tokens/accepted", "saved", "saved incl. prompt", "quality msifr/filter", "s"], rows))
    for r in results:
        s = r["stats"]
        print(f"\n{r['name']}: rejections by stage and validator (msifr | filter)")
        names = sorted({v for m in (s.msifr, s.filter) for stage in m.rejections.values() for v in stage})
        stage_rows = [[v, *(str(s.msifr.rejections.get(st, {}).get(v, 0)) for st in ("S1", "S2", "S3")),
                       str(s.filter.rejections.get("S3", {}).get(v, 0))] for v in names]
        print(table(["validator", "msifr S1", "msifr S2", "msifr S3", "filter (at the end)"], stage_rows))
    headline = next(r for r in results if r["name"] == "weak")
    q = headline["quality"]
    print(f"\n({headline['name']} generator) tokens saved: {headline['stats'].tokens_saved_pct:.1f}% at accepted quality "
          f"{q['msifr']:.3f} vs {q['filter']:.3f}")


if __name__ == "__main__":
    main()
