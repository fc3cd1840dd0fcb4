"""The ray executor on a real local Ray (one per module): the same results as the local executor, a run that resumes
across executors without re-sending a call (stopped by an endpoint refusing every call, as a local run stops), and
a worker killed mid-task."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from openai_server import OpenAITestServer
from test_rag import write_knowledge_task
from test_resume import recorded_requests
from typer.testing import CliRunner

from tunewise.cli import app, main
from tunewise.data import Query
from tunewise.errors import InputError, ModelCallError
from tunewise.evaluation.executors import NEEDS_RAY
from tunewise.evaluation.executors.worker import ArmWorker, Refused, Reply, WorkerRun
from tunewise.decide.summary import racing_drops, summary_of
from tunewise.evaluation.experiment import RunOptions, aevaluate, check_inputs
from tunewise.evaluation.runner import NoProgress
from tunewise.evaluation.store import RunStore

ARMS = [
    "zero_shot",
    {"few_shot": {"k": 2}},
    {"arm": "few_shot", "name": "bootstrap", "k": 2, "selector": "bootstrap", "max_bootstrap": 8},
    {"rag": {"k": 2, "retriever": "dense"}},
]
NAMES = {"zero_shot", "few_shot", "bootstrap", "rag"}
TEST_EXAMPLES = 10  # per arm


@pytest.fixture(scope="module")
def fleet():
    """The loopback OpenAI-compatible server the workers call (chat and embeddings)."""
    with OpenAITestServer(max_lifetime_s=600) as s:
        yield s


@pytest.fixture(scope="module")
def cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024**2, logging_level=logging.ERROR,
             log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        yield ray
    finally:
        ray.shutdown()


def write_task(root: Path, base_url: str, **extra: object) -> Path:
    """The capitals task with documents (embedded by the loopback server) and four arms, 10 test examples each."""
    task = write_knowledge_task(root, base_url, ARMS)
    spec = yaml.safe_load(task.read_text())
    spec["knowledge"]["embedder"] = {"uri": "openai:bow", "base_url": base_url}
    task.write_text(yaml.safe_dump({**spec, **extra}, sort_keys=False))
    return task


def evaluate(task: Path, options: RunOptions) -> RunStore:
    """The run's evaluation (no reports: not what is under test here)."""
    return asyncio.run(aevaluate(task, options))


@pytest.fixture(scope="module")
def local(tmp_path_factory, fleet):
    """The task run on the local executor: what the Ray runs must equal."""
    root = tmp_path_factory.mktemp("local")
    return evaluate(write_task(root / "task", fleet.base_url), RunOptions(runs_dir=root / "runs"))


def results(store: RunStore, *ignored: str) -> dict[tuple[str, str], object]:
    skip = {"latency_ms", *ignored}
    return {(r.arm, r.example_id): dataclasses.replace(r, **{f: type(getattr(r, f))() for f in skip})
            for r in store.latest().values()}


def ledger(store: RunStore, db: Path) -> Counter:
    """The run's call log, each row with the response it points at."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT c.arm, c.example_id, c.key, c.sample, c.cache_hit, c.tokens_in, c.tokens_out, c.cost, c.error,"
            " r.key, r.text FROM calls c LEFT JOIN responses r ON r.id = c.response_id WHERE c.run_id = ?",
            (store.run_id,)).fetchall()
    finally:
        conn.close()
    return Counter(rows)


def count(db: Path, sql: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


def without_latency(store: RunStore) -> list[dict]:
    """The summary's arms but what latency decides (the latencies, and the Pareto front they are an axis of)."""
    summary = summary_of(store).model_dump(mode="json")
    return [{k: v for k, v in arm.items() if "latency" not in k and k != "pareto"} for arm in summary["arms"]]


class LockAfter(NoProgress):
    """Once `n` test results (of arm `only`, if given) are recorded, the endpoint demands a key the task does not
    have: every later call is refused (401), which stops a run (prepare-time results are not counted)."""

    def __init__(self, fleet: OpenAITestServer, n: int, only: str | None = None):
        self.fleet, self.n, self.seen, self.only = fleet, n, 0, only

    def advance(self, arm: str, result: object) -> None:
        if arm in NAMES and arm == (self.only or arm):
            self.seen += 1
            if self.seen == self.n:
                self.fleet.api_key = "sk-not-the-tasks"


@pytest.mark.slow
def test_the_same_task_on_ray_gives_the_results_of_the_local_executor(tmp_path, cluster, fleet, local):
    task = write_task(tmp_path / "task", fleet.base_url)
    runs = tmp_path / "runs"
    on_ray = evaluate(task, RunOptions(runs_dir=runs, executor="ray"))

    assert len(on_ray.results()) == len(ARMS) * TEST_EXAMPLES
    assert results(on_ray) == results(local)  # outputs, scores, tokens, calls, costs, retrieval, meta
    assert without_latency(on_ray) == without_latency(local)
    assert summary_of(on_ray).recommendation.arm == summary_of(local).recommendation.arm
    assert ledger(on_ray, runs / "tunewise.db") == ledger(local, local.dir.parent / "tunewise.db")
    # The workers answered: the rag arm's query vectors were computed on their read-only database, not kept.
    embedded = "SELECT count(*) FROM embeddings"
    assert count(runs / "tunewise.db", embedded) == count(local.dir.parent / "tunewise.db", embedded) - TEST_EXAMPLES
    (entry,) = json.loads((on_ray.dir / "manifest.json").read_text())["executors"]
    assert entry["executor"] == "ray" and entry["workers"] == 2


@pytest.mark.slow
def test_a_racing_run_on_ray_answers_round_by_round_as_the_local_executor(tmp_path, cluster, fleet):
    """Rounds of 3, 6 and 10 examples: each round sends the arms still in the race to the workers again (each worker
    rebuilding the arm it is sent), and the race records what a local race records."""
    task = write_task(tmp_path / "task", fleet.base_url, racing={"rounds": [0.3, 0.6, 1.0]})
    here = evaluate(task, RunOptions(runs_dir=tmp_path / "local", race=racing_drops))
    on_ray = evaluate(task, RunOptions(runs_dir=tmp_path / "ray", executor="ray", race=racing_drops))
    assert json.loads((on_ray.dir / "manifest.json").read_text())["racing"]["sizes"] == [3, 6, 10]
    assert results(on_ray) == results(here)
    assert summary_of(on_ray).racing == summary_of(here).racing


def stopped(task: Path, options: RunOptions, fleet: OpenAITestServer) -> ModelCallError:
    """The error that stopped the run (the endpoint locked by `options.progress`), the endpoint open again."""
    try:
        with pytest.raises(ModelCallError) as stop:
            evaluate(task, options)
    finally:
        fleet.api_key = None
    return stop.value


def run_ids(runs: Path) -> list[str]:
    return [d.name for d in runs.iterdir() if d.is_dir() and d.name != "indexes"]


@pytest.mark.slow
def test_a_run_started_local_resumes_on_ray_and_back_without_sending_a_call_twice(tmp_path, cluster, fleet, local):
    task = write_task(tmp_path / "task", fleet.base_url, executor={"kind": "ray", "workers": 1})
    runs, db = tmp_path / "runs", tmp_path / "runs" / "tunewise.db"
    start = len(fleet.log.completed())

    on_local = stopped(task, RunOptions(runs_dir=runs, executor="local", progress=LockAfter(fleet, 7)), fleet)
    (run_id,) = run_ids(runs)
    stages = [(recorded_requests(db), len(fleet.log.completed()))]
    # Locked at few_shot's first result, when at most a worker's concurrency of its queries had been sent: the
    # rest are refused on the worker, whatever share of zero_shot the local run left over.
    on_ray = stopped(task, RunOptions(runs_dir=runs, resume=run_id, progress=LockAfter(fleet, 1, only="few_shot")),
                     fleet)  # the task's executor
    stages.append((recorded_requests(db), len(fleet.log.completed())))
    assert json.loads((runs / run_id / "manifest.json").read_text())["status"] == "interrupted"
    # The refused calls on the workers stopped the run as they stop a local one, and were logged by the driver.
    assert on_ray.stops_run and str(on_ray).startswith("arm 'few_shot': ")
    assert str(on_ray).partition(": ")[2] == str(on_local).partition(": ")[2]
    assert count(db, "SELECT count(*) FROM calls WHERE error LIKE '%401%' AND arm = 'few_shot'") >= 1

    done = CliRunner().invoke(app, ["run", str(task), "--resume", run_id, "--executor", "local", "--runs-dir", str(runs)])
    assert done.exit_code == 0, done.output

    for recorded, sent in stages:
        assert not set(fleet.log.completed()[sent:]) & recorded, "a call recorded before it stopped was sent again"
    sent = Counter(fleet.log.completed()[start:])
    assert sum(n - 1 for n in sent.values()) <= 4 + 4  # at most the calls in flight when each stopped
    store = RunStore.open(runs, run_id)
    assert results(store, "cached_calls", "fresh_cost") == results(local, "cached_calls", "fresh_cost")
    manifest = json.loads((store.dir / "manifest.json").read_text())
    assert [e["executor"] for e in manifest["executors"]] == ["local", "ray", "local"]
    assert manifest["status"] == "complete"


class KillAWorker(NoProgress):
    """SIGKILLs the run's Ray worker once `n` results are recorded (it then holds queries in flight), and asks the
    restarted one its process id a few results later."""

    def __init__(self, ray, n: int):
        self.ray, self.n, self.seen = ray, n, 0
        self.killed = self.restarted = None

    def start_run(self, run_id: str, directory: str) -> None:
        self.run_id = run_id

    def advance(self, arm: str, result: object) -> None:
        self.seen += 1
        if self.seen == self.n:
            (name,) = [n for n in self.ray.util.list_named_actors() if n.startswith(f"tunewise:{self.run_id}:")]
            self.actor = self.ray.get_actor(name)
            self.killed = self.ray.get(self.actor.pid.remote())
            os.kill(self.killed, signal.SIGKILL)
        elif self.seen == self.n + 20:
            self.restarted = self.ray.get(self.actor.pid.remote())


@pytest.mark.slow
def test_a_worker_killed_mid_task_loses_nothing_and_records_nothing_twice(tmp_path, cluster, fleet):
    from capitals import write_capitals_task

    # zero_shot and few_shot, 32 test examples; one worker: Ray restarts it and sends it the queries it had
    task = write_capitals_task(tmp_path / "task", fleet.base_url, executor={"kind": "ray", "workers": 1})
    clean = evaluate(task, RunOptions(runs_dir=tmp_path / "clean", executor="local"))
    runs = tmp_path / "runs"
    killer = KillAWorker(cluster, 3)
    fleet.delay_s = 0.05  # answers take long enough that the killed worker has queries in flight
    try:
        store = evaluate(task, RunOptions(runs_dir=runs, progress=killer))
    finally:
        fleet.delay_s = 0.0
    assert killer.killed is not None and killer.restarted not in (None, killer.killed)

    lines = [json.loads(line) for line in (store.dir / "results.jsonl").read_text().splitlines()]
    assert len(lines) == len({(r["arm"], r["example_id"]) for r in lines}) == 64
    assert results(store, "cached_calls", "fresh_cost") == results(clean, "cached_calls", "fresh_cost")
    db = runs / "tunewise.db"
    assert count(db, "SELECT count(*) - count(DISTINCT key || ':' || sample) FROM responses") == 0
    logged = Counter((arm, example) for arm, example, *_ in ledger(store, db).elements())
    assert all(logged[(r.arm, r.example_id)] == r.calls for r in store.results())  # no call logged twice


def test_a_worker_rebuilds_the_prepared_arm_answers_as_the_run_did_and_writes_nothing(local, tmp_path):
    runs = local.dir.parent
    db = runs / "tunewise.db"
    recorded = next(r for r in local.results() if r.arm == "bootstrap")
    query = Query(recorded.example_id, recorded.input)
    before = (count(db, "SELECT count(*) FROM calls"), count(db, "SELECT count(*) FROM responses"))

    async def ask(run: WorkerRun) -> object:
        worker = ArmWorker(run)
        try:
            return await worker.answer("bootstrap", query)
        finally:
            await worker.aclose()

    reply = asyncio.run(ask(WorkerRun(runs, local.run_id, db, read_cache=True)))
    assert isinstance(reply, Reply) and reply.answered.answer.text == recorded.output
    assert [c.cached for c in reply.writes.calls] == [True] and reply.writes.responses == ()
    assert (count(db, "SELECT count(*) FROM calls"), count(db, "SELECT count(*) FROM responses")) == before

    elsewhere = asyncio.run(ask(WorkerRun(tmp_path / "runs", local.run_id, db, read_cache=True)))
    assert isinstance(elsewhere, Refused) and "every Ray node must see the runs folder at the same path" in elsewhere.message


def test_an_executor_that_cannot_be_had_is_one_line_of_bad_input(tmp_path, monkeypatch, capsys, local):
    task = Path(local.manifest["task_path"])
    with pytest.raises(InputError, match="^--ray-address is for --executor ray$"):
        check_inputs(task, RunOptions(runs_dir=tmp_path / "runs", executor="local", ray_address="auto"))

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(InputError, match="needs Ray"):
        check_inputs(task, RunOptions(runs_dir=tmp_path / "runs", executor="ray"))

    from tunewise.evaluation.executors.ray import RayExecutor
    from tunewise.spec import ExecutorSpec

    with pytest.raises(InputError, match="needs Ray"):
        asyncio.run(RayExecutor.start(ExecutorSpec(kind="ray"), WorkerRun(tmp_path, "r", tmp_path / "db", True)))

    monkeypatch.setattr(sys, "argv", ["tunewise", "run", str(task), "--runs-dir", str(tmp_path / "runs"),
                                      "--ray-address", "auto"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert capsys.readouterr().err == f"error: {NEEDS_RAY}\n"
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
