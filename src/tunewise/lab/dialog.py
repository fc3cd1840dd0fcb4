"""The lab's conversation task (`dialog`) and its scripted turn labeller.

Each conversation is about one fact that only the documents hold. The user states it, later corrects it or
withdraws what they said, and asks about it; the truth is known:

- `stated` (20%): the user states the documents' value; the answer is that value.
- `revised` (40%): the user repeats the documents' value, then "Correction: ..." gives a new one; the answer is the
  new value, and the documents' value is stale (a retrieval-only arm answers it).
- `retracted` (40%): the user states a wrong value, then withdraws it ("Forget what I said about ..."); the answer
  is the documents' value, and the withdrawn one is stale (an arm that trusts the transcript answers it).

Other turns state true facts about other subjects. The labeller (`label`, used as
`labeller: python:tunewise.lab.dialog:label`) is not a language model: it reads the lab's sentence shapes, the
correction and withdrawal phrasings and the tasks' question phrasings, so its labels are exact. Stated plainly, it
is what the tiny lab model cannot do itself.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from tunewise.lab.documents import SENTENCES
from tunewise.lab.teacher import Stated, invented, stated_facts
from tunewise.lab.world import QUESTIONS, Fact

KINDS = (("stated", 0.2), ("revised", 0.4), ("retracted", 0.4))
CORRECTION = "Correction: "
RELATION_WORDS = {
    "born_in": "birthplace", "birth_year": "birth year", "works_at": "employer", "founded_year": "founding year",
    "headquarters": "head office", "made_by": "maker", "price": "price",
}
WITHDRAWAL = "Forget what I said about the {w} of {s}."
_WITHDRAWN = re.compile(r"^Forget what I said about the (?P<w>[a-z ]+?) of (?P<s>.+)\.$")
_ASKED = [(r, re.compile("^" + re.escape(q).replace(re.escape("{s}"), "(?P<s>.+?)") + "$")) for r, q in QUESTIONS.items()]


def key(relation: str, subject: str) -> str:
    """What a premise is about: the relation's word and its subject, e.g. 'employer of Mara Quell'."""
    return f"{RELATION_WORDS[relation]} of {subject}"


@dataclass(frozen=True)
class Dialog:
    """One conversation of the task: its user turns (the last asks), the answer, the stale answers, the kind."""

    turns: tuple[str, ...]
    answer: str
    stale: tuple[str, ...]
    kind: str

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": t} for t in self.turns]


def _sentence(fact: Fact | Stated, value: str, rng: random.Random) -> str:
    return rng.choice(SENTENCES[fact.relation]).format(s=fact.subject, v=value)


def dialog(fact: Fact, others: list[Fact], rng: random.Random) -> Dialog:
    """A conversation about `fact`, with statements about `others` around its updates."""
    u, kind = rng.random(), KINDS[-1][0]
    cumulative = 0.0
    for name, share in KINDS:
        cumulative += share
        if u < cumulative:
            kind = name
            break
    stated = Stated(fact.subject, fact.relation, fact.value)
    filler = [_sentence(o, o.value, rng) for o in others]
    if kind == "stated":
        turns, answer, stale = [_sentence(fact, fact.value, rng), *filler], fact.value, ()
    elif kind == "revised":
        new = invented(stated, rng)
        turns = [_sentence(fact, fact.value, rng), *filler, CORRECTION + _sentence(fact, new, rng)]
        answer, stale = new, (fact.value,)
    else:
        wrong = invented(stated, rng)
        turns = [_sentence(fact, wrong, rng), *filler,
                 WITHDRAWAL.format(w=RELATION_WORDS[fact.relation], s=fact.subject)]
        answer, stale = fact.value, (wrong,)
    return Dialog((*turns, fact.question), answer, stale, kind)


def label(text: str, role: str) -> list[dict[str, Any]]:
    """The updates a turn or a passage makes, read off the lab's phrasings: statements assert, a correction
    revises, a withdrawal retracts, a question queries."""
    line = text.strip()
    m = _WITHDRAWN.match(line)
    if m:
        relation = next((r for r, w in RELATION_WORDS.items() if w == m.group("w")), None)
        return [{"op": "retract", "key": f"{m.group('w')} of {m.group('s')}"}] if relation else []
    for relation, pattern in _ASKED:
        q = pattern.match(line)
        if q:
            return [{"op": "query", "key": key(relation, q.group("s"))}]
    op = "assert"
    if line.startswith(CORRECTION):
        op, line = "revise", line.removeprefix(CORRECTION)
    return [{"op": op, "key": key(s.relation, s.subject), "value": s.value} for s in stated_facts(line)]
