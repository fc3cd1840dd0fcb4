"""`tunewise synth`: N synthetic training examples for a task, generated with in-flight rejection.

Samples are generated in waves of `concurrency`; each is stopped at the first checkpoint where it fails
(see `tunewise.synth.sample`). Near-copies of accepted samples are judged in attempt order (in flight against
earlier waves, then within the wave), so the accepted set does not depend on which stream finished first.
Every finished sample is a line of `<out>.samples.jsonl`, written before the next wave starts: a resumed
call reads them back and generates nothing twice. With `baseline=True` each attempt is also generated in
full and filtered at the end, on the same prompt and sample number, for the comparison in the stats.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.data import Example, InputRenderer, load_dataset
from tunewise.errors import InputError
from tunewise.files import write_atomic
from tunewise.finetune.export import to_jsonl
from tunewise.models.base import ChatRequest, StreamingModel
from tunewise.prompt import Message, build_messages
from tunewise.spec import SynthSpec, Task
from tunewise.near_duplicates import NearDuplicates
from tunewise.synth.format import ANSWER_MARKER, END_MARKER, INPUT_MARKER, PROMPT_HEADER, SOURCE_HEADER
from tunewise.synth.sample import METHODS, Outcome, generate_then_filter, in_flight
from tunewise.synth.stats import SynthStats, stats_of
from tunewise.synth.validators import Draft, Score, Validator, build_validators

LOG_VERSION = 1
SYSTEM = (f"You write training examples for a task. Write exactly one, in this shape and nothing else:\n"
          f"{INPUT_MARKER} <the input>\n{ANSWER_MARKER} <the answer>\n{END_MARKER}")


@dataclass
class SynthOptions:
    """How many examples, where they go, and whether to run the generate-then-filter baseline beside."""

    n: int
    out: Path
    baseline: bool = False
    on_sample: Callable[[Outcome], None] | None = field(default=None, repr=False)


def samples_path(out: Path) -> Path:
    return out.with_name(out.stem + ".samples.jsonl")


def stats_path(out: Path) -> Path:
    return out.with_name(out.stem + ".stats.json")


def _one_input(task: Task) -> str:
    fields = task.data.input_fields
    if len(fields) != 1:
        raise task.error(f"synth writes one input per example; this task has {len(fields)} input fields", "data", "input")
    return fields[0]


def _input_text(example: Example, name: str) -> str:
    value = example.fields.get(name)
    return value if isinstance(value, str) else example.input


class Plan:
    """Everything fixed before the first call: seeds, chunks, references, validators, budget and fingerprint."""

    def __init__(self, task: Task, spec: SynthSpec):
        self.task, self.spec = task, spec
        self.field = _one_input(task)
        dataset = load_dataset(task)
        if spec.seeds and not dataset.train:
            raise task.error("synth needs train examples to show the generator (or `seeds: 0`)", "synth", "seeds")
        self.train = dataset.train
        self.references = NearDuplicates()
        for split in ("train", "dev", "test"):
            for example in getattr(dataset, split):
                self.references.add(_input_text(example, self.field), split)
        self.chunks = _chunks(task)
        self.validators: list[Validator] = build_validators(
            spec.validators, metric=task.metric, references=self.references, base_dir=task.base_dir,
            error=lambda message, i: task.error(message, "synth", "validators", i))
        expected = spec.answer_tokens or max(1, round(
            sum(len(e.target.split()) for e in self.train) / max(1, len(self.train)) * 4 / 3))
        self.budget = max(1, math.ceil(spec.s2_fraction * expected))
        self.dedup = any(v.name == "duplicate" for v in self.validators)
        self.render = InputRenderer(task.data)
        self.fingerprint = self._fingerprint(dataset)

    def _fingerprint(self, dataset: Any) -> str:
        spec = self.spec.model_dump(mode="json", exclude={"concurrency": True, "generator": {
            "max_concurrency", "timeout_s", "max_retries", "api_key_env"}})
        h = hashlib.sha256(json.dumps([LOG_VERSION, spec, self.task.instructions, self.task.metric.model_dump(mode="json"),
                                       self.task.seed], sort_keys=True).encode())
        for split in ("train", "dev", "test"):
            for e in getattr(dataset, split):
                h.update(f"{split}\0{e.input}\0{e.target}\0".encode())
        for chunk in self.chunks:
            h.update(chunk.encode())
        return h.hexdigest()

    def seeds(self, attempt: int) -> list[Example]:
        rng = random.Random(f"{self.task.seed}-synth-{attempt}")
        return rng.sample(self.train, min(self.spec.seeds, len(self.train)))

    def chunk(self, attempt: int) -> str | None:
        return self.chunks[attempt % len(self.chunks)] if self.chunks else None

    def request(self, attempt: int) -> ChatRequest:
        """The generation prompt of one attempt: the task's instructions, train seeds, and a chunk when there are
        documents. The attempt's number is in it, so a deterministic generator writes a new sample each time."""
        parts = [PROMPT_HEADER]
        if self.task.instructions:
            parts.append(f"The task's instructions: {self.task.instructions}")
        if self.spec.guidance:
            parts.append(self.spec.guidance)
        seeds = self.seeds(attempt)
        if seeds:
            parts.append("Examples of the task:\n\n" + "\n\n".join(
                f"{INPUT_MARKER} {_input_text(e, self.field)}\n{ANSWER_MARKER} {e.target}\n{END_MARKER}" for e in seeds))
        parts.append(f"This is sample {attempt + 1}; make it unlike the examples.")
        chunk = self.chunk(attempt)
        if chunk is not None:
            parts.append("Ask a question this passage answers, and answer it from the passage.")
            parts.append(SOURCE_HEADER + "".join(f"\n{line.strip()}" for line in chunk.splitlines() if line.strip()))
        messages: list[Message] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]
        return ChatRequest.from_messages(messages, temperature=self.spec.temperature, max_tokens=self.spec.max_tokens)

    def conversation(self, outcome: Outcome) -> list[Message]:
        """An accepted sample as the chat `tunewise finetune export` writes: the zero-shot prompt and the answer."""
        user = self.render({self.field: outcome.input})
        return [*build_messages(self.task.instructions, user), {"role": "assistant", "content": outcome.answer}]


def _chunks(task: Task) -> list[str]:
    if task.knowledge is None:
        return []
    from tunewise.knowledge.chunker import ChunkSettings, chunk_document, load_tokenizer
    from tunewise.knowledge.loaders import load_documents

    spec = task.knowledge
    paths = [(task.base_dir / p).resolve() for p in spec.paths]
    settings = ChunkSettings(size=spec.chunk_size, overlap=spec.chunk_overlap)
    tokenizer = load_tokenizer(settings.tokenizer)
    loaded = load_documents(paths, skip_bad=spec.skip_bad, max_file_mb=spec.max_file_mb)
    chunks = [c.text for d in loaded.documents for c in chunk_document(d, settings, tokenizer)]
    random.Random(f"{task.seed}-synth-chunks").shuffle(chunks)
    return chunks


class SampleLog:
    """`<out>.samples.jsonl`: a header with the plan's fingerprint, then one finished sample a line."""

    def __init__(self, path: Path, fingerprint: str):
        self.path = path
        self.done: dict[tuple[str, int], Outcome] = {}
        if path.exists():
            self._read(fingerprint)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"tunewise_synth": LOG_VERSION, "fingerprint": fingerprint}) + "\n", encoding="utf-8")

    def _read(self, fingerprint: str) -> None:
        lines = self.path.read_text(encoding="utf-8").splitlines()
        try:
            header = json.loads(lines[0]) if lines else {}
        except json.JSONDecodeError:
            header = {}
        if not isinstance(header, dict) or header.get("tunewise_synth") != LOG_VERSION:
            raise InputError("not a tunewise synth sample log", file=self.path, line=1)
        if header.get("fingerprint") != fingerprint:
            raise InputError("written for another synth: block, task or data; remove it or choose another --out",
                             file=self.path, line=1)
        for number, line in enumerate(lines[1:], start=2):
            try:
                outcome = Outcome.from_json(json.loads(line))
            except (json.JSONDecodeError, TypeError):
                if number == len(lines):  # a line torn by an interruption: that sample is generated again
                    self.path.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
                    break
                raise InputError("not a synth sample line", file=self.path, line=number) from None
            self.done[(outcome.method, outcome.attempt)] = outcome

    def add(self, outcome: Outcome) -> None:
        """Append one finished sample (a copy: settling it later changes the one in memory, not the line)."""
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(outcome.to_json(), ensure_ascii=False) + "\n")
        self.done[(outcome.method, outcome.attempt)] = Outcome.from_json(json.loads(json.dumps(outcome.to_json())))


ACCEPTED_COPY = "duplicate_accepted"


def _copy_of_accepted(accepted: NearDuplicates) -> Validator:
    """Near-copies of samples accepted in earlier waves; in flight, it stops a sample at S1."""

    def check(draft: Draft) -> Score:
        match = accepted.match(draft.input)
        if match is None:
            return Score(1.0)
        return Score(0.0, f"near-copy of an accepted input (ROUGE-L {match.rouge_l:.2f}): {match.text[:80]}")

    return Validator(ACCEPTED_COPY, 1, check)


def _settle(outcomes: list[Outcome], accepted: NearDuplicates, dedup: bool) -> None:
    """In attempt order, reject an accepted sample that copies one accepted before it, and remember the rest."""
    for o in sorted(outcomes, key=lambda o: o.attempt):
        if not o.accepted:
            continue
        score = _copy_of_accepted(accepted).check(Draft(3, o.input, o.answer)) if dedup else None
        if score is not None and score.value < 1:
            o.accepted = False
            o.scores[ACCEPTED_COPY], o.reasons[ACCEPTED_COPY] = score.value, score.reason
        else:
            accepted.add(o.input, "accepted")


async def asynthesize(task: Task, options: SynthOptions, model: StreamingModel | None = None) -> SynthStats:
    """Generate until `options.n` samples are accepted (or the attempts run out), write them as chat JSONL to
    `options.out` with `<out>.stats.json` beside, and return the stats."""
    spec = task.synth
    if spec is None:
        raise InputError("this task has no `synth:` block (generator, validators) to generate with", file=task.path)
    plan = Plan(task, spec)
    own_model = model is None
    if model is None:
        model = _open_generator(task, spec)
    try:
        log = SampleLog(samples_path(options.out), plan.fingerprint)
        kept = await _generate(plan, options, log, model)
    finally:
        if own_model:
            await model.aclose()
    accepted = [o for o in kept["msifr"] if o.accepted][: options.n]
    write_atomic(options.out, to_jsonl([plan.conversation(o) for o in accepted]))
    stats = stats_of(spec, kept, validators=[v.name for v in plan.validators], budget=plan.budget, wanted=options.n,
                     written=len(accepted), out=options.out)
    write_atomic(stats_path(options.out), stats.model_dump_json(indent=2) + "\n")
    return stats


async def _generate(plan: Plan, options: SynthOptions, log: SampleLog, model: StreamingModel) -> dict[str, list[Outcome]]:
    """Waves of attempts until n are accepted; the baseline, when asked for, makes the same attempts."""
    limit = max(options.n, math.ceil(options.n * plan.spec.max_attempts))
    methods = METHODS if options.baseline else METHODS[:1]
    kept: dict[str, list[Outcome]] = {m: [] for m in methods}
    accepted = {m: NearDuplicates(plan.references.max_rouge_l) for m in methods}
    attempt = 0
    while attempt < limit and sum(o.accepted for o in kept["msifr"]) < options.n:
        wave = range(attempt, min(limit, attempt + plan.spec.concurrency))
        for method in methods:
            kept[method] += await _wave(plan, method, wave, log, model, accepted[method], options.on_sample)
        attempt = wave.stop
    return kept


async def _wave(plan: Plan, method: str, wave: range, log: SampleLog, model: StreamingModel,
                accepted: NearDuplicates, on_sample: Callable[[Outcome], None] | None) -> list[Outcome]:
    """One wave of one method: each sample logged as it finishes (raw, before the in-order copy check, which is
    made again from the log on resume), then settled in attempt order."""
    validators = plan.validators
    if method == "msifr" and plan.dedup:
        validators = [*validators, _copy_of_accepted(accepted)]

    async def one(a: int) -> Outcome:
        if (method, a) in log.done:
            return log.done[(method, a)]
        request, chunk, threshold = plan.request(a), plan.chunk(a), plan.spec.threshold
        if method == "msifr":
            o = await in_flight(model, request, attempt=a, validators=validators, threshold=threshold,
                                budget=plan.budget, chunk=chunk)
        else:
            o = await generate_then_filter(model, request, attempt=a, validators=validators, threshold=threshold,
                                           chunk=chunk)
        log.add(o)
        if on_sample is not None:
            on_sample(o)
        return o

    outcomes = sorted(await asyncio.gather(*(one(a) for a in wave)), key=lambda o: o.attempt)
    _settle(outcomes, accepted, plan.dedup)
    return outcomes


def _open_generator(task: Task, spec: SynthSpec) -> StreamingModel:
    from tunewise.evaluation.backend import local_source, open_model

    try:
        model = open_model(spec.generator, local_source(spec.generator, task.base_dir))
    except (FileNotFoundError, InputError) as e:
        raise task.error(f"generator {spec.generator.uri}: {getattr(e, 'message', e)}", "synth", "generator") from None
    if not isinstance(model, StreamingModel):
        raise task.error(f"generator {spec.generator.uri} cannot stream", "synth", "generator")
    return model


def synthesize(task: Task, options: SynthOptions, model: StreamingModel | None = None) -> SynthStats:
    """Synchronous wrapper around `asynthesize`."""
    return asyncio.run(asynthesize(task, options, model))
