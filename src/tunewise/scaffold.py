"""`tunewise init`: a commented task file drafted from a user's own data file.

The rows are read by the task's own reader (`tunewise.data.read_rows`); from them come the input and output
fields, the split, a metric and the arms that apply, each written with a comment saying why, so a user starts
from a file they can read and change rather than from a blank page. Before the draft is returned its data half
is checked as a run checks it (`parse_task`, `load_dataset`): what a run would refuse about the rows is told now,
as an InputError at the row's line. The model is left for the user to name (`uri: SET-ME`), so the file fails
with a one-line error at that line until it is set, and runs once it is.
"""

from __future__ import annotations

import json
import math
import os
import re
import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tunewise.data import SPLIT_ALIASES, conversation, load_dataset, read_rows
from tunewise.errors import InputError, one_line
from tunewise.files import check_folder
from tunewise.metrics import parse_json_answer
from tunewise.taskfile import parse_task

MODEL_PLACEHOLDER = "SET-ME"
# OpenAI's fine-tuning guide sees improvements from 50-100 examples (its minimum is 10); below 50 a fine-tune
# mostly memorises what few_shot can already show in the prompt, for a training cost.
FINETUNE_MIN_TRAIN = 50
# adaptive_rag fits its retrieve-or-not gate on necessity measured per train query: fewer, and it is fitted on noise.
ADAPTIVE_MIN_TRAIN = 20
MAX_LABELS = 20  # at most this many distinct outputs (each seen twice on average) are labels
LABEL_WORDS = 4  # ...of at most this many words
SHORT_WORDS = 5  # outputs of at most this many words are short answers (normalized), longer ones free text (f1)
MAX_TEST = 1000  # test examples evaluated by default: every arm answers each one, and 1,000 gives about ±0.03
FEW_SHOT_K, RAG_K, RAG_SHOTS = 4, 4, 3

# Names a field is recognised by, most telling first.
OUTPUT_NAMES = ("output", "answer", "answers", "label", "target", "completion", "response", "expected",
                "gold", "reference", "class", "category", "y")
ID_NAMES = ("id", "_id", "uid", "example_id", "qid", "idx")
SPLIT_NAMES = ("split", "fold", "partition", "subset")
RESERVED = ("gold_docs", "stale_answers")  # read by name by load_dataset: never an input or the output
WIDTH = 110


@dataclass(frozen=True)
class TaskScaffold:
    """A drafted task file: its text, where it is meant to go (its paths are relative to that folder), and
    the choices made, for a caller to report."""

    text: str
    path: Path
    data: Path
    input: str | list[str]
    output: str
    metric: str
    arms: tuple[str, ...]
    sizes: dict[str, int]

    def write(self, *, force: bool = False) -> None:
        """Write the task file; an existing file is replaced only with `force` (InputError otherwise), and
        the data file never."""
        if self.path.is_dir():
            raise InputError("is a folder: name the task file to write, e.g. task.yaml in it", file=self.path)
        if self.path.resolve() == self.data.resolve():
            raise InputError("is the data file: write the task file somewhere else", file=self.path)
        check_folder(self.path.parent, "the task file's folder")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self.path.open("w" if force else "x", encoding="utf-8") as f:
                f.write(self.text)
        except FileExistsError:
            raise InputError("exists already: overwrite it with --force", file=self.path) from None
        except OSError as e:
            raise InputError(f"cannot write: {e.strerror or e}", file=self.path) from None


def scaffold_task(
    data: str | Path,
    *,
    task_path: str | Path = "task.yaml",
    docs: str | Path | None = None,
    input_fields: list[str] | None = None,
    output: str | None = None,
) -> TaskScaffold:
    """Draft a commented task file for the examples in `data` (.jsonl, .ndjson, .csv, .parquet), to be written
    at `task_path`. `input_fields` and `output` name the fields (detected when not given); `docs`, a folder or
    file of documents, adds `knowledge:` and the retrieval arms. Raises InputError naming the file and line."""
    data, task_path = Path(data), Path(task_path)
    rows = [row for _, row in read_rows(data)]
    if not rows:
        raise InputError("no examples in the data file", file=data)
    fields = _Fields.of(rows, data, input_fields, output)
    metric = _suggest_metric([row.get(fields.output) for row in rows])
    task_dir = task_path.parent
    data_block: dict[str, Any] = {"path": _relative(data, task_dir), "input": fields.input, "output": fields.output}
    if fields.id:
        data_block["id"] = fields.id
    if fields.split:
        data_block["split_field"] = fields.split
    name = _task_name(data)
    probe = parse_task({"name": name, "data": data_block, "metric": metric.name, "model": "openai:probe",
                        "arms": ["zero_shot"]}, base_dir=task_dir)
    try:
        dataset = load_dataset(probe)
    except InputError as e:  # named as the user named it, not as the resolved path
        raise (InputError(e.message, file=data, line=e.line) if e.file == str(probe.data_path) else e) from None
    sizes = dataset.sizes
    if docs is not None and not Path(docs).exists():
        raise InputError("documents not found (--docs names a folder or a file)", file=docs)
    arms = _arms(sizes["train"], docs is not None)
    text = _render(
        data=data, rows=len(rows), task_path=task_path, name=name, fields=fields, data_block=data_block, sizes=sizes,
        metric=metric, arms=arms, docs=_relative(Path(docs), task_dir) if docs is not None else None,
    )
    return TaskScaffold(
        text=text, path=task_path, data=data, input=fields.input, output=fields.output, metric=metric.name,
        arms=tuple(arm.label for arm in arms if arm.entry is not None), sizes=sizes,
    )


@dataclass(frozen=True)
class _Fields:
    """Which fields are the input, the output, the id and the split, and why."""

    input: str | list[str]
    output: str
    id: str | None
    split: str | None
    notes: dict[str, str]  # per choice (input, output, id, split, unused): the comment saying why

    @classmethod
    def of(cls, rows: list[dict[str, Any]], data: Path, inputs: list[str] | None, output: str | None) -> _Fields:
        names = list(dict.fromkeys(key for row in rows for key in row))
        everywhere = [n for n in names if all(row.get(n) is not None for row in rows)]
        for flag, named in [("--input", n) for n in inputs or []] + ([("--output", output)] if output else []):
            if named not in names:
                raise InputError(f"{flag} '{named}': no such field (the fields: {', '.join(names)})", file=data)
        if output and output in (inputs or []):
            raise InputError(f"'{output}' is named by both --input and --output", file=data)
        notes: dict[str, str] = {}
        named = {output, *(inputs or [])}
        id_field = _id_field(rows, everywhere, named, notes)
        split_field = _split_field(rows, everywhere, named, notes)
        unused: dict[str, str] = {}
        for n in names:
            if n in named or n in (id_field, split_field):
                continue
            if n in RESERVED:
                unused[n] = "read by name: see README"
            elif n not in everywhere:
                unused[n] = "empty or missing in some rows"
            elif n.lower() in ID_NAMES:
                unused[n] = "an id, but not a unique one"
            elif n.lower() in SPLIT_NAMES:
                unused[n] = "named like a split, but not of train/dev/test"
        candidates = [n for n in everywhere if n not in unused and n not in (id_field, split_field)]
        chats = [n for n in candidates if _is_chat(rows[0][n])]
        if output:
            notes["output"] = f"output: '{output}', named by --output"
        else:
            output = cls._detect_output([n for n in candidates if n not in (inputs or [])], chats, data, notes)
        rest = [n for n in candidates if n != output]
        varied = [n for n in rest if len({_text(row[n]) for row in rows}) > 1]
        if not inputs and len(rows) > 1 and varied and len(varied) < len(rest):  # a constant tells the model nothing
            unused.update({n: "the same in every row" for n in rest if n not in varied})
            rest = varied
        chosen: str | list[str]
        if inputs:
            chosen = inputs[0] if len(inputs) == 1 else list(inputs)
            notes["input"] = "input: named by --input" + ("" if len(inputs) == 1 else ", shown as `field: value` lines")
        elif chats:
            chosen = chats[0]
            notes["input"] = (f"input: '{chosen}' holds conversations (OpenAI chat turns): the last user turn is the "
                              "question, and every arm shows the turns before it")
        elif not rest:
            raise InputError(f"only one field ('{output}') to use: tunewise needs an input field and an output field",
                             file=data)
        elif len(rest) == 1:
            chosen = rest[0]
            notes["input"] = f"input: '{chosen}', the one other field"
        else:
            chosen = rest
            notes["input"] = ("input: every other field, shown to the model as `field: value` lines; remove what it "
                              "should not see, or write a Jinja2 `template:` instead")
        shown = {chosen} if isinstance(chosen, str) else set(chosen)
        unused.update({n: "not an input" for n in rest if n not in shown})
        if unused:
            notes["unused"] = "not used: " + "; ".join(f"'{n}' ({why})" for n, why in unused.items())
        return cls(chosen, output, id_field, split_field, notes)

    @staticmethod
    def _detect_output(candidates: list[str], chats: list[str], data: Path, notes: dict[str, str]) -> str:
        by_name = {n.lower(): n for n in candidates if n not in chats}
        for known in OUTPUT_NAMES:
            if known in by_name:
                notes["output"] = f"output: '{by_name[known]}', named like an output"
                return by_name[known]
        plain = [n for n in candidates if n not in chats]
        if chats and not plain:
            raise InputError(f"field '{chats[0]}' holds whole conversations and there is no answer field: tunewise "
                             "reads the answer from a field of its own (e.g. \"answer\"), the conversation ending with "
                             "the user turn that asks for it", file=data)
        if not plain:
            raise InputError("no field is in every row, to be the output: name one with --output", file=data)
        notes["output"] = (f"output: '{plain[-1]}', the last field (none is named like an output: "
                           f"{', '.join(OUTPUT_NAMES[:4])}...); name another with --output")
        return plain[-1]


def _id_field(rows: list[dict[str, Any]], everywhere: list[str], named: set[str | None],
              notes: dict[str, str]) -> str | None:
    """A field named like an id whose values are unique and non-empty: stable example ids."""
    for name in everywhere:
        if name.lower() in ID_NAMES and name not in named:
            ids = [str(row[name]) for row in rows]
            if "" not in ids and len(set(ids)) == len(ids):
                notes["id"] = (f"id: '{name}' is unique in every row, so an example keeps its id (and its split) "
                               "when rows are added or edited")
                return name
    return None


def _split_field(rows: list[dict[str, Any]], everywhere: list[str], named: set[str | None],
                 notes: dict[str, str]) -> str | None:
    """A field named like a split whose values are all train, dev (or val/validation) or test."""
    for name in everywhere:
        if name.lower() in SPLIT_NAMES and name not in named:
            values = {str(row[name]).strip().lower() for row in rows}
            if all(v in SPLIT_ALIASES for v in values):
                notes["split"] = f"split: the '{name}' field says each row's split"
                return name
    return None


def _is_chat(value: Any) -> bool:
    """Whether a value has the shape of a conversation (what is wrong with its turns load_dataset says)."""
    try:
        return conversation(value, "") is not None
    except ValueError:
        return True


@dataclass(frozen=True)
class _Metric:
    name: str
    why: str
    instructions: str
    max_chars: int


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _suggest_metric(values: list[Any]) -> _Metric:
    """The metric the outputs call for: json when every one is a JSON object or list, exact for a few distinct
    short labels, normalized for other short answers, f1 (token overlap) for free text."""
    values = [v for v in values if v is not None]  # a row without one is load_dataset's to refuse, at its line
    texts = [_text(v) for v in values] or [""]
    max_chars = max(len(t) for t in texts)
    parsed = [v if isinstance(v, (dict, list)) else parse_json_answer(v) if isinstance(v, str) else None
              for v in values]
    if values and all(isinstance(p, (dict, list)) for p in parsed):
        objects = [p for p in parsed if isinstance(p, dict)]
        keys = list(dict.fromkeys(k for p in objects for k in p))
        kind = "object" if len(objects) == len(parsed) else "list" if not objects else "object or list"
        says = {"object": f"a JSON object with the keys {', '.join(keys)}" if keys else "a JSON object",
                "list": "a JSON list"}.get(kind, "JSON")
        return _Metric("json", f"metric: json, every output is a JSON {kind}: scored field by field (the share of "
                       "the target's fields the answer gets equal), whatever their order and spacing",
                       f"Answer with {says}, nothing else.", max_chars)
    counts = Counter(texts)
    words = max(len(t.split()) for t in texts)
    if len(counts) <= min(MAX_LABELS, len(texts) // 2) and words <= LABEL_WORDS:
        labels = [label for label, _ in counts.most_common()]
        return _Metric("exact", f"metric: exact, {len(counts)} distinct outputs in {len(texts)} rows "
                       f"({_quoted(labels)}), none longer than {_n(words, 'word')}: labels, right or wrong",
                       f"Answer with one of: {', '.join(labels)}.", max_chars)
    if words <= SHORT_WORDS:
        return _Metric("normalized", f"metric: normalized, short answers ({len(counts)} distinct, none longer than "
                       f"{_n(words, 'word')}): right when equal to the target but for case, punctuation and spacing",
                       f"Answer with the answer alone, in at most {_n(words, 'word')}.", max_chars)
    return _Metric("f1", f"metric: f1, free text (up to {_n(words, 'word')}, {len(counts)} distinct): the token "
                   "overlap with the target (SQuAD F1), so a partly right answer gets partial credit", "", max_chars)


@dataclass(frozen=True)
class _Arm:
    label: str
    entry: dict[str, Any] | str | None  # None: written commented out
    why: str


def _arms(train: int, docs: bool) -> list[_Arm]:
    """The arms that apply to a task with `train` train examples, with documents or without."""
    arms = [_Arm("zero_shot", "zero_shot", "zero_shot: the instructions and the input alone, the baseline to beat")]
    if train:
        k = min(FEW_SHOT_K, train)
        arms.append(_Arm("few_shot", {"few_shot": {"k": k, "selector": "random"}},
                         f"few_shot: {_n(k, 'demonstration')} per prompt from the {train} train examples (selector: "
                         "random | knn, the most similar inputs | bootstrap, demonstrations the model got right)"))
    else:
        arms.append(_Arm("few_shot", None, "no few_shot: the train split is empty, so there is nothing to demonstrate"))
    if docs:
        arms.append(_Arm("rag", {"rag": {"k": RAG_K, "retriever": "hybrid"}},
                         f"rag: the {RAG_K} document chunks most like the input, from knowledge: below "
                         "(retriever: dense | bm25 | hybrid)"))
        if train:
            shots = min(RAG_SHOTS, train)
            arms.append(_Arm("few_shot_rag", {"few_shot_rag": {"k": RAG_K, "shots": shots}},
                             f"few_shot_rag: both, {RAG_K} chunks and {_n(shots, 'demonstration')}"))
        if train >= ADAPTIVE_MIN_TRAIN:
            arms.append(_Arm("adaptive_rag", {"adaptive_rag": {"k": RAG_K}},
                             "adaptive_rag: retrieves only where this model needs it, as measured on the train "
                             f"examples ({train}, at least {ADAPTIVE_MIN_TRAIN} to fit its gate on)"))
        else:
            arms.append(_Arm("adaptive_rag", None, f"no adaptive_rag: {train} train examples, fewer than the "
                             f"{ADAPTIVE_MIN_TRAIN} its retrieve-or-not gate is fitted on"))
    else:
        arms.append(_Arm("rag", None, "no rag, few_shot_rag or adaptive_rag: no documents (`tunewise init DATA "
                         "--docs FOLDER` adds them)"))
    if train >= FINETUNE_MIN_TRAIN:
        arms.append(_Arm("finetune", {"finetune": {"method": "auto"}},
                         f"finetune: {train} train examples, at least {FINETUNE_MIN_TRAIN} (OpenAI's fine-tuning guide "
                         "sees gains from 50-100). method auto: LoRA here for hf:/lab: models, a provider job for "
                         "openai: models (a self-hosted server has no fine-tuning API: remove this arm for one)"))
        if docs:
            arms.append(_Arm("finetune_rag", {"finetune_rag": {"k": RAG_K}},
                             "finetune_rag: the same fine-tuned model, with retrieval"))
    else:
        arms.append(_Arm("finetune", None, f"no finetune: {train} train examples, fewer than {FINETUNE_MIN_TRAIN} "
                         "(OpenAI's fine-tuning guide sees gains from 50-100; with fewer, few_shot shows them as well "
                         "with no training cost)"))
    arms.append(_Arm("self_consistency", None, "self_consistency and committee sample k answers per query (k times "
                     "the cost) and vote; they pay off when answers vary from sample to sample. To measure them:\n"
                     "- self_consistency: {k: 8, temperature: 0.7}\n- committee: {k: 5, critics: 1, votes: 1}"))
    return arms


class _Writer:
    """Lines of YAML, each choice under a comment wrapped to the file's width."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def comment(self, text: str, indent: int = 0) -> None:
        """`text` as comment lines; each of its own lines (and a blank one) starts a new comment line."""
        for paragraph in text.split("\n"):
            wrapped = textwrap.wrap(one_line(paragraph), WIDTH - indent - 2, break_on_hyphens=False)
            self.lines += [" " * indent + "# " + line for line in wrapped or [""]]

    def key(self, name: str, value: Any, indent: int = 0, note: str = "") -> None:
        line = f"{' ' * indent}{name}: {_scalar(value)}"
        self.lines.append(f"{line}  # {note}" if note else line)

    def raw(self, line: str) -> None:
        self.lines.append(line)


def _render(*, data: Path, rows: int, task_path: Path, name: str, fields: _Fields, data_block: dict[str, Any],
            sizes: dict[str, int], metric: _Metric, arms: list[_Arm], docs: str | None) -> str:
    out = _Writer()
    out.comment(f"Drafted by `tunewise init` from {data.name} ({_n(rows, 'row')}). Each choice says why it was made: "
                f"change any of it. Set model.uri below, then: tunewise run {task_path}")
    out.key("name", name)
    out.raw("data:")
    out.key("path", data_block["path"], 2, "relative to this file")
    out.comment(fields.notes["input"], 2)
    out.key("input", fields.input, 2)
    out.comment(fields.notes["output"], 2)
    out.key("output", fields.output, 2)
    if "unused" in fields.notes:
        out.comment(fields.notes["unused"], 2)
    if fields.id:
        out.comment(fields.notes["id"], 2)
        out.key("id", fields.id, 2)
    counts = f"{sizes['train']} train, {sizes['dev']} dev, {sizes['test']} test"
    if fields.split:
        out.comment(f"{fields.notes['split']}: {counts}", 2)
        out.key("split_field", fields.split, 2)
    else:
        out.comment(f"split: there is no split field (train/dev/test), so each example's split is drawn from a hash of "
                    f"its {'id' if fields.id else 'input'} and the seed: {counts}. The same seed gives the same split, "
                    "and added rows never move the old ones.", 2)
        out.key("split", {"train": 0.5, "dev": 0.1, "test": 0.4, "seed": 0}, 2)
    if sizes["test"] > MAX_TEST:
        out.comment(f"max_test: every arm answers every test example it is given; the first {MAX_TEST:,} of the "
                    f"{sizes['test']:,} give a score to about ±0.03 (95%). Remove it to use them all.", 2)
        out.key("max_test", MAX_TEST, 2)
    elif sizes["test"] < 100:
        out.comment(f"{_n(sizes['test'], 'test example')}: a score is known to about "
                    f"±{0.98 / math.sqrt(sizes['test']):.2f} (95%); more rows narrow that", 2)
    out.comment("instructions: told to the model before every input, by every arm. "
                + ("A suggestion drawn from the outputs; say more about the task." if metric.instructions
                   else "Free-text outputs say little about the task: describe it here."))
    out.key("instructions", metric.instructions)
    out.comment(f"{metric.why}. Others: exact | normalized | f1 | contains | json | {{name: regex, pattern: ...}} | "
                "python:module:function")
    out.key("metric", metric.name)
    _render_model(out, metric, finetune=any(a.label == "finetune" and a.entry for a in arms))
    if docs is not None:
        out.comment("knowledge: the documents the retrieval arms search (--docs; .txt .md .html .pdf .jsonl), chunked "
                    "and embedded by the packaged all-MiniLM-L6-v2, offline")
        out.raw("knowledge:")
        out.key("paths", [docs], 2)
        out.key("chunk_size", 200, 2, "word pieces; all-MiniLM-L6-v2 reads 256, so a chunk is never cut")
    out.comment("arms: every one is measured on the same test examples; the recommendation is the cheapest that meets "
                "the requirements")
    out.raw("arms:")
    for arm in arms:
        out.comment(arm.why, 2)
        if isinstance(arm.entry, dict):
            (arm_name, params), = arm.entry.items()
            out.raw(f"  - {arm_name}: {_scalar(params)}")
        elif arm.entry is not None:
            out.raw(f"  - {arm.entry}")
    out.comment("requirements: what the recommended arm must meet (null: no such requirement). Without min_score, "
                "it is the cheapest arm not significantly worse than the best-scoring one.")
    out.raw("requirements:")
    for field, example, what in [
        ("min_score", "0.9", f"the mean {metric.name} score on test (0 to 1)"),
        ("max_p95_latency_ms", "2000", "95% of answers come faster than this"),
        ("max_cost_per_1k", "0.50", "US$ per 1,000 queries, training excluded"),
        ("monthly_queries", "100000", "arms are then ranked by monthly cost, one-off training included"),
    ]:
        out.raw(f"  {field}: null".ljust(27) + f"# e.g. {example}: {what}")
    return "\n".join(out.lines) + "\n"


def _render_model(out: _Writer, metric: _Metric, *, finetune: bool) -> None:
    tokens = max(16, min(4096, 16 * math.ceil(math.ceil(metric.max_chars / 3) * 1.5 / 16)))
    out.raw("model:")
    out.comment("uri: which model answers; until it is set, `tunewise run` stops at this line. openai:<model> "
                "(api.openai.com, or any OpenAI-compatible server: vLLM, Ollama, llama.cpp... with base_url) | "
                "hf:<id-or-path> (local transformers) | lab:<world> (the offline lab model)", 2)
    out.key("uri", MODEL_PLACEHOLDER, 2)
    out.raw("  # base_url: http://127.0.0.1:8000/v1  # a self-hosted OpenAI-compatible server; omit for api.openai.com")
    out.raw("  # api_key_env: OPENAI_API_KEY         # the variable the key is read from (never this file)")
    out.comment("prices, US$ per 1M tokens: at 0 every arm costs $0, so cost cannot tell them apart; set your "
                "model's to rank the arms by cost", 2)
    out.key("price_in_per_1m", 0.0, 2)
    out.key("price_out_per_1m", 0.0, 2)
    if finetune:
        out.key("price_train_per_1m", 0.0, 2, "per 1M tokens a provider fine-tuning job trains on (openai: models)")
    out.key("temperature", 0, 2, "the same prompt, the same answer: arms differ by their prompts, not by luck")
    out.comment(f"max_tokens: the longest output is {_n(metric.max_chars, 'character')} (about "
                f"{math.ceil(metric.max_chars / 4)} tokens): room for it, and no long rambles to wait for and pay "
                "for. Raise it for a model that reasons before it answers.", 2)
    out.key("max_tokens", tokens, 2)


def _scalar(value: Any) -> str:
    """`value` as a one-line YAML flow scalar, list or mapping."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, sort_keys=False, width=1 << 30)
    return text.removesuffix("\n...\n").strip()


def _relative(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()


def _task_name(data: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", data.stem).lstrip("_.-")
    return name or "task"


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _quoted(values: list[str], most: int = 6) -> str:
    shown = ", ".join(json.dumps(one_line(v)[:30], ensure_ascii=False) for v in values[:most])
    return shown + (f" and {len(values) - most} more" if len(values) > most else "")
