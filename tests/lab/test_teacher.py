"""The lab's teacher: it reads the facts a passage states, asks in its own words, and errs at its stated rates."""

from __future__ import annotations

import asyncio
import collections
import json
import subprocess
import sys
from pathlib import Path

import yaml

from tunewise.lab.documents import html_to_text, world_documents
from tunewise.lab.model import world_truth
from tunewise.lab.teacher import ERRORS, PHRASINGS, Stated, Teacher, asked, stated_facts, write
from tunewise.lab.world import QUESTIONS
from tunewise.models.base import ChatRequest
from tunewise.near_duplicates import NearDuplicates
from tunewise.synth.format import parse


def _documents(world_dir: Path):
    return world_documents(world_truth(world_dir))


def test_it_reads_every_fact_each_document_states_and_nothing_else(world_dir: Path) -> None:
    for doc in _documents(world_dir):
        text = doc.render()
        text = html_to_text(text) if doc.ext == "html" else text
        assert {(f.subject, f.relation, f.value) for f in stated_facts(text)} == {
            (f.subject, f.relation, f.value) for f in doc.facts}, doc.doc_id


def test_its_own_phrasings_are_no_near_copy_of_the_tasks_questions_nor_of_each_other(world_dir: Path) -> None:
    truth = world_truth(world_dir)
    tasks, own = NearDuplicates(0.7), NearDuplicates(0.85)  # the bound bench/synth.py gives the lab
    facts = truth.facts()
    for f in facts:
        tasks.add(f.question, "task")
    for f in facts:
        for phrasing in PHRASINGS[f.relation]:
            question = phrasing.format(s=f.subject)
            assert tasks.match(question) is None or tasks.match(question).text != f.question, question
            assert asked(question) == (f.subject, f.relation)
    collided = 0
    for f in facts:  # one question per fact: most about other subjects stay apart (names sharing a word do not)
        question = PHRASINGS[f.relation][0].format(s=f.subject)
        if own.match(question) is None:
            own.add(question, "accepted")
        else:
            collided += 1
    assert collided / len(facts) < 0.05, collided


def test_it_errs_at_its_stated_rates_and_writes_the_synth_shape(world_dir: Path) -> None:
    doc = next(d for d in _documents(world_dir) if d.doc_id == "p0001")
    passage = html_to_text(doc.render()) if doc.ext == "html" else doc.render()
    truth = {(f.subject, f.relation): f.value for f in doc.facts}
    kinds: collections.Counter[str] = collections.Counter()
    n = 2000
    for i in range(n):
        parsed = parse(write(f"This is sample {i}.\n\nSource passage:\n{passage}"))
        assert parsed.ended and parsed.answer
        about = asked(parsed.input)
        if parsed.input.startswith("Tell me about"):
            kinds["unposed"] += 1
        elif parsed.input in {QUESTIONS[r].format(s=s) for s, r in truth}:
            kinds["echo"] += 1
        elif parsed.answer.startswith("Perhaps "):
            kinds["hedge"] += 1
        elif about is not None and parsed.answer != truth[about]:
            kinds["invent" if parsed.answer not in truth.values() else "swap"] += 1
    for name, share in ERRORS:
        assert abs(kinds[name] / n - share) < 0.035, (name, kinds[name] / n)


def test_it_streams_what_it_completes_and_a_stream_closed_early_stops() -> None:
    teacher = Teacher()
    passage = "Ana Bel\n\nAna Bel was born in Dalmon. Ana Bel works at Quagar Works."
    request = ChatRequest.from_messages([{"role": "user", "content": f"Source passage:\n{passage}"}], max_tokens=48)

    async def both():
        whole = (await teacher.complete(request))[0]
        pieces = [p async for p in teacher.stream(request)]
        stream = teacher.stream(request)
        first = await anext(stream)
        await stream.aclose()
        with __import__("pytest").raises(StopAsyncIteration):
            await anext(stream)
        return whole, pieces, first

    whole, pieces, first = asyncio.run(both())
    assert "".join(p.text for p in pieces) == whole.text and len(pieces) == whole.tokens_out
    assert first.text == pieces[0].text and first.tokens_in == whole.tokens_in > 0
    assert stated_facts(passage) == [Stated("Ana Bel", "born_in", "Dalmon"), Stated("Ana Bel", "works_at", "Quagar Works")]


def test_tunewise_synth_with_the_teacher_on_the_lab_facts_task(world_dir: Path, tmp_path: Path) -> None:
    task = yaml.safe_load((world_dir / "tasks" / "facts" / "task.yaml").read_text())
    task["data"]["path"] = str(world_dir / "tasks" / "facts" / "data.jsonl")
    task["knowledge"]["paths"] = [str(world_dir / "docs")]
    task["model"]["uri"] = f"lab:{world_dir}"
    task["synth"] = {"generator": "lab:teacher", "max_tokens": 48}
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(task))
    out = tmp_path / "synth.jsonl"
    done = subprocess.run([sys.executable, "-m", "tunewise.cli", "synth", str(path), "--n", "40", "--out", str(out),
                           "--baseline", "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    assert stats["written"] == 40 and stats["tokens_saved_pct"] > 0
    truth = world_truth(world_dir)
    values = {(f.subject, f.relation): f.value for f in truth.facts()}
    evaluation = {json.loads(line)["question"] for line in (world_dir / "tasks" / "facts" / "data.jsonl").open()}
    rows = [json.loads(line)["messages"] for line in out.open()]
    assert not evaluation & {m[1]["content"] for m in rows}  # no copy of a task question, in any split
    right = sum(values.get(asked(m[1]["content"]) or ("", "")) == m[2]["content"] for m in rows)
    assert right >= 32  # only the teacher's swaps (5%) get past the validators
