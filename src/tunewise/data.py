"""Examples from JSONL, CSV or Parquet, with deterministic train/dev/test splits."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from tunewise.errors import InputError
from tunewise.prompt import Message, is_turn
from tunewise.spec.metric import TEXT_METRICS
from tunewise.spec.task import compile_template

if TYPE_CHECKING:
    from tunewise.spec import DataSpec, Task

SPLITS = ("train", "dev", "test")
SPLIT_ALIASES = {"train": "train", "dev": "dev", "val": "dev", "valid": "dev", "validation": "dev", "test": "test"}


@dataclass(frozen=True)
class Query:
    """What an arm is asked: an example without its answer. `fields` are the row's data fields but the
    target and `gold_docs` (e.g. the tests of a code task, for a committee's check). A conversation's `input`
    is its last user turn and `history` the turns before it, in OpenAI chat format."""

    id: str
    input: str
    fields: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    history: tuple[Message, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class Example:
    """One example: its id, rendered input, target answer, split, the row's other data fields (never the
    target) and the documents that answer it."""

    id: str
    input: str
    target: str
    split: str
    fields: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    gold_docs: tuple[str, ...] = ()
    history: tuple[Message, ...] = field(default=(), compare=False, repr=False)
    stale_answers: tuple[str, ...] = ()

    @property
    def query(self) -> Query:
        """The example as an arm may see it."""
        return Query(self.id, self.input, self.fields, self.history)


@dataclass(frozen=True)
class Dataset:
    """The examples of a task, by split."""

    train: list[Example]
    dev: list[Example]
    test: list[Example]

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "dev": len(self.dev), "test": len(self.test)}


def _decode(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", file=path) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(f"not valid UTF-8 (byte {e.start})", file=path, line=line) from None


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    # Only "\n" ends a line: JSON strings may hold U+2028 and friends, which str.splitlines() splits on.
    for number, line in enumerate(_decode(path).split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"invalid JSON: {e.msg} (column {e.colno})", file=path, line=number) from None
        except (ValueError, RecursionError) as e:  # a number of more than 4,300 digits; nesting past the stack
            said = "nested too deeply" if isinstance(e, RecursionError) else str(e).split(";")[0]
            raise InputError(f"invalid JSON: {said}", file=path, line=number) from None
        if not isinstance(row, dict):
            raise InputError(f"each line must be a JSON object, got {type(row).__name__}", file=path, line=number)
        if "\\ud" in line.lower() and not _is_text(row):
            raise InputError("invalid JSON: a \\uD800-\\uDFFF escape that is half of a surrogate pair, not a character",
                             file=path, line=number)
        yield number, row


def _is_text(row: dict[str, Any]) -> bool:
    """Whether every string in `row` is text (JSON's `\\ud800` alone decodes to half a character, which nothing
    downstream can encode)."""
    try:
        json.dumps(row, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read_csv(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(_decode(path), newline=""))
    try:
        for row in reader:
            if None in row:
                raise InputError("row has more cells than the header", file=path, line=reader.line_num)
            yield reader.line_num, row
    except csv.Error as e:
        raise InputError(f"invalid CSV: {e}", file=path, line=reader.line_num) from None


def _read_parquet(path: Path) -> Iterator[tuple[int | None, dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"not a readable Parquet file: {e}", file=path) from None
    for row in table.to_pylist():
        yield None, row


_READERS = {".jsonl": _read_jsonl, ".ndjson": _read_jsonl, ".csv": _read_csv, ".parquet": _read_parquet}


def read_rows(path: Path) -> Iterator[tuple[int | None, dict[str, Any]]]:
    """Rows of a data file with their line numbers (None where lines do not apply)."""
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise InputError(f"unsupported data format '{path.suffix}' (use .jsonl, .csv or .parquet)", file=path)
    if not path.is_file():
        raise InputError("data file not found", file=path)
    return reader(path)


def hash_split(example_id: str, fractions: tuple[float, float, float], seed: int) -> str:
    """A split that depends only on the id and seed, so adding examples never moves old ones."""
    digest = hashlib.sha256(f"{seed}:{example_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    train, dev, _ = fractions
    return "train" if u < train else "dev" if u < train + dev else "test"


def _as_text(value: Any) -> str:
    """A field's value as the text a prompt or a metric reads: strings as they are, anything else as JSON
    (values JSON has no form for, such as a Parquet timestamp, as their str())."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _output_problem(value: Any, output: str, metric: str) -> str | None:
    """What is wrong with an answer of this value under `metric`, if anything. An object or a list is JSON,
    which a text metric would compare character by character (key order, spacing): refused unless the metric
    reads JSON (`json`) or is the user's own (`python:`, which gets it as JSON text)."""
    if isinstance(value, (dict, list)) and metric in TEXT_METRICS:
        kind = "an object" if isinstance(value, dict) else "a list"
        return (f"the output '{output}' is {kind}, but metric '{metric}' compares text: use `metric: json`, "
                "or give the answer as a string")
    return None


def conversation(value: Any, name: str) -> tuple[tuple[Message, ...], str] | None:
    """A field holding a conversation (a list of `{"role", "content"}` turns, OpenAI chat format) as its history
    and its last user turn; None when the value is not a list of turns. Raises ValueError saying what is wrong."""
    if not (isinstance(value, list) and value and all(isinstance(t, dict) and "role" in t for t in value)):
        return None
    turns: list[Message] = []
    for i, turn in enumerate(value):
        if not is_turn(turn):
            raise ValueError(f"field '{name}' turn {i}: each turn must be "
                             '{"role": "system" | "user" | "assistant", "content": "<text>"}')
        turns.append({"role": turn["role"], "content": turn["content"]})
    if turns[-1]["role"] != "user":
        raise ValueError(f"field '{name}': a conversation must end with the user turn that asks the question")
    return tuple(turns[:-1]), turns[-1]["content"]


class InputRenderer:
    """An example's input as the arms see it: the task's template, the one field's value, or `field: value` lines
    (a served query is rendered by the same one)."""

    def __init__(self, spec: DataSpec):
        self.fields = spec.input_fields
        self.template = compile_template(spec.template) if spec.template else None

    def __call__(self, row: dict[str, Any]) -> str:
        if self.template is not None:
            return self.template.render(**row)
        if len(self.fields) == 1:
            return _as_text(row[self.fields[0]])
        return "\n".join(f"{name}: {_as_text(row[name])}" for name in self.fields)


def load_dataset(task: Task) -> Dataset:
    """Read the task's data file and split it; every problem names the file and line."""
    spec = task.data
    path = task.data_path
    render = InputRenderer(spec)
    required = [*spec.input_fields, spec.output] + ([spec.split_field] if spec.split_field else [])
    splits: dict[str, list[Example]] = {name: [] for name in SPLITS}
    seen: dict[str, int] = {}
    fractions = (spec.split.train, spec.split.dev, spec.split.test)
    for line, row in read_rows(path):
        where = {"file": path, "line": line}
        for name in required:
            if name not in row or row[name] is None:
                raise InputError(f"missing field '{name}'", **where)
        history: tuple[Message, ...] = ()
        try:
            one = None if spec.template or len(spec.input_fields) > 1 else spec.input_fields[0]
            chat = conversation(row[one], one) if one else None
        except ValueError as e:
            raise InputError(str(e), **where) from None
        try:
            if chat is not None:
                history, text = chat
            else:
                text = render(row)
        except jinja2.UndefinedError as e:
            raise InputError(f"data.template: {e.message}", **where) from None
        except Exception as e:  # noqa: BLE001 - a template can fail any way its expressions can (1/0, "a" + 1)
            raise InputError(f"data.template: {type(e).__name__}: {e}", **where) from None
        problem = _output_problem(row[spec.output], spec.output, task.metric.name)
        if problem:
            raise InputError(problem, **where)
        target = _as_text(row[spec.output])
        if spec.id:
            if row.get(spec.id) in (None, ""):
                raise InputError(f"missing id field '{spec.id}'", **where)
            example_id = str(row[spec.id])
            if example_id in seen:
                raise InputError(f"duplicate id '{example_id}' (first on line {seen[example_id]})", **where)
        else:
            # From the input alone: an id derived from the target would let an arm test candidate answers on it.
            said = json.dumps([*history, text], ensure_ascii=False) if history else text
            example_id = hashlib.sha256(said.encode()).hexdigest()[:12]
            n = 2
            base = example_id
            while example_id in seen:
                example_id, n = f"{base}-{n}", n + 1
        seen[example_id] = line or 0
        if spec.split_field:
            split = SPLIT_ALIASES.get(str(row[spec.split_field]).strip().lower())
            if split is None:
                raise InputError(
                    f"split '{row[spec.split_field]}' must be one of train, dev (or val/validation), test", **where
                )
        else:
            split = hash_split(example_id, fractions, spec.split.seed)
        gold = row.get("gold_docs") or ()
        gold_docs = tuple(str(d) for d in gold) if isinstance(gold, list) else ()
        stale = row.get("stale_answers") or ()
        stale_answers = tuple(_as_text(a) for a in stale) if isinstance(stale, list) else ()
        fields = {k: v for k, v in row.items() if k not in (spec.output, "gold_docs", "stale_answers")}
        splits[split].append(Example(example_id, text, target, split, fields, gold_docs, history, stale_answers))
    if not seen:
        raise InputError("no examples in the data file", file=path)
    if not splits["test"]:
        raise InputError(f"no test examples after the split ({len(seen)} examples)", file=path)
    test = splits["test"][: spec.max_test] if spec.max_test else splits["test"]
    return Dataset(train=splits["train"], dev=splits["dev"], test=test)
