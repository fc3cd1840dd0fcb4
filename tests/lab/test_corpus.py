"""The pretraining stream: teaches the known facts, never the ones only the documents hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tunewise.lab.corpus import COMPARATOR_SYSTEM, CRITIC_SYSTEM, NEED_SYSTEM, Corpus
from tunewise.lab.teacher import stated_facts
from tunewise.lab.tokenizer import render
from tunewise.lab.world import QUESTIONS, World, generate_world
from tunewise.metrics import normalized
from tunewise.prompt import build_messages

ITEMS = 4000


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(0)


@pytest.fixture(scope="module")
def stream(world: World) -> str:
    """A large sample of the stream as text, the way the model sees it: the full mix, and some of each
    earlier lesson of the curriculum."""
    corpus = Corpus(world, seed=0)
    lessons = [corpus.sentence_item() for _ in range(ITEMS // 4)] + [corpus.copy_item() for _ in range(ITEMS // 4)]
    return "".join(render(c) for c in lessons) + "".join(render(corpus.item()) for _ in range(ITEMS))


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


def test_stream_mixes_context_demonstrations_and_closed_book(world: World) -> None:
    corpus = Corpus(world, seed=0)
    stream = "".join(render(corpus.item()) for _ in range(ITEMS))
    assert stream.count("Context:\n[1] ") > ITEMS // 8
    assert stream.count("<|assistant|>") > ITEMS * 1.5, "too few demonstrations"
    assert stream.count("<|system|>\n Repeat the words.") > ITEMS // 60, "too few word games"


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
    firsts = 0
    for _ in range(300):
        fact, chunks = corpus.context_question()
        assert any(fact.subject in c.text and fact.value in c.text for c in chunks), (fact, chunks)
        assert 1 <= len(chunks) <= 2
        firsts += fact.subject in chunks[0].text and fact.value in chunks[0].text
        for c in chunks:
            assert re.fullmatch(r"[pcgt]\d{4}\.(md|html|txt)", c.source), c.source
            assert "<" not in c.text, "html reaches the model as text, as the knowledge index reads it"
            shapes.add("document" if "\n\n" in c.text else "excerpt")
    assert shapes == {"document", "excerpt"}
    assert 0.6 * 300 < firsts < 0.95 * 300, "the stating passage mostly comes first, as retrieval ranks it"


def test_sentence_lesson_tells_passages_apart_only_by_their_subject(world: World) -> None:
    corpus = Corpus(world, 5)
    rivals = 0
    for _ in range(300):
        conv = corpus.sentence_item()
        question, answer = conv[-2]["content"], conv[-1]["content"]
        if not question.startswith("Context:\n"):
            continue
        context, asked = question.split("\n\nInput:\n")
        passages = re.findall(r"\[\d\] \S+\n([^\n]+)", context)
        assert passages and all(p.count(". ") == 0 and p.endswith(".") for p in passages), "one sentence each"
        stating = [p for p in passages if answer in p]
        assert len(stating) >= 1
        rivals += len(passages) - 1
    assert rivals > 300, "most lessons show rival sentences of the same relation"


def test_fresh_entities_often_share_a_name_word_and_point_to_public_names(world: World) -> None:
    corpus = Corpus(world, 6)
    public = {p.name for p in world.places} | {c.name for c in world.companies if c.known}
    hidden = {c.name for c in world.companies if not c.known}
    shared = valued = 0
    for _ in range(200):
        fact, gold, rest = corpus.fresh_fact()
        people = [f.subject for d in [gold, *rest] for f in d.facts if f.relation == "born_in"]
        firsts, lasts = [n.split()[0] for n in people], [n.split()[1] for n in people]
        shared += len(set(firsts)) < len(firsts) or len(set(lasts)) < len(lasts)
        values = {f.value for d in [gold, *rest] for f in d.facts}
        valued += bool(values & public)
        assert not values & hidden, "unknown companies never enter the stream"
    assert 40 < shared < 160 and valued > 150


def test_word_games_repeat_their_input(world: World) -> None:
    corpus = Corpus(world, 7)
    for _ in range(100):
        conv = corpus.word_game()
        assert conv[-1]["content"] == conv[-2]["content"]
        assert re.fullmatch(r"[a-z]+(-[a-z]+)+( [a-z]+(-[a-z]+)+)+", conv[-1]["content"])


def test_copy_phase_items_are_context_questions_known_facts_or_demonstrated_formats(world: World) -> None:
    corpus = Corpus(world, 4)
    known = {(f.question, f.value) for f in world.facts() if f.known}
    kinds = {"context": 0, "closed-book": 0, "demonstrated": 0}
    for _ in range(400):
        conv = corpus.copy_item()
        turns = [m for m in conv if m["role"] != "system"]
        question, answer = turns[-2]["content"], turns[-1]["content"]
        if len(turns) > 2:
            kinds["demonstrated"] += 1
            shown = [m["content"] for m in turns[1:-1:2]]
            value = next(v for q, v in known if q == question)
            # the answer wears the demonstrations' format: what surrounds the value is the same in each
            assert all(s.replace(next(v for q, v in known if q == turns[i * 2]["content"]), "") == answer.replace(value, "")
                       for i, s in enumerate(shown))
        elif question.startswith("Context:\n"):
            kinds["context"] += 1
            assert answer in question.split("\n\nInput:\n")[0]
        else:
            kinds["closed-book"] += 1
            assert (question, answer) in known
    assert kinds["context"] > 180 and kinds["closed-book"] > 50 and kinds["demonstrated"] > 70, kinds


def asked_fact(question: str) -> tuple[str, str]:
    """The subject and relation a lab question asks about."""
    for relation, phrasing in QUESTIONS.items():
        m = re.fullmatch(re.escape(phrasing).replace(re.escape("{s}"), "(.+)"), question)
        if m:
            return m.group(1), relation
    raise AssertionError(f"not a lab question: {question!r}")


def judged(world: World, task: str) -> tuple[str, str]:
    """The question of a judged task and its true answer: the world's value for a known fact asked closed-book,
    or the one the passages in its input state."""
    shown = task.split("Input:\n", 1)[1]
    passages, _, question = shown.rpartition("\n\n")
    subject, relation = asked_fact(question)
    if passages:
        values = {s.value for s in stated_facts(passages) if (s.subject, s.relation) == (subject, relation)}
        assert len(values) == 1, (task, values)
        return question, values.pop()
    return question, next(f.value for f in world.facts() if f.known and (f.subject, f.relation) == (subject, relation))


def test_judge_lessons_use_the_committee_and_adaptive_rag_prompts_word_for_word(world: World) -> None:
    from tunewise.arms import adaptive_rag, committee

    assert (CRITIC_SYSTEM, COMPARATOR_SYSTEM, NEED_SYSTEM) == (
        committee.CRITIC_SYSTEM, committee.COMPARATOR_SYSTEM, adaptive_rag.NEED_SYSTEM)
    corpus = Corpus(world, 8)
    for _ in range(50):
        critic, comparator, need = corpus.critic_item(), corpus.comparator_item(), corpus.need_item()
        task, answer = re.fullmatch(r"(.+)\n\nProposed answer:\n(.+)\n\nIs this .+", critic[1]["content"], re.S).groups()
        assert critic[:2] == committee.critic_messages(task, answer)
        task, a, b = re.fullmatch(r"(.+)\n\nAnswer A:\n(.+)\n\nAnswer B:\n(.+)\n\nWhich .+", comparator[1]["content"], re.S).groups()
        assert comparator[:2] == committee.comparator_messages(task, a, b)
        question = need[1]["content"].split("\n")[1]
        assert need[:2] == adaptive_rag.need_messages(question)


def test_judge_verdicts_are_balanced_and_right_by_the_worlds_truth(world: World) -> None:
    from tunewise.arms.voting import parse_choice, parse_yes_no

    corpus = Corpus(world, 9)
    known = {e.name for e in world.subjects() if e.known}
    names = set(world.names())
    verdicts: dict[str, list[str]] = {"critic": [], "comparator": [], "need": []}
    passages = decorated = wrong = 0
    for _ in range(400):
        critic = corpus.critic_item()
        task, answer = re.fullmatch(r"(.+)\n\nProposed answer:\n(.+)\n\nIs this .+", critic[1]["content"], re.S).groups()
        _, truth = judged(world, task)
        passages += "Input:\n[1] " in task
        assert parse_yes_no(critic[-1]["content"]) == (answer == truth), (task, answer, truth)
        if answer != truth:
            assert normalized(answer, truth) == 0.0, "a wrong answer is wrong by the lab's metric too"
            wrong += 1
            decorated += truth in answer
        verdicts["critic"].append(critic[-1]["content"])

        comparator = corpus.comparator_item()
        task, a, b = re.fullmatch(r"(.+)\n\nAnswer A:\n(.+)\n\nAnswer B:\n(.+)\n\nWhich .+", comparator[1]["content"], re.S).groups()
        _, truth = judged(world, task)
        assert a != b and truth in (a, b), (task, a, b, truth)
        assert parse_choice(comparator[-1]["content"]) == ("A" if a == truth else "B")
        verdicts["comparator"].append(comparator[-1]["content"])

        need = corpus.need_item()
        subject, _ = asked_fact(need[1]["content"].split("\n")[1])
        assert parse_yes_no(need[-1]["content"]) == (subject not in known), "no for what the model knows, else yes"
        assert subject in known or subject not in names, "a 'yes' is about fresh entities, never the world's unknown ones"
        verdicts["need"].append(need[-1]["content"])
    assert sorted(set(verdicts["critic"])) == sorted(set(verdicts["need"])) == ["no", "yes"]
    assert sorted(set(verdicts["comparator"])) == ["A", "B"], "the right answer is shown in both places"
    for kind, said in verdicts.items():
        assert 0.4 < said.count(said[0]) / len(said) < 0.6, (kind, said.count(said[0]))
    assert 0.2 * 400 < passages < 0.4 * 400, "some judgements are of answers read off passages"
    assert 0.25 < decorated / wrong < 0.45, "about a third of the wrong answers are the value in an invented format"


def test_the_full_mix_teaches_the_judges(world: World) -> None:
    corpus = Corpus(world, 10)
    systems = [c[0]["content"] for c in (corpus.item() for _ in range(1000))]
    judges = sum(s in (CRITIC_SYSTEM, COMPARATOR_SYSTEM, NEED_SYSTEM) for s in systems)
    assert 150 < judges < 250 and {CRITIC_SYSTEM, COMPARATOR_SYSTEM, NEED_SYSTEM} <= set(systems)
