"""The lab model's pretraining stream: known facts, reading from context, following demonstrations, repeating.

Items are generated on the fly (a fixed corpus overfits) and laid out by tunewise.prompt, exactly as at inference;
tunewise.lab.curriculum decides which kind of item each training step draws.
Only facts marked known ever enter the stream; the rest of the world exists only in its documents.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from tunewise.lab.documents import Document, entity_document, html_to_text, place_document, product_groups
from tunewise.lab.names import COMPANY_SUFFIXES, SYLLABLES, NameMaker
from tunewise.lab.tasks import FACT_INSTRUCTIONS, SKILL_SYLLABLES
from tunewise.lab.world import BIRTH_YEARS, PRICE_TENS, YEARS, Fact, World, make_entities
from tunewise.prompt import ContextChunk, Demo, Message, build_messages, render_context

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
    "fact", "data", "key", "out", "a", "res", "confidence", "high", "low", "medium", "status", "ok", "true",
    "false", "source", "label", "tag", "type", "info", "main", "best", "certain", "maybe", "yes", "no", "done",
    "name", "reason", "check", "quality", "rank", "grade", "mode", "kind", "state", "response", "pick", "choice",
)
WRAP_FORMS: tuple[str, ...] = (
    "{a}: {v}", "{a}: {v} ({b}: {c})", "{v} ({b}: {c})", "[{v}]", "<< {v} >>", "{a} = {v};", "{a} -> {v} |",
    "** {v} **", "{v} ({b})", "{a}: {v} |", "{a} {v} {b}", "{v} #{b}", "- {v} -",
)
WORDED_FORMS = tuple(f for f in WRAP_FORMS if "{a}" in f or "{b}" in f)
GAME_INSTRUCTIONS: tuple[str, ...] = ("", "Repeat the words.", "Say the words again.", "Copy the words exactly.")
FRESH_COUNTS = {"places": 4, "companies": 3, "products": 4, "people": 4}
# How reading lessons resemble what retrieval hands a model: passages that are excerpts rather than whole
# documents; fresh facts pointing at places and companies the world has; a same-kind document as the other
# passage; two fresh entities sharing a name word; the stating passage ranked first (as retrieval mostly
# ranks it, so a model never learns to prefer the passage nearest the question); and in the copy phase, a share
# of demonstrated answer formats, without which format-following never formed in the later mix (measured:
# few-shot format 0.00 without, 0.78 with).
EXCERPTS = 0.5
PUBLIC_VALUES = 0.5
HARD_NEGATIVES = 0.5
SHARED_NAMES = 0.5
GOLD_FIRST = 0.6
COPY_DEMOS = 0.25
VALUE_KINDS = {"born_in": "place", "headquarters": "place", "works_at": "company", "made_by": "company"}
# The judge lessons: the exact prompts of the committee's critics and comparators (tunewise.arms.committee) and
# of adaptive_rag's stated-need question (tunewise.arms.adaptive_rag). The lab may not import the arms, so they
# are copied here, and a test keeps both the same. Judged answers are to known facts closed-book, or
# JUDGE_PASSAGES of the time to fresh facts the prompt's passages state. A wrong answer is, DECORATED of the time,
# the value (or another) inside an invented format, as the model's own samples at a high temperature often are: a
# task that asks for the bare value scores it wrong, and telling it apart needs no knowledge, so a tiny judge can
# learn it (builder 5, closed-book: critic 0.74 and comparator 0.88 right against a decorated answer, chance
# against another value of its kind). Else it is another value of the fact's kind, NEAR_MISSES of the time one
# close to the right one (a year a few off, a company's other suffix).
CRITIC_SYSTEM = "You check answers. Reply with yes or no only."
COMPARATOR_SYSTEM = "You compare two answers. Reply with A or B only."
NEED_SYSTEM = "You decide whether a question needs looking up in documents. Reply with yes or no only."
JUDGE_INSTRUCTIONS: tuple[str, ...] = (FACT_INSTRUCTIONS, FACT_INSTRUCTIONS, "", "Answer the question.")
JUDGE_PASSAGES = 0.3
DECORATED = 0.5
NEAR_MISSES = 0.3
JUDGES = 0.2


class Corpus:
    """An endless, seeded stream of chat conversations (message lists ending with the assistant's answer)."""

    def __init__(self, world: World, seed: int) -> None:
        self.rng = random.Random(f"tunewise-lab-corpus-{seed}")
        self.known: list[Fact] = [f for f in world.facts() if f.known]
        self.reserved = frozenset(world.names())
        # Names the model may see as values: every place, and the companies it knows. Unknown companies and
        # everything about unknown entities stay out of the stream.
        self.public = {"place": [p.name for p in world.places], "company": [c.name for c in world.companies if c.known]}
        self.public_names = frozenset(self.public["place"] + self.public["company"])
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
        return self.invented_format()

    def invented_format(self, forms: Sequence[str] = WRAP_FORMS) -> Callable[[str], str]:
        """An invented output format: one of `forms` with filler words drawn for it."""
        form = self.rng.choice(forms)
        a, b, c = self.word(), self.word(), self.word()
        return lambda v: form.format(a=a, b=b, c=c, v=v)

    def instructions(self) -> str:
        """A system prompt: often none, sometimes generic, sometimes invented words the model must ignore."""
        if self.rng.random() < 0.25:
            return " ".join(self.word() for _ in range(self.rng.randint(3, 7))).capitalize() + "."
        return self.rng.choice(INSTRUCTIONS)

    def fresh_fact(self) -> tuple[Fact, Document, list[Document]]:
        """A fact about freshly invented entities, the document stating it, and the other documents of that
        small invented world (about other entities, or distractor notes about places)."""
        rng = self.rng
        fresh = make_entities(rng, NameMaker(rng, self.reserved), FRESH_COUNTS)
        self.reuse_public_values(fresh)
        self.share_names(fresh)
        groups = [[e] for e in fresh.people + fresh.companies] + product_groups(fresh.products)
        prefixes = {"person": "p", "company": "c", "product": "g"}
        docs: list[Document] = [
            entity_document(f"{prefixes[g[0].kind]}{rng.randint(0, 9999):04d}", g, rng) for g in groups
        ]
        docs += [place_document(f"t{rng.randint(0, 9999):04d}", p, rng) for p in fresh.places[:2]]
        gold = rng.choice(docs[: len(groups)])
        return rng.choice(gold.facts), gold, [d for d in docs if d is not gold]

    def context_question(self) -> tuple[Fact, list[ContextChunk]]:
        """A fresh fact shown in passages the way retrieval hands them over.

        Half the time the passages are short excerpts (the fact's sentence, up to two of its neighbours and maybe a
        one-sentence distractor); otherwise whole documents, gold among 0-1 others, often one like it, mostly first.
        """
        rng = self.rng
        fact, gold, rest = self.fresh_fact()
        alike = [d for d in rest if d.doc_id[0] == gold.doc_id[0]]
        if alike and rng.random() < HARD_NEGATIVES:
            rest = alike  # what retrieval ranks next to the gold document is usually a document like it
        others = rng.sample(rest, rng.randint(0, 1))
        if rng.random() < EXCERPTS:
            chosen = [self.excerpt(gold, fact)] + [self.excerpt(d, None) for d in others]
        else:
            chosen = [self.chunk(d) for d in [gold] + others]
        if rng.random() >= GOLD_FIRST:
            rng.shuffle(chosen)
        return fact, chosen

    def share_names(self, fresh: World) -> None:
        """Often give two entities of a kind a name word in common ('Belgim Mardun', 'Belgim Raduntho'), as
        the documents retrieval ranks next to each other do: only the whole name tells their facts apart."""
        rng = self.rng
        taken = {e.name for e in fresh.places + fresh.subjects()} | self.reserved
        for group in (fresh.people, fresh.companies, fresh.products):
            if rng.random() >= SHARED_NAMES:
                continue
            a, b = rng.sample(group, 2)
            words, mine = a.name.split(" ", 1), b.name.split(" ", 1)
            keep = rng.randrange(2)
            name = " ".join(words[i] if i == keep else mine[i] for i in range(2))
            if name in taken:
                continue
            taken.add(name)
            for e in fresh.subjects():  # companies are values of people and products
                for relation, value in e.attrs.items():
                    if value == b.name:
                        e.attrs[relation] = name
            b.name = name

    def reuse_public_values(self, fresh: World) -> None:
        """Half the places and companies fresh facts point to become the world's own, as in the documents,
        where an unknown person often works at a company the model has heard of."""
        for entity in fresh.subjects():
            for relation, value in entity.attrs.items():
                kind = VALUE_KINDS.get(relation)
                if kind is not None and self.rng.random() < PUBLIC_VALUES:
                    entity.attrs[relation] = self.rng.choice(self.public[kind])

    def excerpt(self, doc: Document, fact: Fact | None) -> ContextChunk:
        """A few sentences of `doc` in their order: the one stating `fact` and up to two others, or one if no fact."""
        sentences = list(doc.sentences)
        if fact is None:
            return ContextChunk(self.rng.choice(sentences), doc.filename)
        stating = stating_sentence(doc, fact)
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

    def sentence_item(self) -> list[Message]:
        """The first lesson: a question answered from one-sentence passages, the one stating it among up to
        three stating the same relation of other entities (so only the subject tells them apart), or one time
        in five a known fact closed-book."""
        instructions = self.rng.choice(("", FACT_INSTRUCTIONS))
        if self.rng.random() < 0.2:
            return answered(instructions, self.next_known())
        fact, gold, rest = self.fresh_fact()
        rivals = [(f, d) for d in rest for f in d.facts if f.relation == fact.relation]
        chosen = [(fact, gold), *self.rng.sample(rivals, min(len(rivals), self.rng.choice((0, 1, 1, 2, 2, 3))))]
        self.rng.shuffle(chosen)
        return answered(instructions, fact, context=[ContextChunk(stating_sentence(d, f), d.filename) for f, d in chosen])

    def copy_item(self) -> list[Message]:
        """A copy-phase conversation: a question answered from retrieved-looking passages, one time in five a known
        fact closed-book, and COPY_DEMOS of the time a known fact in a demonstrated format; no invented instructions.

        A tiny model learns to copy from context only when copying is most of what it sees; the full mix follows.
        """
        instructions = self.rng.choice(("", FACT_INSTRUCTIONS))
        roll = self.rng.random()
        if roll < 0.2:
            return answered(instructions, self.next_known())
        if roll < 0.2 + COPY_DEMOS:
            return self.demonstrated(instructions, context=False)
        fact, context = self.context_question()
        return answered(instructions, fact, context=context)

    def demonstrated(self, instructions: str, *, context: bool) -> list[Message]:
        """A known fact (or with `context`, a fresh one from passages) asked after 1-3 demonstrations that show
        an invented answer format: following them means copying the format around the answer."""
        wrap = self.wrapper()
        demos = [Demo(f.question, wrap(f.value)) for f in (self.next_known() for _ in range(self.rng.randint(1, 3)))]
        if not context:
            return answered(instructions, self.next_known(), demos, (), wrap)
        fact, passages = self.context_question()
        return answered(instructions, fact, demos, passages, wrap)

    def phrase(self) -> str:
        """Two or three made-up lowercase words of two or three syllables, e.g. 'ka-mo fi-le-ra'."""
        rng = self.rng
        return " ".join("-".join(rng.choice(SKILL_SYLLABLES) for _ in range(rng.randint(2, 3))) for _ in range(rng.randint(2, 3)))

    def word_game(self) -> list[Message]:
        """Made-up words repeated back, sometimes after demonstrations: generic copying of the input, which is
        not the skill task's hidden cipher."""
        demos = [Demo(p, p) for p in (self.phrase() for _ in range(self.rng.randint(0, 3)))]
        final = self.phrase()
        return build_messages(self.rng.choice(GAME_INSTRUCTIONS), final, demos) + [{"role": "assistant", "content": final}]

    def judged_fact(self) -> tuple[Fact, str]:
        """A fact a judge lesson judges answers to, and its task as the committee's judges see it: a known fact
        closed-book, or JUDGE_PASSAGES of the time a fresh one whose input is the passages stating it and then
        its question (the judge reads the value off them)."""
        instructions = self.rng.choice(JUDGE_INSTRUCTIONS)
        if self.rng.random() < JUDGE_PASSAGES:
            fact, context = self.context_question()
            return fact, judged_task(instructions, f"{render_context(context)}\n\n{fact.question}")
        fact = self.next_known()
        return fact, judged_task(instructions, fact.question)

    def wrong_answer(self, fact: Fact) -> str:
        """An answer to `fact`'s question that is wrong but of its kind: another place, known company, year or
        price, NEAR_MISSES of the time one close to the right value; never a name the stream keeps out."""
        rng = self.rng
        near = rng.random() < NEAR_MISSES
        kind = VALUE_KINDS.get(fact.relation)
        while True:
            if fact.relation == "price":
                tens = int(fact.value.split()[0]) // 10 + rng.choice((-1, 1)) * rng.randint(1, 3)
                low, high = PRICE_TENS
                answer = f"{min(max(tens, low), high) * 10 if near else rng.randint(low, high) * 10} crowns"
            elif kind is None:  # a year
                low, high = BIRTH_YEARS if fact.relation == "birth_year" else YEARS
                year = int(fact.value) + rng.choice((-1, 1)) * rng.randint(1, 5)
                answer = str(min(max(year, low), high) if near else rng.randint(low, high))
            elif near and kind == "company":
                answer = f"{fact.value.rsplit(' ', 1)[0]} {rng.choice(COMPANY_SUFFIXES)}"
            else:
                answer = rng.choice(self.public[kind])
            if answer != fact.value and (answer not in self.reserved or answer in self.public_names):
                return answer

    def judged_wrong(self, fact: Fact) -> str:
        """A wrong answer a judge lesson shows: DECORATED of the time the value (seven times in ten) or another one
        inside an invented format with words in it (brackets or dashes alone the lab's `normalized` metric forgives),
        else another value of its kind."""
        if self.rng.random() < DECORATED:
            value = fact.value if self.rng.random() < 0.7 else self.wrong_answer(fact)
            return self.invented_format(WORDED_FORMS)(value)
        return self.wrong_answer(fact)

    def critic_item(self) -> list[Message]:
        """The committee's critic: is the proposed answer correct? Right (yes) half the time, wrong (no) else."""
        fact, task = self.judged_fact()
        right = self.rng.random() < 0.5
        answer = fact.value if right else self.judged_wrong(fact)
        user = f"{task}\n\nProposed answer:\n{answer}\n\nIs this answer correct? Answer yes or no."
        return judge(CRITIC_SYSTEM, user, "yes" if right else "no")

    def comparator_item(self) -> list[Message]:
        """The committee's comparator: which of a right and a wrong answer is better, the right one shown as A
        half the time and as B else."""
        fact, task = self.judged_fact()
        wrong = self.judged_wrong(fact)
        first = self.rng.random() < 0.5
        a, b = (fact.value, wrong) if first else (wrong, fact.value)
        user = f"{task}\n\nAnswer A:\n{a}\n\nAnswer B:\n{b}\n\nWhich answer is better, A or B?"
        return judge(COMPARATOR_SYSTEM, user, "A" if first else "B")

    def need_item(self) -> list[Message]:
        """adaptive_rag's stated need: no for a known fact's question (the model answers it closed-book), yes
        for one about fresh entities (only documents could tell), half each."""
        known = self.rng.random() < 0.5
        fact = self.next_known() if known else self.fresh_fact()[0]
        user = f"Question:\n{fact.question}\n\nDo you need to look this up to answer it correctly? Answer yes or no."
        return judge(NEED_SYSTEM, user, "no" if known else "yes")

    def judge_item(self) -> list[Message]:
        """A judge lesson: 40% critic, 30% comparator, 30% stated need."""
        roll = self.rng.random()
        if roll < 0.4:
            return self.critic_item()
        if roll < 0.7:
            return self.comparator_item()
        return self.need_item()

    def item(self) -> list[Message]:
        """One conversation of the full mix: 12% closed-book known fact, 36% answer from context, 8% repeating
        made-up words, 24% with demonstrations and 20% judging answers or the need to look up (a mix of 1,000
        steps teaches the first four as often as one of 800 without the judges did)."""
        roll = self.rng.random()
        if roll < JUDGES:
            return self.judge_item()
        roll = (roll - JUDGES) / (1 - JUDGES)
        instructions = self.instructions()
        if roll < 0.15:
            return answered(instructions, self.next_known())
        if roll < 0.25:
            return self.word_game()
        if roll < 0.7:
            fact, context = self.context_question()
            return answered(instructions, fact, context=context)
        return self.demonstrated(instructions, context=self.rng.random() < 0.5)


def stating_sentence(doc: Document, fact: Fact) -> str:
    """The sentence of `doc` that states `fact`."""
    return next(s for s in doc.sentences if fact.subject in s and fact.value in s)


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



def judged_task(instructions: str, input_text: str) -> str:
    """A task as the committee's judges are shown it: its instructions, if any, then its input."""
    return (f"Instructions: {instructions}\n\n" if instructions else "") + f"Input:\n{input_text}"


def judge(system: str, user: str, verdict: str) -> list[Message]:
    """A judge's conversation: the judge's system prompt, the question put to it, and its one-word verdict."""
    return [{"role": "system", "content": system}, {"role": "user", "content": user},
            {"role": "assistant", "content": verdict}]
