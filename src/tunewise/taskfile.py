"""Reading a task: YAML with the line of every key, the spec validated, each arm by its own params model.

Every problem is an InputError naming the file and the line of the offending key, so `tunewise run` prints
one line. Arms are looked up in the registry (built-in or `python:module:Class`), as is a `python:` metric,
which must import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tunewise.arms.registry import validate_arm
from tunewise.errors import InputError
from tunewise.spec import ArmParams, Task, arm_entries
from tunewise.user_code import import_function
from tunewise.yaml_lines import LocatedYaml, load_yaml

ErrorDetails = dict[str, Any]


class Shorthand(str):
    """The arm name of a `- name: {params}` entry in an error's location: the key of its line, not a field."""


def _pretty_loc(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if not isinstance(p, Shorthand)]
    return "".join(f"[{p}]" if isinstance(p, int) else ("." if i else "") + str(p) for i, p in enumerate(parts))


def _message(err: ErrorDetails) -> tuple[str, tuple[Any, ...]]:
    """What a pydantic error says, in our words, and the location whose line it is on."""
    loc = tuple(err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "duplicate_arm":
        return msg, (*loc, err["ctx"]["index"])
    if err["type"] == "missing":
        return f"missing required field '{loc[-1]}'", loc[:-1]
    if err["type"] == "extra_forbidden":
        return f"unknown field '{loc[-1]}'", loc
    if err["type"] == "unknown_arm":
        return msg, loc
    return (f"{_pretty_loc(loc)}: {msg}" if loc else msg), loc


def _arm_errors(raw: list[Any], entries: list[Any], base_dir: Path | None) -> tuple[list[ArmParams], list[ErrorDetails]]:
    """Each entry validated by its arm's params model; the errors, located under `arms[i]` (their line: under
    the arm's name in the file when it was written `- name: {params}`)."""
    params: list[ArmParams] = []
    errors: list[ErrorDetails] = []
    for i, (written, entry) in enumerate(zip(raw, entries)):
        loc: tuple[Any, ...] = ("arms", i)
        if isinstance(written, dict) and "arm" not in written and len(written) == 1:
            loc = (*loc, Shorthand(next(iter(written))))
        if not isinstance(entry, dict):
            errors.append({"type": "unknown_arm", "loc": loc, "msg": "an arm is a name, `name: {params}` or a mapping with `arm:`"})
            continue
        if "arm" not in entry:
            errors.append({"type": "missing", "loc": (*loc, "arm"), "msg": ""})
            continue
        try:
            params.append(validate_arm(entry, base_dir))
        except ValidationError as e:
            errors += [{**err, "loc": (*loc, *err["loc"])} for err in e.errors()]
        except ValueError as e:
            errors.append({"type": "unknown_arm", "loc": (*loc, "arm"), "msg": str(e)})
    return params, errors


def _validate(data: Any, base_dir: Path | None, path: Path | None, located: LocatedYaml | None) -> Task:
    def line(loc: tuple[Any, ...]) -> int | None:
        return located.line_of(loc) if located else None

    if not isinstance(data, dict):
        raise InputError("a task file must be a mapping of keys (name, data, metric, model, arms, ...)", file=path, line=1)
    entries = arm_entries(data.get("arms"))
    params, errors = _arm_errors(data["arms"], entries, base_dir) if isinstance(entries, list) else ([], [])
    task = None
    try:
        task = Task.model_validate({**data, "arms": params} if isinstance(entries, list) else data)
    except ValidationError as e:
        # An arm that failed is not in the list validated: what the list then says (too short, duplicates) is moot.
        errors += [err for err in e.errors() if not (errors and err["loc"][:1] == ("arms",))]
    if errors:
        # The first error in file order; a missing field (no line of its own) only when nothing else is wrong.
        err = min(errors, key=lambda er: (er["type"] == "missing", line(tuple(er["loc"])) or 0))
        msg, loc = _message(err)
        raise InputError(msg, file=path, line=line(loc))
    assert task is not None
    task._path, task._root, task._located = path, base_dir, located
    if task.metric.name.startswith("python:"):
        try:
            import_function(task.metric.name, base_dir)
        except ValueError as e:
            raise task.error(str(e), "metric") from None
    return task


def load_task(path: str | Path) -> Task:
    """Read and validate a task file; raises InputError naming the file and line."""
    path = Path(path)
    located = load_yaml(path)
    return _validate(located.data, path.parent, path, located)


def parse_task(data: dict[str, Any], base_dir: str | Path | None = None) -> Task:
    """A task from the mapping a task file holds (relative paths and `python:` modules are taken from
    `base_dir`, default the working directory); raises InputError."""
    return _validate(data, Path(base_dir) if base_dir is not None else None, None, None)
