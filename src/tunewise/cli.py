"""The `tunewise` command: parses, calls the library, prints. Heavy imports live inside commands."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from tunewise.decide.schema import Summary

app = typer.Typer(
    help="Prompt, retrieve, vote, or fine-tune? Measure it on your task.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _runs_folder(path: Path) -> Path:
    """--runs-dir names a folder, or one to make: a file there is one line of error, not a traceback later."""
    from tunewise.files import check_folder

    check_folder(path, "--runs-dir")
    return path


RunsDir = Annotated[
    Path, typer.Option("--runs-dir", help="Where runs are stored.", envvar="TUNEWISE_RUNS_DIR", callback=_runs_folder)
]


class ExecutorKind(str, Enum):
    """`tunewise run --executor`: where test examples are answered."""

    local = "local"
    ray = "ray"


@app.command()
def run(
    task: Annotated[Path, typer.Argument(help="The task file (YAML).")],
    resume: Annotated[Optional[str], typer.Option(help="Continue this run instead of starting a new one.")] = None,
    retry_errors: Annotated[bool, typer.Option("--retry-errors", help="With --resume: redo examples that errored.")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Send every call to the model (answers are still recorded).")] = False,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip unreadable documents (listed in the report).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print summary.json to stdout.")] = False,
    executor: Annotated[Optional[ExecutorKind], typer.Option(
        help="Where test examples are answered: here, or on a Ray cluster (default: the task's `executor:`).")] = None,
    ray_address: Annotated[Optional[str], typer.Option(
        "--ray-address", help="The Ray cluster: auto or ray://host:port (default: start a local Ray).")] = None,
    racing: Annotated[bool, typer.Option(
        "--racing", help="Evaluate in rounds on growing shares of the test split, dropping arms once ruled out.")] = False,
    budget: Annotated[Optional[float], typer.Option(
        "--budget", metavar="USD", help="Stop once the run has spent this many US$ (resumable with a larger one).")] = None,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Evaluate every arm of TASK and recommend one."""
    from tunewise.errors import ModelCallError
    from tunewise.evaluation.experiment import RunOptions, check_inputs
    from tunewise.evaluation.manifest import BUDGET_REACHED

    options = RunOptions(runs_dir=runs_dir, resume=resume, retry_errors=retry_errors, use_cache=not no_cache,
                         skip_bad=skip_bad, executor=executor.value if executor else None, ray_address=ray_address,
                         racing=racing, budget=budget)
    try:
        inputs = check_inputs(task, options)  # bad input is told before the heavy half (decide, report, scipy) loads
    except KeyboardInterrupt:
        raise typer.Exit(130) from None  # nothing was started

    from rich.console import Console

    from tunewise.pipeline import run as run_task
    from tunewise.progress import RichProgress

    console = Console(stderr=True)
    with RichProgress(console) as progress:
        options.progress = progress
        try:
            outcome = run_task(inputs, options)
        except KeyboardInterrupt:
            progress.__exit__()
            run_id = progress.run_id
            hint = f": resume with `tunewise run {task} --resume {run_id}`" if run_id else ""
            console.print(f"interrupted{hint}", soft_wrap=True, highlight=False, markup=False)
            raise typer.Exit(130) from None
        except ModelCallError as e:
            progress.clear()
            if progress.run_id is None:
                raise
            raise ModelCallError(f"{e}; run {progress.run_id} stopped: resume it with "
                                 f"`tunewise run {task} --resume {progress.run_id}` once that is fixed",
                                 status=e.status, stops_run=e.stops_run) from e
    if as_json:
        print(outcome.summary.model_dump_json(indent=2))
    else:
        _print_summary(outcome.summary)
        typer.echo(f"report: {outcome.store.dir / 'report.md'}")
    spent = outcome.summary.budget
    if outcome.summary.status == BUDGET_REACHED and spent is not None:
        console.print(f"budget reached: ${spent.spent:.4g} spent of ${spent.usd:g}; the summary and the reports say what"
                      f" the evidence so far supports; finish with `tunewise run {task} --resume {outcome.store.run_id}"
                      " --budget USD` (a larger one, or none)", soft_wrap=True, highlight=False, markup=False)
        raise typer.Exit(4)  # not done: a script must not take a budget's partial answer for a finished run's


@app.command()
def index(
    target: Annotated[Path, typer.Argument(help="A task file (its `knowledge:`) or a folder of documents.")],
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip unreadable documents and list them.")] = False,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Build or update the retrieval index; unchanged documents are not embedded again."""
    from rich.console import Console

    from tunewise.db import connect
    from tunewise.errors import InputError
    from tunewise.knowledge.task_index import build_index, build_task_index
    from tunewise.progress import StepProgress
    from tunewise.spec import KnowledgeSpec
    from tunewise.taskfile import load_task

    db = connect(runs_dir / "tunewise.db")
    with StepProgress(Console(stderr=True), "embedding") as bar:
        if target.is_dir():
            built = build_index(
                [target.resolve()], KnowledgeSpec(paths=[target]), name=target.resolve().name, db=db,
                runs_dir=runs_dir, skip_bad=skip_bad, progress=bar.update,
            )
        elif target.is_file():
            built = build_task_index(load_task(target), db, runs_dir, skip_bad=skip_bad, progress=bar.update)
        else:
            raise InputError("no such task file or folder", file=target)
    stats = built.stats
    typer.echo(
        f"{built.index.directory}: {stats.documents} documents, {stats.chunks} chunks; "
        f"{stats.added_docs} added, {stats.changed_docs} changed, {stats.removed_docs} removed, "
        f"{stats.unchanged_docs} unchanged; {stats.embedded} chunks embedded now"
    )
    for skipped in built.loaded.skipped:
        typer.echo(f"skipped {skipped.path}: {skipped.reason}")


@app.command()
def runs(runs_dir: RunsDir = Path("runs")) -> None:
    """List the runs, newest first."""
    from rich.console import Console
    from rich.table import Table

    from tunewise.evaluation.store import list_runs

    table = Table("run", "task", "model", "arms", "status")
    for m in list_runs(runs_dir):
        table.add_row(m.get("run_id", "?"), m.get("task", "?"), m.get("model", "?"), ", ".join(m.get("arm_names", [])), m.get("status", "?"))
    Console().print(table)


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(help="A run id (see `tunewise runs`).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Show a run's results (also of a run still going or interrupted)."""
    from tunewise.decide.summary import summary_of
    from tunewise.evaluation.store import RunStore

    store = RunStore.open(runs_dir, run_id)
    summary = summary_of(store)
    if as_json:
        print(summary.model_dump_json(indent=2))
        return
    _print_summary(summary, status=store.manifest.get("status"))


@app.command()
def report(
    run_id: Annotated[str, typer.Argument(help="A run id (see `tunewise runs`).")],
    price_in: Annotated[Optional[float], typer.Option("--price-in", help="US$ per 1M input tokens.")] = None,
    price_out: Annotated[Optional[float], typer.Option("--price-out", help="US$ per 1M output tokens.")] = None,
    price_train: Annotated[Optional[float], typer.Option("--price-train", help="US$ per 1M trained tokens.")] = None,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Write a run's summary.json, report.md and report.html again from its stored results, priced at the task
    file's prices as they are now (or the ones given); no model is called."""
    from tunewise.evaluation.store import RunStore
    from tunewise.report import priced_model, report_run

    model = priced_model(RunStore.open(runs_dir, run_id).manifest, price_in=price_in, price_out=price_out,
                         price_train=price_train)
    for path in report_run(run_id, runs_dir, model=model).values():
        typer.echo(path)
    if model is not None:
        typer.echo(f"priced at ${model.price_in_per_1m:g} in, ${model.price_out_per_1m:g} out,"
                   f" ${model.price_train_per_1m:g} trained per 1M tokens")


@app.command()
def compare(
    run_a: Annotated[str, typer.Argument(help="The earlier run.")],
    run_b: Annotated[str, typer.Argument(help="The later run.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """What changed from RUN_A to RUN_B: per arm, score, cost and latency, and which changes are significant."""
    from rich.console import Console
    from rich.table import Table

    from tunewise.decide.compare import compare_runs
    from tunewise.decide.costs import money

    result = compare_runs(run_a, run_b, runs_dir)
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    out = Console()
    table = Table("arm", "score A → B", "Δ score", "$/1k A → B", "p95 ms A → B", "change", title=f"{run_a} → {run_b}")
    for c in result.arms:
        if c.a is None or c.b is None:
            table.add_row(c.name, "", "", "", "", c.note)
            continue
        table.add_row(
            c.name, f"{c.a.score:.3f} → {c.b.score:.3f}", f"{c.score_delta:+.3f}",
            f"{money(c.a.cost_per_1k)} → {money(c.b.cost_per_1k)}", f"{c.a.p95_latency_ms:.0f} → {c.b.p95_latency_ms:.0f}", c.note,
        )
    out.print(table)
    if not result.same_task:
        out.print("the task or its data differ between the runs", highlight=False)
    ra, rb = result.recommendation_a, result.recommendation_b
    out.print(f"recommendation: {ra.arm} → {rb.arm}" + ("" if ra.arm != rb.arm else " (unchanged)"), highlight=False)
    for s in result.settings:
        out.print(f"  {s.key}: {s.a} → {s.b}", highlight=False, markup=False)


@app.command()
def demo(
    quick: Annotated[bool, typer.Option("--quick", help="Small lab model, 40 test examples per task (for tests).")] = False,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Build (or reuse) the offline lab and run every arm on its tasks: no network, no API key."""
    import asyncio

    from rich.console import Console

    from tunewise.demo import arun_demo
    from tunewise.progress import RichProgress, TrainingProgress

    console = Console(stderr=True)
    with TrainingProgress(console, "lab model") as training, RichProgress(console) as progress:
        result = asyncio.run(arun_demo(runs_dir=runs_dir, quick=quick, progress=progress, on_training=training.update))
    typer.echo(f"lab world: {result.world}")
    typer.echo(f"lab model: {result.model}")
    for outcome in result.outcomes:
        summary = outcome.summary
        rec = summary.recommendation
        scores = ", ".join(f"{a.name} {a.score:.2f} [{a.ci[0]:.2f}, {a.ci[1]:.2f}]" for a in summary.arms)
        typer.echo(f"{summary.task}: recommend {rec.arm} ({scores})")
        typer.echo(f"  report: {outcome.store.dir / 'report.html'}")


lab_app = typer.Typer(help="Build lab worlds and lab models (the offline ground truth).", no_args_is_help=True)
app.add_typer(lab_app, name="lab")


@lab_app.command("world")
def lab_world(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the world into.")],
    seed: Annotated[int, typer.Option("--seed", help="Same seed, byte-identical world.")] = 0,
) -> None:
    """Write a lab world: documents, and task files with their data."""
    from tunewise.lab import build_world

    typer.echo(build_world(seed, out))


@lab_app.command("model")
def lab_model(
    world: Annotated[Optional[Path], typer.Option("--world", help="A folder written by `tunewise lab world`.")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A small model in about a minute (for tests).")] = False,
    verify: Annotated[bool, typer.Option(
        "--verify", help="Rebuild the shipped lab model (or --model) from its recipe and compare content hashes.")] = False,
    model: Annotated[Optional[Path], typer.Option("--model", help="With --verify: the lab model folder to check.")] = None,
) -> None:
    """Train (or reuse from the cache) the lab model of a world and print its folder (an hf: model), or with
    --verify check that a lab model is what its recipe builds (one line; exit status 1 when it is not)."""
    from rich.console import Console

    from tunewise.lab import build_model, verify_model
    from tunewise.progress import TrainingProgress

    if verify == (world is not None) or (model is not None and not verify):
        typer.echo("error: give --world to build a lab model, or --verify [--model DIR] to check one", err=True)
        raise typer.Exit(2)
    if world is not None:
        with TrainingProgress(Console(stderr=True), "lab model") as training:
            path = build_model(world, quick=quick, progress=training.update)
        typer.echo(path)
        return
    try:
        with TrainingProgress(Console(stderr=True), "lab model (rebuild)") as training:
            result = verify_model(model, progress=training.update)
    except (FileNotFoundError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if not result.ok:
        typer.echo(f"error: {result.model} is not what its recipe builds: {', '.join(result.differing)} differ "
                   f"(weights sha256 {result.expected or 'missing'}, rebuilt {result.rebuilt or 'missing'})", err=True)
        raise typer.Exit(1)
    typer.echo(f"verified: {result.model} is what its recipe builds (weights sha256 {result.expected})")


finetune_app = typer.Typer(help="Fine-tuning data, for training elsewhere.", no_args_is_help=True)
app.add_typer(finetune_app, name="finetune")


@finetune_app.command("export")
def finetune_export(
    task: Annotated[Path, typer.Argument(help="The task file (YAML).")],
    out: Annotated[Path, typer.Option("--out", help="The JSONL file to write.")],
    split: Annotated[str, typer.Option("--split", help="train, or dev for a validation file.")] = "train",
    documents: Annotated[
        bool, typer.Option("--documents", help="Add the task's knowledge documents, a conversation per chunk.")
    ] = False,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Write a split as chat fine-tuning JSONL: the prompt the finetune arm uses, then the answer."""
    from tunewise.data import load_dataset
    from tunewise.errors import InputError
    from tunewise.finetune.export import conversations, document_conversations, write_jsonl
    from tunewise.taskfile import load_task

    if split not in ("train", "dev"):
        raise InputError(f"--split must be train or dev, not '{split}' (test examples are never trained on)")
    spec = load_task(task)
    examples = getattr(load_dataset(spec), split)
    convs = conversations(spec, examples)
    if documents:
        from tunewise.db import connect
        from tunewise.knowledge.task_index import build_task_index

        convs += document_conversations(build_task_index(spec, connect(runs_dir / "tunewise.db"), runs_dir).index.chunks())
    write_jsonl(convs, out)
    chunks = f" and {len(convs) - len(examples)} document chunks" if documents else ""
    typer.echo(f"{out}: {len(examples)} {split} conversations{chunks}")


@app.command()
def serve(
    run_id: Annotated[str, typer.Argument(help="A run id (see `tunewise runs`).")],
    arm: Annotated[Optional[str], typer.Option("--arm", help="The arm to serve (default: the run's recommendation).")] = None,
    host: Annotated[str, typer.Option("--host", help="The address to bind (loopback unless you say otherwise).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="The port to bind.")] = 8000,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Serve without API keys.")] = False,
    api_keys_file: Annotated[
        Optional[Path], typer.Option("--api-keys-file", help="A file of the keys' sha256 hex digests, one a line.")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Send every call to the model (answers are still stored).")] = False,
    rate_limit: Annotated[float, typer.Option("--rate-limit", help="Requests a minute per key.")] = 600.0,
    max_body_bytes: Annotated[int, typer.Option("--max-body-bytes", help="Larger request bodies get a 413.")] = 1_000_000,
    max_input_chars: Annotated[int, typer.Option("--max-input-chars", help="Longer queries get a 400.")] = 20_000,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds a request may take before a 504.")] = 120.0,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Serve the arm RUN_ID measured as an OpenAI-compatible API (keys from TUNEWISE_API_KEYS); SIGTERM drains."""
    import asyncio

    from tunewise.serve import Keys, Limits, ServedArm, serve as serve_arm

    keys = Keys.load(keys_file=api_keys_file, no_auth=no_auth)
    limits = Limits(max_body_bytes=max_body_bytes, max_input_chars=max_input_chars, timeout_s=timeout,
                    per_minute=rate_limit)

    def ready(served: ServedArm, url: str) -> None:
        typer.echo(f"serving {served.model_id} (run {served.run_id}) at {url}" + ("" if keys.required else ", no auth"))

    asyncio.run(serve_arm(run_id, runs_dir, arm=arm, host=host, port=port, keys=keys, limits=limits,
                          read_cache=not no_cache, on_ready=ready))


@app.command()
def traffic(
    run_id: Annotated[str, typer.Argument(help="A run whose arm was served.")],
    out: Annotated[Path, typer.Option("--out", help="The JSONL file to write.")],
    arm: Annotated[Optional[str], typer.Option("--arm", help="Only what this arm answered.")] = None,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Write the queries served for RUN_ID as a data file of the task's input fields, ready to label."""
    from tunewise.db import connect
    from tunewise.evaluation.store import RunStore
    from tunewise.serve.traffic import export

    RunStore.open(runs_dir, run_id)
    count = export(connect(runs_dir / "tunewise.db"), run_id, out, arm=arm)
    typer.echo(f"{out}: {count} served queries")


@app.command()
def synth(
    task: Annotated[Path, typer.Argument(help="The task file (YAML) with a `synth:` block.")],
    n: Annotated[int, typer.Option("--n", min=1, help="How many accepted examples to write.")],
    out: Annotated[Path, typer.Option("--out", help="The chat JSONL to write (stats and the sample log go beside).")],
    baseline: Annotated[bool, typer.Option(
        "--baseline", help="Also generate every attempt in full and filter at the end, to compare tokens.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stats as JSON.")] = False,
) -> None:
    """Generate synthetic training examples with multi-stage in-flight rejection; a second call resumes."""
    from rich.console import Console

    from tunewise.progress import SynthProgress
    from tunewise.synth.run import SynthOptions, synthesize
    from tunewise.taskfile import load_task

    spec = load_task(task)
    with SynthProgress(Console(stderr=True), n) as bar:
        stats = synthesize(spec, SynthOptions(n=n, out=out, baseline=baseline, on_sample=bar.update))
    if as_json:
        typer.echo(stats.model_dump_json(indent=2))
        return
    typer.echo(f"{out}: {stats.written} examples ({stats.msifr.accepted} accepted of {stats.msifr.attempts} attempts, "
               f"{stats.msifr.tokens_out:,} tokens generated)")
    if stats.filter is not None:
        typer.echo(f"generate-then-filter: {stats.filter.accepted} accepted of {stats.filter.attempts}, "
                   f"{stats.filter.tokens_out:,} tokens; tokens saved per accepted example: {stats.tokens_saved_pct}%")


@app.command()
def init(
    data: Annotated[Path, typer.Argument(help="Your examples: .jsonl, .ndjson, .csv or .parquet.")],
    docs: Annotated[Optional[Path], typer.Option(
        "--docs", metavar="FOLDER", help="Documents (a folder or a file) to look answers up in: adds retrieval arms.",
    )] = None,
    inputs: Annotated[Optional[list[str]], typer.Option(
        "--input", metavar="FIELD", help="The input field; repeat for several (default: detected).")] = None,
    output: Annotated[Optional[str], typer.Option(
        "--output", metavar="FIELD", help="The output field (default: detected).")] = None,
    out: Annotated[Path, typer.Option("--out", help="The task file to write.")] = Path("task.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")] = False,
) -> None:
    """Write a commented task file for DATA: fields, split, metric and arms chosen from the data, each saying why."""
    from tunewise.scaffold import scaffold_task

    drafted = scaffold_task(data, task_path=out, docs=docs, input_fields=inputs, output=output)
    drafted.write(force=force)
    shown = drafted.input if isinstance(drafted.input, str) else ", ".join(drafted.input)
    sizes = drafted.sizes
    typer.echo(f"{out}: input {shown}, output {drafted.output}, metric {drafted.metric}, arms {', '.join(drafted.arms)};"
               f" {sizes['train']} train, {sizes['dev']} dev, {sizes['test']} test examples")
    typer.echo(f"next: set model.uri in {out}, then: tunewise run {out}")


def _print_summary(summary: Summary, status: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    from tunewise.report.content import arm_table

    out = Console()
    arms = arm_table(summary)
    table = Table(*arms.headers, title=f"{summary.task} — {summary.run_id}" + (f" ({status})" if status else ""))
    for row in arms.rows:
        table.add_row(*row)
    out.print(table)
    rec = summary.recommendation
    out.print(f"recommendation: [bold]{rec.arm}[/bold] ({'meets' if rec.meets_requirements else 'does not meet'} the requirements)")
    for reason in rec.reasons:
        out.print(f"  - {reason}", highlight=False)


EXIT_BAD_INPUT = 2  # a task, data, document or run file is wrong
EXIT_MODEL_FAILED = 3  # a model or server failed for good (a refused key, no such model, no server, a failed job)


def main() -> None:
    """Console entry point: errors tunewise raises on purpose become one line on stderr, `error: <what>`, and an
    exit status saying whose they are: 2 bad input, 3 a model or server that fails (0 done, 130 interrupted)."""
    from tunewise.errors import ModelCallError, TunewiseError

    try:
        app()
    except ModelCallError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_MODEL_FAILED)
    except TunewiseError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


if __name__ == "__main__":
    main()
