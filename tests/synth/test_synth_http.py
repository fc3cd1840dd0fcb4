"""tunewise synth against a real OpenAI-compatible server on loopback, streamed: a closed stream stops the server."""

from __future__ import annotations

import asyncio
import json

from openai_server import OpenAITestServer
from synth_writer import ScriptedGenerator, pieces, write, write_problems_task

from tunewise.data import load_dataset
from tunewise.synth.run import SynthOptions, asynthesize, samples_path
from tunewise.taskfile import load_task

VALIDATORS = ["well_posed", {"duplicate": {"max_rouge_l": 0.9}}, "hedging", "markers", "arithmetic", "parses"]


def test_a_rejected_sample_closes_its_stream_and_the_server_stops_writing(tmp_path):
    with OpenAITestServer() as server:
        task = load_task(write_problems_task(tmp_path / "http", {"uri": "openai:writer", "base_url": server.base_url},
                                             synth={"validators": VALIDATORS, "concurrency": 4}))
        ds = load_dataset(task)
        evaluation = [e.input for e in ds.dev + ds.test]
        server.writer = lambda messages: write(messages[-1]["content"], evaluation).text
        server.stream_delay_s = 0.003  # a real server's pace: a hang-up is seen while there is still text to write
        out = tmp_path / "http" / "synth.jsonl"
        stats = asyncio.run(asynthesize(task, SynthOptions(n=16, out=out, baseline=True)))
        streams = server.streams
    log = [json.loads(line) for line in samples_path(out).read_text().splitlines()[1:]]
    msifr = [o for o in log if o["method"] == "msifr"]
    stopped = [o for o in msifr if o["stage"] < 3]
    assert stopped and len(streams) == len(msifr)  # one stream per in-flight attempt; the baseline did not stream
    hung_up = [s for s in streams if s.hung_up]
    assert len(hung_up) == len(stopped)
    # The server stops within a few pieces of the client's hang-up, far short of the whole sample.
    read = sorted(o["tokens_out"] for o in stopped)
    sent = sorted(s.sent for s in hung_up)
    assert all(s <= r + 3 for s, r in zip(sent, read)), (sent, read)
    assert sum(s.sent for s in hung_up) < 0.6 * sum(s.pieces for s in hung_up)
    # Whole streams are counted by the server's usage chunk: prompt tokens as it counted them, not the estimate.
    whole = [o for o in msifr if o["stage"] == 3]
    assert whole and all(o["tokens_in"] == sum(len(m.split()) for m in (_prompt(task, o["attempt"]))) for o in whole)
    # Streamed over HTTP or in this process, the same samples are kept.
    in_process = asyncio.run(asynthesize(task, SynthOptions(n=16, out=tmp_path / "local.jsonl", baseline=True),
                                         ScriptedGenerator(evaluation)))
    assert out.read_text() == (tmp_path / "local.jsonl").read_text()
    assert stats.msifr.tokens_out == in_process.msifr.tokens_out
    assert stats.filter is not None and stats.filter.tokens_out == in_process.filter.tokens_out
    assert all(len(pieces(write(_prompt(task, o["attempt"])[-1], evaluation).text)) == o["tokens_out"] for o in whole)


def _prompt(task, attempt: int) -> list[str]:
    from tunewise.synth.run import Plan

    return [content for _, content in Plan(task, task.synth).request(attempt).messages]
