"""A scripted generator of word problems with defects planted at known rates, and a task to generate for.

It plays the generator in synth tests and in bench/synth.py: the sample it writes is decided by the prompt
(which holds the attempt number), so the same attempt written in full or streamed and stopped is the same
text, and exactly how many tokens in-flight rejection should save is computable from what it planted.
Tokens are word pieces (`\\s*\\S+`), as the loopback server streams them.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from tunewise.models.base import ChatRequest, Completion, Piece

NAMES = [f"{a}{b}" for a in ("Ta", "Ve", "Ro", "Mi", "Ka", "Lu", "Zo", "Pe", "Di", "So") for b in ("rin", "bo", "lla", "mek", "dor")]
OBJECTS = ("marbles", "apples", "stamps", "coins", "shells", "pencils", "cards", "buttons", "kites", "books",
           "plums", "bricks", "beads", "ribbons", "tickets", "lamps", "jars", "boats", "hats", "drums")
TEMPLATES = (
    ("{n} has {a} {o} and buys {b} more.", "How many {o} does {n} have now?", "+"),
    ("{n} collects {a} {o} on Monday and {b} on Tuesday.", "How many {o} did {n} collect in all?", "+"),
    ("{n} had {a} {o} and gave {b} away.", "How many {o} are left with {n}?", "-"),
    ("A box holds {a} {o} and {n} fills {b} boxes.", "How many {o} does {n} pack?", "*"),
)
# Mutually exclusive, drawn by one uniform number per attempt: (name, share, the stage it shows at).
DEFECTS = (("unposed", 0.15, 1), ("copy", 0.10, 1), ("hedge", 0.15, 2), ("arithmetic", 0.15, 3), ("unparsed", 0.05, 3))
ANSWER_WORDS = 80
PIECES = re.compile(r"\s*\S+")


@dataclass(frozen=True)
class Written:
    """A sample and the truth about it: which defect was planted (None: clean) and at which stage it shows."""

    text: str
    defect: str | None
    stage: int | None


def problem(rng: random.Random) -> tuple[str, str, int]:
    """A question, its reasoning answer (ending 'The answer is N.') and N."""
    name, obj = rng.choice(NAMES), rng.choice(OBJECTS)
    setup, ask, op = rng.choice(TEMPLATES)
    a, b = rng.randint(12, 99), rng.randint(2, 11)
    value = {"+": a + b, "-": a - b, "*": a * b}[op]
    question = f"{setup.format(n=name, a=a, b=b, o=obj)} {ask.format(n=name, o=obj)}"
    steps = (f"We read the problem carefully and note what {name} starts with and what changes. {name} starts with "
             f"{a} and the change is {b}. Nothing else in the story changes the count of {obj}, so one step is "
             f"enough. We check that the numbers are whole and that the change is applied once, in the order the "
             f"story tells it, and we keep the units as {obj} throughout, since the question asks for {obj} and "
             f"nothing is converted along the way. Writing the step out in full, the count is")
    filler = " ".join(steps.split()[: ANSWER_WORDS - 12])
    answer = f"{filler}: {a} {op} {b} = {value}. The answer is {value}."
    return question, answer, value


def write(prompt: str, evaluation_inputs: list[str], rates: tuple[tuple[str, float, int], ...] = DEFECTS) -> Written:
    """The sample for a prompt, with at most one planted defect."""
    digest = hashlib.sha256(prompt.encode()).hexdigest()
    rng = random.Random(digest)
    question, answer, value = problem(rng)
    u, cumulative, defect, stage = rng.random(), 0.0, None, None
    for name, share, shows_at in rates:
        cumulative += share
        if u < cumulative:
            defect, stage = name, shows_at
            break
    if defect == "unposed":
        question = question.rsplit(". ", 1)[0] + "."
    elif defect == "copy":
        question = rng.choice(evaluation_inputs)
    elif defect == "hedge":
        answer = "I'm not sure, but maybe " + answer[0].lower() + answer[1:]
    elif defect == "arithmetic":
        answer = answer.replace(f"= {value}.", f"= {value + 1}.").replace(f"is {value}.", f"is {value + 1}.")
    elif defect == "unparsed":
        answer = answer.replace(f" The answer is {value}.", " That settles it.")
    return Written(f"QUESTION: {question}\nANSWER: {answer}\nEND", defect, stage)


def pieces(text: str) -> list[str]:
    return PIECES.findall(text)


class ScriptedGenerator:
    """The writer as a StreamingModel in this process: for engine tests that need no server."""

    id = "scripted-generator"

    def __init__(self, evaluation_inputs: list[str], rates: tuple[tuple[str, float, int], ...] = DEFECTS):
        self.evaluation_inputs, self.rates = evaluation_inputs, rates
        self.generated = 0  # tokens written, streamed or not: what a provider would bill
        self.calls = 0

    def _text(self, request: ChatRequest) -> str:
        return write(request.messages[-1][1], self.evaluation_inputs, self.rates).text

    async def complete(self, request: ChatRequest, n: int = 1, *, first: int = 0) -> list[Completion]:
        self.calls += 1
        parts = pieces(self._text(request))[: request.max_tokens]
        self.generated += len(parts)
        return [Completion("".join(parts), len(request.messages[-1][1].split()), len(parts), 0.0)] * n

    async def stream(self, request: ChatRequest, *, sample: int = 0) -> AsyncIterator[Piece]:
        self.calls += 1
        for i, part in enumerate(pieces(self._text(request))[: request.max_tokens]):
            self.generated += 1
            yield Piece(part, 1, len(request.messages[-1][1].split()) if i == 0 else 0)

    async def aclose(self) -> None:
        pass


def write_problems_task(directory: Path, generator: dict, *, synth: dict | None = None, n: int = 60) -> Path:
    """A word-problem task: n examples (half train, a quarter dev, a quarter test) and a `synth:` block."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random("problems-task")
    with (directory / "data.jsonl").open("w") as f:
        for i in range(n):
            question, answer, _ = problem(rng)
            split = ("train", "train", "dev", "test")[i % 4]
            f.write(json.dumps({"id": f"p{i}", "question": question, "answer": answer, "split": split}) + "\n")
    task = {
        "name": "problems",
        "data": {"path": "data.jsonl", "input": "question", "output": "answer", "id": "id", "split_field": "split"},
        "instructions": "Solve the problem step by step and end with 'The answer is N.'",
        "metric": {"name": "regex", "pattern": r"The answer is (-?\d+)"},
        "model": {"uri": "openai:scripted", "base_url": generator.get("base_url", "http://127.0.0.1:9/v1")},
        "arms": ["zero_shot"],
        "synth": {"generator": generator, "answer_tokens": ANSWER_WORDS, "concurrency": 8, **(synth or {})},
    }
    path = directory / "task.yaml"
    path.write_text(yaml.safe_dump(task, sort_keys=False))
    return path
