"""Asynchronous evaluation of one arm over the test examples: bounded concurrency, scoring, recording.

The runner, not the arm, applies the metric. Each finished example is appended to the run store
at once, so an interrupted run resumes exactly where it stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from tunewise.arms.base import Answer, Arm, Retrieved
from tunewise.caller import ModelCaller
from tunewise.data import Example
from tunewise.errors import ModelCallError
from tunewise.knowledge.evaluation import answer_hit, recall_at_k, reciprocal_rank
from tunewise.metrics import Metric
from tunewise.store import Result, RunStore


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


def score_pool(metric: Metric, answer: Answer, target: str) -> dict[str, object]:
    """Every candidate of the pool an arm chose from, scored, with the arm's named picks from it."""
    assert answer.candidates is not None
    return {"scores": [score_answer(metric, c, target) for c in answer.candidates], "picks": answer.picks or {}}


def score_retrieval(retrieved: Sequence[Retrieved], example: Example) -> dict[str, object]:
    """recall@k and reciprocal rank against the example's gold documents, or, lacking those, whether a
    retrieved passage contains the gold answer."""
    doc_ids = [r.doc_id for r in retrieved]
    k = len(doc_ids)
    if example.gold_docs:
        recall = recall_at_k(doc_ids, example.gold_docs, k) if k else 0.0
        return {"k": k, "by": "gold_docs", "recall": recall, "rr": reciprocal_rank(doc_ids, example.gold_docs)}
    rank = answer_hit([r.text for r in retrieved], example.target)
    return {"k": k, "by": "answer", "recall": float(rank is not None), "rr": 1.0 / rank if rank else 0.0}


async def evaluate_arm(
    arm: Arm,
    examples: Sequence[Example],
    *,
    caller: ModelCaller,
    metric: Metric,
    store: RunStore,
    concurrency: int,
    progress: ProgressSink | None = None,
) -> None:
    """Answer, score and record every example in `examples` with at most `concurrency` in flight."""
    progress = progress or NoProgress()
    queue: asyncio.Queue[Example] = asyncio.Queue()
    for example in examples:
        queue.put_nowait(example)

    async def work() -> None:
        while True:
            try:
                example = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            lm = caller.for_example(arm.name, example.id)
            try:
                answer = await arm.answer(example, lm)
                output, error, meta, score = answer.text, None, answer.meta, 0.0
                if answer.retrieved is not None:
                    meta = {**meta, "retrieval": score_retrieval(answer.retrieved, example)}
            except ModelCallError as e:
                output, error, meta, score = "", str(e), {}, 0.0
            else:
                try:
                    score = score_answer(metric, output, example.target)
                    if answer.candidates is not None:
                        meta = {**meta, "pool": score_pool(metric, answer, example.target)}
                except Exception as e:  # noqa: BLE001 - a custom metric's bug is recorded, not fatal
                    error = f"metric failed: {type(e).__name__}: {e}"
            u = lm.usage
            result = Result(
                arm=arm.name,
                example_id=example.id,
                output=output,
                target=example.target,
                score=score,
                error=error,
                calls=u.calls,
                cached_calls=u.cached_calls,
                tokens_in=u.tokens_in,
                tokens_out=u.tokens_out,
                cost=u.cost,
                fresh_cost=u.fresh_cost,
                latency_ms=u.latency_ms,
                meta=meta,
                input=example.input,
            )
            store.append(result)
            progress.advance(arm.name, result)

    workers = [asyncio.create_task(work()) for _ in range(max(1, min(concurrency, len(examples))))]
    try:
        await asyncio.gather(*workers)
    finally:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
