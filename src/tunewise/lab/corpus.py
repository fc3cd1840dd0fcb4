"""The lab model's pretraining stream: known facts, reading from context, following demonstrations.

Items are generated on the fly (a fixed corpus overfits) and laid out by tunewise.prompt, exactly as at inference.
Only facts marked known ever enter the stream; the rest of the world exists only in its documents.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from tunewise.lab.documents import Document, entity_document, html_to_text, place_document, product_groups
from tunewise.lab.names import SYLLABLES, NameMaker
from tunewise.lab.tasks import FACT_INSTRUCTIONS
from tunewise.lab.world import Fact, World, make_entities
from tunewise.prompt import ContextChunk, Demo, Message, build_messages

INSTRUCTIONS: tuple[str, ...] = (
    "", "", "",
    "Answer the question.",
    FACT_INSTRUCTIONS,
    "Use the context to answer.",
    "Give a short answer.",
    "You are a helpful assistant.",
    "Reply briefly and follow the examples.",
)
WRAP_WORDS: tuple[str, ...] = (
    "answer", "result", "output", "reply", "final", "value", "note", "score", "level", "sure", "guess", "item",
    "fact", "data", "key", "out", "a", "res",
)
WRAP_FORMS: tuple[str, ...] = (
    "{a}: {v}", "{a}: {v} ({b}: {c})", "{v} ({b}: {c})", "[{v}]", "<< {v} >>", "{a} = {v};", "{a} -> {v} |",
    "** {v} **", "{v} ({b})", "{a}: {v} |", "{a} {v} {b}", "{v} #{b}", "- {v} -",
)
FRESH_COUNTS = {"places": 4, "companies": 3, "products": 4, "people": 4}
EXCERPTS = 0.5


class Corpus:
    """An endless, seeded stream of chat conversations (message lists ending with the assistant's answer)."""

    def __init__(self, world: World, seed: int) -> None:
        self.rng = random.Random(f"tunewise-lab-corpus-{seed}")
        self.known: list[Fact] = [f for f in world.facts() if f.known]
        self.reserved = frozenset(world.names())
        self._queue: list[Fact] = []

    def next_known(self) -> Fact:
        """Known facts in reshuffled rounds, so every one recurs at the same rate."""
        if not self._queue:
            self._queue = list(self.known)
            self.rng.shuffle(self._queue)
        return self._queue.pop()

    def word(self) -> str:
        """A filler word for invented formats and instructions, in a random case."""
        w = self.rng.choice(WRAP_WORDS) if self.rng.random() < 0.6 else "".join(self.rng.sample(SYLLABLES, 2))
        return self.rng.choice((str.lower, str.upper, str.capitalize))(w)

    def wrapper(self) -> Callable[[str], str]:
        """An invented output format (a template around the answer), or plain answers one time in five."""
        if self.rng.random() < 0.2:
            return lambda v: v
        form = self.rng.choice(WRAP_FORMS)
        a, b, c = self.word(), self.word(), self.word()
        return lambda v: form.format(a=a, b=b, c=c, v=v)

    def instructions(self) -> str:
        """A system prompt: often none, sometimes generic, sometimes invented words the model must ignore."""
        if self.rng.random() < 0.25:
            return " ".join(self.word() for _ in range(self.rng.randint(3, 7))).capitalize() + "."
        return self.rng.choice(INSTRUCTIONS)

    def context_question(self) -> tuple[Fact, list[ContextChunk]]:
        """A fact about freshly invented entities, shown in passages the way retrieval hands them over.

        Half the time the passages are short excerpts (the fact's sentence, up to two of its neighbours and maybe a
        one-sentence distractor), where copying is learned first; otherwise whole documents, gold among 0-1 others.
        """
        rng = self.rng
        fresh = make_entities(rng, NameMaker(rng, self.reserved), FRESH_COUNTS)
        groups = [[e] for e in fresh.people + fresh.companies] + product_groups(fresh.products)
        prefixes = {"person": "p", "company": "c", "product": "g"}
        docs: list[Document] = [
            entity_document(f"{prefixes[g[0].kind]}{rng.randint(0, 9999):04d}", g, rng) for g in groups
        ]
        docs += [place_document(f"t{rng.randint(0, 9999):04d}", p, rng) for p in fresh.places[:2]]
        gold = rng.choice(docs[: len(groups)])
        fact = rng.choice(gold.facts)
        others = rng.sample([d for d in docs if d is not gold], rng.randint(0, 1))
        if rng.random() < EXCERPTS:
            chosen = [self.excerpt(gold, fact)] + [self.excerpt(d, None) for d in others]
        else:
            chosen = [self.chunk(d) for d in [gold] + others]
        rng.shuffle(chosen)
        return fact, chosen

    def excerpt(self, doc: Document, fact: Fact | None) -> ContextChunk:
        """A few sentences of `doc` in their order: the one stating `fact` and up to two others, or one if no fact."""
        sentences = list(doc.sentences)
        if fact is None:
            return ContextChunk(self.rng.choice(sentences), doc.filename)
        stating = next(s for s in sentences if fact.subject in s and fact.value in s)
        rest = [s for s in sentences if s != stating]
        keep = {stating, *self.rng.sample(rest, min(len(rest), self.rng.randint(0, 2)))}
        return ContextChunk(" ".join(s for s in sentences if s in keep), doc.filename)

    def chunk(self, doc: Document) -> ContextChunk:
        """A whole document as the knowledge index reads it: html as its text, whose title is often dropped."""
        text = doc.render()
        if doc.ext == "html":
            text = html_to_text(text)
            if self.rng.random() < 0.5:
                text = text.split("\n", 1)[1]
        return ContextChunk(text.strip(), doc.filename)

    def copy_item(self) -> list[Message]:
        """A first-phase conversation: a question answered from retrieved-looking passages, or one time in five a
        known fact closed-book; no demonstrations or invented instructions yet.

        A tiny model learns to copy from context only when copying is most of what it sees; the full mix follows.
        """
        instructions = self.rng.choice(("", FACT_INSTRUCTIONS))
        if self.rng.random() < 0.2:
            return answered(instructions, self.next_known())
        fact, context = self.context_question()
        return answered(instructions, fact, context=context)

    def item(self) -> list[Message]:
        """One conversation: 15% closed-book known fact, 50% answer from context, 35% with demonstrations."""
        roll = self.rng.random()
        instructions = self.instructions()
        if roll < 0.15:
            return answered(instructions, self.next_known())
        if roll < 0.65:
            fact, context = self.context_question()
            return answered(instructions, fact, context=context)
        wrap = self.wrapper()
        demos = [Demo(f.question, wrap(f.value)) for f in (self.next_known() for _ in range(self.rng.randint(1, 3)))]
        context: list[ContextChunk] = []
        if self.rng.random() < 0.5:
            fact = self.next_known()
        else:
            fact, context = self.context_question()
        return answered(instructions, fact, demos, context, wrap)


def answered(
    instructions: str,
    fact: Fact,
    demos: Sequence[Demo] = (),
    context: Sequence[ContextChunk] = (),
    wrap: Callable[[str], str] = str,
) -> list[Message]:
    """The conversation asking `fact`'s question in the inference layout, ending with its (wrapped) answer."""
    return build_messages(instructions, fact.question, demos, context) + [
        {"role": "assistant", "content": wrap(fact.value)}
    ]

