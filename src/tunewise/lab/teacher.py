"""`lab:teacher` — the lab's generator of synthetic question-answer pairs, for `tunewise synth` offline.

Stated plainly: it is not a language model. It is a scripted writer that reads the passage it is shown: it finds
the facts the passage states by the sentence shapes the lab's documents are written in, asks about one of them in
a phrasing of its own (never the lab tasks' phrasing, unless it errs), and answers with the value the passage
gives. Like a real generator it errs, at fixed rates drawn per sample from its prompt, so what it writes is the
same whether streamed or not:

- `echo` (15%): asks in the tasks' own phrasing; when that fact is a train, dev or test question it is a copy of it;
- `unposed` (10%): a request, not a question;
- `hedge` (10%): the answer opens with "Perhaps";
- `invent` (15%): a made-up value instead of the passage's (the passage does not ground it);
- `swap` (5%): another value the passage states (grounded, and wrong: no rule-based validator can see it).

A passage stating no fact (the world's travel notes) gets a question about the place and an invented answer.
Samples are written in the shape `tunewise synth` asks for (QUESTION:/ANSWER:/END), a word piece a token.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from tunewise.lab.documents import SENTENCES
from tunewise.lab.names import NameMaker
from tunewise.lab.world import QUESTIONS
from tunewise.models.base import ChatRequest, Completion, Piece

NAME = "teacher"
SOURCE_HEADER = "Source passage:"  # what tunewise.synth puts before the passage it generates from
# The teacher's own phrasings: short, so that two questions about different subjects stay apart under ROUGE-L,
# and worded unlike the tasks' questions (lab.world.QUESTIONS), so that asking about a test fact is no copy of it.
PHRASINGS: dict[str, tuple[str, ...]] = {
    "born_in": ("Where is {s} from?", "Which town is {s} from?"),
    "birth_year": ("{s} was born when?", "Birth year of {s}?"),
    "works_at": ("Who employs {s}?", "Where does {s} work?"),
    "founded_year": ("When was {s} founded?", "Since when has {s} existed?"),
    "headquarters": ("Which town hosts {s}?", "{s} is based where?"),
    "made_by": ("Who produces the {s}?", "Which firm produces the {s}?"),
    "price": ("How dear is the {s}?", "The {s} costs how much?"),
}
ERRORS = (("echo", 0.15), ("unposed", 0.10), ("hedge", 0.10), ("invent", 0.15), ("swap", 0.05))
_PIECES = re.compile(r"\s*\S+")
_NAME = r"([A-Z][\w'-]*(?: [A-Z0-9][\w'-]*)*)"
_VALUE = r"([\w' -]+?)"


@dataclass(frozen=True)
class Stated:
    """A fact a passage states: subject, relation, value."""

    subject: str
    relation: str
    value: str


def _sentence_patterns() -> list[tuple[str, re.Pattern[str]]]:
    """A pattern per sentence shape, the longest shapes first (`born in the year` before `born in`)."""
    shapes = sorted(((r, shape) for r, shapes in SENTENCES.items() for shape in shapes), key=lambda x: -len(x[1]))
    patterns = []
    for relation, shape in shapes:
        text = re.escape(shape).replace(re.escape("{s}"), f"(?P<s>{_NAME})").replace(re.escape("{v}"), f"(?P<v>{_VALUE})")
        patterns.append((relation, re.compile(rf"(?:^|(?<=[.!?] )){text}")))
    return patterns


_STATEMENTS = _sentence_patterns()
_ASKED = [(relation, re.compile("^" + re.escape(p).replace(re.escape("{s}"), "(?P<s>.+?)") + "$"))
          for relation, phrasings in PHRASINGS.items() for p in phrasings]


def stated_facts(passage: str) -> list[Stated]:
    """The facts a passage states, read off its sentences line by line (a title is a line of its own), each
    sentence by the most specific shape it has."""
    found: list[tuple[int, int, Stated]] = []
    for number, line in enumerate(passage.splitlines()):
        claimed: set[int] = set()
        for relation, pattern in _STATEMENTS:
            for m in pattern.finditer(line.strip()):
                if m.start() not in claimed:
                    claimed.add(m.start())
                    found.append((number, m.start(), Stated(m.group("s"), relation, m.group("v"))))
    return [stated for _, _, stated in sorted(found, key=lambda x: x[:2])]


def asked(question: str) -> tuple[str, str] | None:
    """(subject, relation) of a question in one of the teacher's phrasings, for checking it against the world."""
    for relation, pattern in _ASKED:
        m = pattern.match(question.strip())
        if m:
            return m.group("s"), relation
    return None


def _passage(prompt: str) -> str:
    _, header, passage = prompt.partition(SOURCE_HEADER)
    return passage.strip() if header else ""


def invented(stated: Stated, rng: random.Random) -> str:
    """A value of the right kind that the passage does not give."""
    if stated.value.isdigit():
        return str(int(stated.value) + rng.choice((-9, -4, 3, 7)))
    if stated.value.endswith(" crowns"):
        return f"{int(stated.value.split()[0]) + rng.choice((-20, 10, 30))} crowns"
    names = NameMaker(rng)
    return names.company() if stated.relation in ("works_at", "made_by") else names.place()


def write(prompt: str) -> str:
    """The sample the teacher writes for a generation prompt (the user message)."""
    rng = random.Random(hashlib.sha256(prompt.encode()).hexdigest())
    passage = _passage(prompt)
    facts = stated_facts(passage)
    u, error, cumulative = rng.random(), None, 0.0
    for name, share in ERRORS:
        cumulative += share
        if u < cumulative:
            error = name
            break
    if not facts:
        place = passage.splitlines()[0].split()[-1] if passage else "the town"  # a travel note's title names it
        fact = Stated(place, "founded_year", str(rng.randint(1820, 2015)))
        return _shape(f"When was {place} founded?", invented(fact, rng))
    fact = rng.choice(facts)
    subject = fact.subject
    question = rng.choice(PHRASINGS[fact.relation]).format(s=subject)
    answer = fact.value
    if error == "echo":
        question = QUESTIONS[fact.relation].format(s=subject)
    elif error == "unposed":
        question = f"Tell me about {subject}."
    elif error == "hedge":
        answer = f"Perhaps {fact.value}"
    elif error == "invent":
        answer = invented(fact, rng)
    elif error == "swap":
        others = [f.value for f in facts if f.value != fact.value]
        answer = rng.choice(others) if others else invented(fact, rng)
    return _shape(question, answer)


def _shape(question: str, answer: str) -> str:
    return f"QUESTION: {question}\nANSWER: {answer}\nEND"


class Teacher:
    """The teacher behind the model protocol, streaming a word piece at a time; its prompt tokens are the
    prompt's words."""

    id = f"lab:{NAME}"

    async def complete(self, request: ChatRequest, n: int = 1, *, first: int = 0) -> list[Completion]:
        parts = _PIECES.findall(write(request.messages[-1][1]))[: request.max_tokens]
        prompt = sum(len(content.split()) for _, content in request.messages)
        finish = "length" if len(parts) == request.max_tokens else "stop"
        return [Completion("".join(parts), prompt if i == 0 else 0, len(parts), 0.0, finish) for i in range(n)]

    async def stream(self, request: ChatRequest, *, sample: int = 0) -> AsyncIterator[Piece]:
        prompt = sum(len(content.split()) for _, content in request.messages)
        for i, part in enumerate(_PIECES.findall(write(request.messages[-1][1]))[: request.max_tokens]):
            yield Piece(part, 1, prompt if i == 0 else 0)

    async def aclose(self) -> None:
        pass
