"""MSIFR against generate-then-filter, on generators whose defect rates per stage are known.

The generator is the scripted word-problem writer of tests/synth_writer.py: each attempt's sample is decided by its
prompt, with at most one defect planted at a stated rate (an input that is not a question or copies a dev/test
input: seen at S1; a hedge opening the answer: S2; wrong arithmetic or no final answer: S3). Both methods make the
same attempts; the exact tokens MSIFR should generate follow from what was planted, and are printed beside what
it generated. Quality is the same measure on both sides: the share of accepted samples the writer planted no
defect in (its truth, not the validators').

Without --quick it also runs the lab (a few minutes): question-answer pairs written by the lab's teacher (a
scripted writer, not a language model: see tunewise/lab/teacher.py) from the documents of the lab's `facts` task,
MSIFR beside generate-then-filter, each accepted set checked against the world's truth; then `rag`, `finetune`
on the raw documents and `finetune` on the synthetic pairs, on the task's 170 test questions.

    .venv/bin/python bench/synth.py [--quick] [--n N] [--lab-n N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

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


# The lab's questions are short and share their wording across subjects (names share words too: "... Motors"),
# so two questions about different facts sit at ROUGE-L 0.7-0.8; a copy of a task question scores 1.0.
LAB_VALIDATORS = ["well_posed", {"duplicate": {"max_rouge_l": 0.85}}, "hedging", "markers", "parses", "grounded"]


def lab_task(folder: Path) -> Path:
    """The lab's facts task with a `synth:` block (the teacher) and three arms: rag, finetune on the documents,
    finetune on the synthetic pairs."""
    from tunewise.lab import default_world_dir
    from tunewise.lab.tasks import LORA

    world = default_world_dir()
    task = yaml.safe_load((world / "tasks" / "facts" / "task.yaml").read_text())
    task["name"] = "facts-synthetic"
    task["data"]["path"] = str(world / "tasks" / "facts" / "data.jsonl")
    task["knowledge"]["paths"] = [str(world / "docs")]
    task["model"]["uri"] = f"lab:{world}"
    task["synth"] = {"generator": "lab:teacher", "max_tokens": 48, "max_attempts": 8, "validators": LAB_VALIDATORS}
    task["arms"] = [yaml.safe_load(arm) for arm in (
        "rag: {k: 2, retriever: hybrid}", f"finetune: {{{LORA}, documents: true}}",
        f"finetune: {{name: finetune_synthetic, {LORA}, synthetic: synth.jsonl}}")]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "task.yaml"
    path.write_text(yaml.safe_dump(task, sort_keys=False))
    return path


def _trained_on(arm) -> str:
    extras = arm.model_dump(mode="json").get("extras") or {}
    if arm.name == "finetune":
        return f"{extras.get('train_examples')} (train + documents)"
    if arm.name == "finetune_synthetic":
        return (f"{extras.get('train_examples')} (train + {extras.get('synthetic_examples')} synthetic; "
                f"{extras.get('synthetic_dropped')} near-copies of dev/test inputs dropped)")
    return "-"


def run_lab(n: int, folder: Path) -> None:
    from tunewise.lab import default_world_dir
    from tunewise.lab.model import world_truth
    from tunewise.lab.teacher import asked
    from tunewise.lab.world import QUESTIONS
    from tunewise.pipeline import run
    from tunewise.evaluation.experiment import RunOptions

    path = lab_task(folder)
    task = load_task(path)
    kept: dict[str, list[Outcome]] = {"msifr": [], "filter": []}
    start = time.perf_counter()
    stats = asyncio.run(asynthesize(task, SynthOptions(n=n, out=folder / "synth.jsonl", baseline=True,
                                                       on_sample=lambda o: kept[o.method].append(o))))
    seconds = time.perf_counter() - start
    truth = {(f.subject, f.relation): f.value for f in world_truth(default_world_dir()).facts()}

    def right(o: Outcome) -> bool:
        about = asked(o.input) or next(((s, r) for (s, r) in truth if QUESTIONS[r].format(s=s) == o.input), None)
        return about is not None and truth.get(about) == o.answer

    rows = []
    for method in ("msifr", "filter"):
        m = getattr(stats, method)
        accepted = [o for o in kept[method] if o.accepted]
        rows.append([method, str(m.attempts), str(m.accepted), f"{m.tokens_out:,}", f"{m.tokens_out_per_accepted:.1f}",
                     f"{sum(map(right, accepted)) / len(accepted):.3f}"])
    print(f"\nlab facts: synthetic question-answer pairs from the documents by lab:teacher ({seconds:.1f} s)")
    print(table(["method", "attempts", "accepted", "tokens out", "tokens/accepted", "correct (world truth)"], rows))
    print(f"tokens saved: {stats.tokens_saved_pct:.1f}% ({stats.total_tokens_saved_pct:.1f}% with the prompts)")
    names = sorted({v for stage in stats.msifr.rejections.values() for v in stage})
    print(table(["validator", "msifr S1", "msifr S2", "msifr S3"],
                [[v, *(str(stats.msifr.rejections.get(st, {}).get(v, 0)) for st in ("S1", "S2", "S3"))] for v in names]))
    evaluation = {json.loads(line)["question"]: json.loads(line)["split"] for line in Path(task.data.path).open()}
    test = [q for q, split in evaluation.items() if split == "test"]
    covered = {asked(o.input) for o in kept["msifr"] if o.accepted and right(o)}
    inverse = {QUESTIONS[r].format(s=s): (s, r) for (s, r) in truth}
    print(f"test questions whose fact a correct synthetic pair covers: {sum(inverse[q] in covered for q in test)} of "
          f"{len(test)}; synthetic inputs equal to a task question: "
          f"{sum(o.input in evaluation for o in kept['msifr'] if o.accepted)}")
    start = time.perf_counter()
    summary = run(path, RunOptions(runs_dir=folder / "runs")).summary
    print(f"\nlab facts, test n=170 ({time.perf_counter() - start:.0f} s)")
    print(table(["arm", "score", "95% CI", "trained on"], [
        [a.name, f"{a.score:.3f}", f"{a.ci[0]:.3f}-{a.ci[1]:.3f}",
         _trained_on(a)] for a in summary.arms]))
    pairs = [c for c in summary.comparisons if "finetune_synthetic" in (c.a, c.b)]
    print(table(["pair", "diff", "p (Holm)", "test"], [[f"{c.a} vs {c.b}", f"{c.diff:+.3f}", f"{c.p_holm:.3g}", c.method]
                                                     for c in pairs]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 accepted examples per mode (under a minute)")
    parser.add_argument("--n", type=int, default=None, help="accepted examples wanted per mode")
    parser.add_argument("--lab-n", type=int, default=2000, help="synthetic pairs wanted on the lab (not with --quick)")
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
    if not args.quick:
        with tempfile.TemporaryDirectory() as tmp:
            run_lab(args.lab_n, Path(tmp))
    headline = next(r for r in results if r["name"] == "weak")
    q = headline["quality"]
    print(f"\n({headline['name']} generator) tokens saved: {headline['stats'].tokens_saved_pct:.1f}% at accepted quality "
          f"{q['msifr']:.3f} vs {q['filter']:.3f}")


if __name__ == "__main__":
    main()
