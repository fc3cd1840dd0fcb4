"""The pretraining stream: teaches the known facts, never the ones only the documents hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tunewise.lab.corpus import Corpus
from tunewise.lab.tokenizer import render
from tunewise.lab.world import World, generate_world
from tunewise.prompt import build_messages

ITEMS = 4000


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(0)


@pytest.fixture(scope="module")
def stream(world: World) -> str:
    """A large sample of the stream as text, the way the model sees it."""
    corpus = Corpus(world, seed=0)
    return "".join(render(corpus.item()) for _ in range(ITEMS))


def test_unknown_facts_never_appear_in_the_stream(world: World, stream: str) -> None:
    unknown = [f for f in world.facts() if not f.known]
    assert unknown
    for f in unknown:
        assert f.question not in stream, f
        for hit in re.finditer(re.escape(f.subject), stream):
            start, end = stream.rfind("\n", 0, hit.start()), stream.find("\n", hit.end())
            assert f.value not in stream[start:end], (f, stream[start:end])
    # people and products are never the value of another fact: their names must not appear at all
    hidden = {e.name for e in world.people + world.products if not e.known}
    names_in_stream = set(re.findall(r"[A-Z][a-z]+ [A-Z0-9][a-z0-9]*", stream))
    assert not hidden & names_in_stream


def test_every_known_fact_is_taught_as_question_and_answer(world: World, stream: str) -> None:
    known = [f for f in world.facts() if f.known]
    assert known
    for f in known:
        turns = stream.split(f"<|user|>\n {f.question}<|end|>\n<|assistant|>\n")[1:]
        assert turns, f"never taught: {f}"
        assert all(f.value in turn.split("<|end|>")[0] for turn in turns), f


def test_stream_mixes_context_demonstrations_and_closed_book(stream: str) -> None:
    items = stream.split("<|end|>\n<|assistant|>\n")
    assert stream.count("Context:\n[1] ") > ITEMS // 8
    assert stream.count("<|assistant|>") > ITEMS * 1.5, "too few demonstrations"
    assert len(items) > ITEMS


def test_stream_is_deterministic_per_seed(world: World) -> None:
    a, b, c = Corpus(world, 5), Corpus(world, 5), Corpus(world, 6)
    first = [a.item() for _ in range(50)]
    assert first == [b.item() for _ in range(50)]
    assert first != [c.item() for _ in range(50)]


def test_items_use_the_inference_prompt_layout(world: World) -> None:
    corpus = Corpus(world, 0)
    for _ in range(200):
        conv = corpus.item()
        assert conv[-1]["role"] == "assistant"
        system = conv[0]["content"] if conv[0]["role"] == "system" else ""
        turns = conv[1:-1] if system else conv[:-1]
        final = turns[-1]["content"]
        if final.startswith("Context:\n"):
            assert "\n\nInput:\n" in final
        assert [m["role"] for m in turns] == ["user", "assistant"] * (len(turns) // 2) + ["user"]


def test_world_generation_is_independent_of_the_world_dir(tmp_path: Path) -> None:
    assert [f for f in generate_world(3).facts()] == [f for f in generate_world(3).facts()]
    assert build_messages("", "q") == [{"role": "user", "content": "q"}]


def test_context_questions_are_answerable_from_passages_shaped_like_retrieved_chunks(world: World) -> None:
    corpus = Corpus(world, 3)
    shapes = set()
    for _ in range(300):
        fact, chunks = corpus.context_question()
        assert any(fact.subject in c.text and fact.value in c.text for c in chunks), (fact, chunks)
        assert 1 <= len(chunks) <= 2
        for c in chunks:
            assert re.fullmatch(r"[pcgt]\d{4}\.(md|html|txt)", c.source), c.source
            assert "<" not in c.text, "html reaches the model as text, as the knowledge index reads it"
            shapes.add("document" if "\n\n" in c.text else "excerpt")
    assert shapes == {"document", "excerpt"}


def test_copy_phase_items_are_context_questions_or_known_facts_without_demonstrations(world: World) -> None:
    corpus = Corpus(world, 4)
    known = {(f.question, f.value) for f in world.facts() if f.known}
    with_context = 0
    for _ in range(300):
        conv = corpus.copy_item()
        turns = [m for m in conv if m["role"] != "system"]
        assert [m["role"] for m in turns] == ["user", "assistant"], "no demonstrations in the copy phase"
        question, answer = turns[0]["content"], turns[1]["content"]
        if question.startswith("Context:\n"):
            with_context += 1
            assert answer in question.split("\n\nInput:\n")[0]
        else:
            assert (question, answer) in known
    assert 200 < with_context < 290
