"""Asynchronous evaluation of examples: bounded concurrency, scoring, recording.

One loop serves both evaluations a run makes: an arm's answers to the test examples (each recorded in the
run store as it finishes, so an interrupted run resumes where it stopped) and the train examples an arm's
`prepare` asks to be evaluated (`PrepareEvaluator`). The runner, not the arm, holds targets and applies the
metric: an arm is handed `example.query` only when it answers a test example.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from tunewise.arms.base import Answer, AnswerFn, Arm, Evaluated, PoolScores, Result, Retrieved, RetrievalScore
from tunewise.calls.caller import ExampleCaller, ModelCaller, Usage
from tunewise.data import Example
from tunewise.errors import ModelCallError
from tunewise.knowledge.evaluation import answer_hit, recall_at_k, reciprocal_rank
from tunewise.metrics import Metric
from tunewise.verify.groundedness import grounded


class ProgressSink(Protocol):
    """Where a run reports progress (a rich bar in the CLI; nothing in library use)."""

    def start_run(self, run_id: str, directory: str) -> None: ...

    def start_arm(self, arm: str, total: int, done: int) -> None: ...

    def advance(self, arm: str, result: Result) -> None: ...

    def training(self, arm: str, step: int, total: int, loss: float) -> None: ...


class NoProgress:
    def start_run(self, run_id: str, directory: str) -> None:
        pass

    def start_arm(self, arm: str, total: int, done: int) -> None:
        pass

    def advance(self, arm: str, result: Result) -> None:
        pass

    def training(self, arm: str, step: int, total: int, loss: float) -> None:
        pass


def score_answer(metric: Metric, output: str, target: str) -> float:
    """The metric's score, clamped to [0, 1]."""
    return min(1.0, max(0.0, float(metric(output, target))))


def score_retrieval(retrieved: Sequence[Retrieved], example: Example) -> RetrievalScore:
    """recall@k and reciprocal rank against the example's gold documents, or, lacking those, whether a
    retrieved passage contains the gold answer."""
    doc_ids = [r.doc_id for r in retrieved]
    k = len(doc_ids)
    if example.gold_docs:
        recall = recall_at_k(doc_ids, example.gold_docs, k) if k else 0.0
        return RetrievalScore(k, "gold_docs", recall, reciprocal_rank(doc_ids, example.gold_docs))
    rank = answer_hit([r.text for r in retrieved], example.target)
    return RetrievalScore(k, "answer", float(rank is not None), 1.0 / rank if rank else 0.0)


def scored(arm: str, example: Example, answer: Answer | None, error: str | None, metric: Metric, usage: Usage) -> Result:
    """An answer (None when its calls failed) as a Result: scored, its pool and its retrieval scored too, and
    whether it is stale (full marks against one of the example's stale answers, as the metric judges, and not
    against the target), abstained, and grounded in the passages retrieved. An abstention is never stale, nor
    checked for groundedness."""
    result = Result(
        arm=arm, example_id=example.id, output="", target=example.target, score=0.0, error=error,
        calls=usage.calls, cached_calls=usage.cached_calls, tokens_in=usage.tokens_in, tokens_out=usage.tokens_out,
        cost=usage.cost, fresh_cost=usage.fresh_cost, latency_ms=usage.latency_ms, input=example.input,
    )
    if answer is None:
        return result
    result.output = answer.text
    result.meta = answer.meta.model_dump(mode="json") if answer.meta is not None else {}
    result.abstained = answer.abstained is not None
    if answer.retrieved is not None:
        result.retrieval = score_retrieval(answer.retrieved, example)
        if answer.retrieved and not result.abstained:
            result.grounded = grounded(answer.text, [r.text for r in answer.retrieved])
    try:
        result.score = score_answer(metric, answer.text, example.target)
        if example.stale_answers:
            result.stale = not result.abstained and result.score < 1 and any(
                score_answer(metric, answer.text, s) == 1 for s in example.stale_answers)
        if answer.candidates is not None:
            pool = [score_answer(metric, c, example.target) for c in answer.candidates]
            result.pool = PoolScores(pool, answer.picks or {})
    except Exception as e:  # noqa: BLE001 - a custom metric's bug is recorded, not fatal
        result.score, result.stale, result.error = 0.0, None, f"metric failed: {type(e).__name__}: {e}"
    return result


@dataclass
class Answered:
    """An arm's answer to one example (None when its calls failed, with the error), and what its calls took:
    everything the runner scores it from but the target."""

    answer: Answer | None
    error: str | None
    usage: Usage


async def answered(arm: str, lm: ExampleCaller, answer: Callable[[ExampleCaller], Awaitable[Answer]]) -> Answered:
    """`answer(lm)`, a model call that failed for good being its error; one that stops the run
    (`ModelCallError.stops_run`: every other call would fail alike) is raised, naming the arm."""
    try:
        return Answered(await answer(lm), None, lm.usage)
    except ModelCallError as e:
        if e.stops_run:
            raise ModelCallError(f"arm '{arm}': {e}", status=e.status, request_id=e.request_id, stops_run=True) from e
        return Answered(None, str(e), lm.usage)


async def evaluate(
    arm: str,
    examples: Sequence[Example],
    answer: AnswerFn,
    *,
    caller: ModelCaller,
    metric: Metric,
    concurrency: int,
    on_result: Callable[[Result], None],
    stop: Callable[[], bool] | None = None,
) -> None:
    """Answer and score every example with at most `concurrency` in flight, handing each Result to `on_result`
    as it finishes. A model call that fails for good is that example's error, unless the endpoint refuses every
    call (`ModelCallError.stops_run`): then the evaluation stops with it, the examples in flight unrecorded (a
    resumed run answers them). Nothing else is caught. Once `stop()` is true no example is started; those in
    flight finish and are handed on (a budget reached)."""
    queue: asyncio.Queue[Example] = asyncio.Queue()
    for example in examples:
        queue.put_nowait(example)

    async def work() -> None:
        while stop is None or not stop():
            try:
                example = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            lm = caller.for_example(arm, example.id if example.split == "test" else f"{example.split}:{example.id}")
            done = await answered(arm, lm, functools.partial(answer, example))
            on_result(scored(arm, example, done.answer, done.error, metric, done.usage))

    workers = [asyncio.create_task(work()) for _ in range(max(1, min(concurrency, len(examples))))]
    try:
        await asyncio.gather(*workers)
    finally:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


async def evaluate_arm(
    arm: Arm,
    examples: Sequence[Example],
    *,
    caller: ModelCaller,
    metric: Metric,
    concurrency: int,
    on_result: Callable[[Result], None],
    stop: Callable[[], bool] | None = None,
) -> None:
    """The arm's answers to test examples: it is handed each example's query, never its target."""

    async def answer(example: Example, lm: ExampleCaller) -> Answer:
        return await arm.answer(example.query, lm)

    await evaluate(arm.name, examples, answer, caller=caller, metric=metric, concurrency=concurrency,
                   on_result=on_result, stop=stop)


class PrepareEvaluator:
    """`ArmContext.evaluate`: train examples an arm's `prepare` needs evaluated, with the run's metric,
    concurrency, cache, error policy and progress. Holds no test example."""

    def __init__(self, caller: ModelCaller, metric: Metric, concurrency: int, progress: ProgressSink | None = None):
        self.caller = caller
        self.metric = metric
        self.concurrency = concurrency
        self.progress = progress or NoProgress()

    async def __call__(self, arm: str, examples: Sequence[Example], answer: AnswerFn, *, label: str) -> Evaluated:
        if any(e.split == "test" for e in examples):
            raise ValueError("prepare-time evaluation is for train and dev examples; test examples are the runner's")
        row = f"{arm} {label}"
        self.progress.start_arm(row, len(examples), 0)
        results: dict[str, Result] = {}

        def keep(result: Result) -> None:
            results[result.example_id] = result
            self.progress.advance(row, result)

        await evaluate(arm, examples, answer, caller=self.caller, metric=self.metric, concurrency=self.concurrency,
                       on_result=keep)
        return Evaluated([results[e.id] for e in examples])
