"""The lab's tasks, each built so that a known rung of the ladder should win."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from tunewise.lab.dialog import dialog
from tunewise.lab.world import Fact, World

SPLIT_SIZES = {"train": 100, "dev": 30, "test": 170}
SKILL_SPLIT_SIZES = {"train": 400, "dev": 50, "test": 170}
FORMAT = "ANSWER: {v} (confidence: high)"
SKILL_SYLLABLES: tuple[str, ...] = (
    "ba", "de", "fi", "go", "hu", "ka", "le", "mi", "no", "pu", "ra", "se", "ti", "vo", "wu", "ya", "zo", "ke",
    "lu", "mo",
)
FACT_INSTRUCTIONS = "Answer the question with the name, year or price only."


PROMPTING = ("zero_shot", "few_shot: {k: 3, selector: random}")
RETRIEVAL = ("rag: {k: 2, retriever: hybrid}", "few_shot_rag: {k: 2, shots: 3}")
# LoRA settings for the lab model (a tiny model wants a high learning rate): about 300 steps on one CPU thread.
LORA = "method: lora, r: 32, alpha: 64, lr: 5.0e-3, epochs: 12, batch_size: 16"
FINETUNE = f"finetune: {{{LORA}}}"
# On facts the model is also trained on the documents (knowledge injection, as Ovadia et al. 2023 compare with
# retrieval); finetune_rag has the same training, so the run trains once.
FINETUNE_DOCUMENTS = (
    f"finetune: {{{LORA}, documents: true}}",
    f"finetune_rag: {{{LORA}, documents: true, k: 2, retriever: hybrid}}",
)


# The question alone (what a retrieval-only pipeline sees), the whole transcript in the prompt (the paper's
# transcript baseline), and each checked by the verifier with the lab's scripted labeller (re-asked when stale;
# the question-alone arm also declining instead).
_LAB_VERIFY = "labeller: 'python:tunewise.lab.dialog:label'"
DIALOG_ARMS = (
    "rag: {name: rag_plain, k: 2, retriever: hybrid, history: none}",
    "rag: {name: rag_transcript, k: 2, retriever: hybrid}",
    f"rag: {{name: rag_verified, k: 2, retriever: hybrid, verify: {{{_LAB_VERIFY}}}}}",
    f"rag: {{name: rag_plain_verified, k: 2, retriever: hybrid, history: none, verify: {{{_LAB_VERIFY}}}}}",
    f"rag: {{name: rag_plain_abstain, k: 2, retriever: hybrid, history: none, "
    f"verify: {{on_stale: abstain, {_LAB_VERIFY}}}}}",
)


@dataclass(frozen=True)
class TaskSpec:
    """What a task.yaml says besides its data: the arms are the rungs the task is built to separate."""

    name: str
    description: str
    instructions: str
    metric: str
    min_score: float
    arms: tuple[str, ...] = PROMPTING
    input: str = "question"
    requirements: tuple[str, ...] = ()

    @property
    def retrieval(self) -> bool:
        """Whether an arm retrieves or trains on the documents, so the task file lists the world's documents."""
        return any("rag" in arm.split(":")[0] or "documents: true" in arm for arm in self.arms)


@dataclass(frozen=True)
class Example:
    """One line of data.jsonl; a conversation task's line has `messages` (and the answers a stale premise gives)
    instead of a question."""

    id: str
    question: str
    answer: str
    split: str
    gold_docs: tuple[str, ...]
    messages: tuple[dict[str, str], ...] = ()
    stale_answers: tuple[str, ...] = ()
    kind: str = ""

    def to_json(self) -> str:
        """The JSONL line, keys in a fixed order."""
        asked = {"messages": list(self.messages)} if self.messages else {"question": self.question}
        row = {"id": self.id, **asked, "answer": self.answer, "split": self.split, "gold_docs": list(self.gold_docs)}
        if self.messages:
            row |= {"stale_answers": list(self.stale_answers), "kind": self.kind}
        return json.dumps(row, ensure_ascii=False)


SPECS: dict[str, TaskSpec] = {
    "facts": TaskSpec(
        "facts",
        "Questions about facts found only in the documents, never in the model's pretraining: retrieval should win.",
        FACT_INSTRUCTIONS, "normalized", 0.8,
        (*PROMPTING, *RETRIEVAL, *FINETUNE_DOCUMENTS)),
    "format": TaskSpec(
        "format",
        "Questions the model knows, answered in a house format shown only by example: few-shot should win.",
        "Answer the question in our house format.", "exact", 0.8),
    "skill": TaskSpec(
        "skill",
        "Rewrite syllables through a fixed hidden cipher: too much to infer from a few demos, fine-tuning should win.",
        "Translate the words into Velish.", "exact", 0.8, (*PROMPTING, FINETUNE)),
    "mixed": TaskSpec(
        "mixed",
        "Half the questions are about facts the model knows, half about facts only in the documents.",
        FACT_INSTRUCTIONS, "normalized", 0.8,
        (*PROMPTING, *RETRIEVAL, "adaptive_rag: {k: 2, retriever: hybrid}",
         "self_consistency: {k: 16, temperature: 1.0}", "committee: {k: 5, temperature: 1.0}")),
    "dialog": TaskSpec(
        "dialog",
        "Conversations that state, correct and withdraw facts the documents also hold, then ask about them: the "
        "answer must rest on what still holds.",
        FACT_INSTRUCTIONS, "normalized", 0.5, DIALOG_ARMS, input="messages", requirements=("max_stale_rate: 0.1",)),
}


def split_labels(sizes: dict[str, int]) -> list[str]:
    """Split names in order train, dev, test with the given sizes."""
    return [name for name, n in sizes.items() for _ in range(n)]


def fact_examples(task: str, facts: list[Fact], doc_of: dict[str, str], answer: str = "{v}") -> list[Example]:
    """Examples asking each fact's question, splits assigned in order."""
    labels = split_labels(SPLIT_SIZES)
    return [
        Example(f"{task}-{i:04d}", f.question, answer.format(v=f.value), labels[i], (doc_of[f.subject],))
        for i, f in enumerate(facts)
    ]


def dialog_examples(facts: list[Fact], doc_of: dict[str, str], rng: random.Random) -> list[Example]:
    """A conversation per fact, each stating one or two true facts about other subjects between its updates."""
    labels = split_labels(SPLIT_SIZES)
    out = []
    for i, fact in enumerate(facts[: len(labels)]):
        others = rng.sample([f for f in facts if f.subject != fact.subject], rng.randint(1, 2))
        d = dialog(fact, others, rng)
        out.append(Example(f"dialog-{i:04d}", fact.question, d.answer, labels[i], (doc_of[fact.subject],),
                           tuple(d.messages()), d.stale, d.kind))
    return out


def mixed_facts(known: list[Fact], unknown: list[Fact], rng: random.Random) -> list[Fact]:
    """Half known, half unknown facts within every split, shuffled inside each split."""
    out: list[Fact] = []
    k = u = 0
    for n in SPLIT_SIZES.values():
        part = known[k : k + n // 2] + unknown[u : u + n - n // 2]
        k, u = k + n // 2, u + n - n // 2
        rng.shuffle(part)
        out.extend(part)
    return out


def cipher(rng: random.Random) -> dict[str, str]:
    """A permutation of the skill syllables with no syllable mapped to itself."""
    while True:
        targets = list(SKILL_SYLLABLES)
        rng.shuffle(targets)
        if all(a != b for a, b in zip(SKILL_SYLLABLES, targets)):
            return dict(zip(SKILL_SYLLABLES, targets))


def skill_examples(rng: random.Random) -> list[Example]:
    """Distinct phrases of 2-3 hyphenated words and their syllable-by-syllable cipher translations."""
    table = cipher(rng)
    labels = split_labels(SKILL_SPLIT_SIZES)
    seen: set[str] = set()
    out: list[Example] = []
    while len(out) < len(labels):
        words = [[rng.choice(SKILL_SYLLABLES) for _ in range(rng.randint(2, 3))] for _ in range(rng.randint(2, 3))]
        phrase = " ".join("-".join(w) for w in words)
        if phrase in seen:
            continue
        seen.add(phrase)
        answer = " ".join("-".join(table[s] for s in w) for w in words)
        out.append(Example(f"skill-{len(out):04d}", phrase, answer, labels[len(out)], ()))
    return out


def build_tasks(world: World) -> dict[str, list[Example]]:
    """Every task's examples; subjects' doc_ids must already be set (see documents.world_documents)."""
    rng = random.Random(f"tunewise-lab-tasks-{world.seed}")
    doc_of = {e.name: e.doc_id for e in world.subjects()}
    facts = world.facts()
    known = [f for f in facts if f.known]
    unknown = [f for f in facts if not f.known]
    n = sum(SPLIT_SIZES.values())
    rng.shuffle(known)
    rng.shuffle(unknown)
    mixed = mixed_facts(rng.sample(known, n // 2), rng.sample(unknown, n // 2), rng)
    return {
        "facts": fact_examples("facts", unknown[:n], doc_of),
        "format": fact_examples("format", known[:n], doc_of, FORMAT),
        "skill": skill_examples(rng),
        "mixed": fact_examples("mixed", mixed, doc_of),
        "dialog": dialog_examples(rng.sample(unknown, n), doc_of, rng),
    }


def task_yaml(spec: TaskSpec) -> str:
    """The task.yaml text in the shape tunewise's loader accepts."""
    return (
        f"name: {spec.name}\n"
        f"description: {json.dumps(spec.description)}\n"
        "data:\n"
        "  path: data.jsonl\n"
        f"  input: {spec.input}\n"
        "  output: answer\n"
        "  split_field: split\n"
        f"instructions: {json.dumps(spec.instructions)}\n"
        f"metric: {spec.metric}\n"
        "model:\n"
        "  uri: lab:../..\n"
        "  temperature: 0\n"
        "  max_tokens: 32\n"
        + ("knowledge:\n  paths: [../../docs]\n" if spec.retrieval else "")
        + "arms:\n"
        + "".join(f"  - {arm}\n" for arm in spec.arms)
        + "requirements:\n"
        f"  min_score: {spec.min_score}\n"
        + "".join(f"  {r}\n" for r in spec.requirements)
    )
