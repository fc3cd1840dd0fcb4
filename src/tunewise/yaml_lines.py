"""YAML loading that remembers the line of every key, so validation errors can name it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tunewise.errors import InputError

Loc = tuple[str | int, ...]


class LocatedYaml:
    """A parsed YAML document plus the 1-based line where each path into it starts."""

    def __init__(self, data: Any, lines: dict[Loc, int]):
        self.data = data
        self.lines = lines

    def line_of(self, loc: Loc) -> int | None:
        """The line of the deepest part of `loc` present in the file (skipping parts it lacks)."""
        best: int | None = self.lines.get(())
        path: Loc = ()
        for part in loc:
            candidate = path + (part,)
            if candidate in self.lines:
                path = candidate
                best = self.lines[candidate]
        return best


def _construct(node: yaml.Node, loc: Loc, lines: dict[Loc, int], file: Path, scalars: yaml.SafeLoader) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            key = scalars.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise InputError(f"keys must be strings, got {key!r}", file=file, line=key_line)
            if key in out:
                raise InputError(f"duplicate key '{key}'", file=file, line=key_line)
            lines[loc + (key,)] = key_line
            out[key] = _construct(value_node, loc + (key,), lines, file, scalars)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, loc + (i,), lines, file, scalars) for i, item in enumerate(node.value)]
    return scalars.construct_object(node, deep=True)


def load_yaml(path: Path) -> LocatedYaml:
    """Parse `path`; any syntax or encoding problem becomes an InputError with the line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError("file not found", file=path) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", file=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(f"not valid UTF-8 (byte {e.start})", file=path, line=line) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        raise InputError(f"invalid YAML: {e.problem or e.context}", file=path, line=line) from None
    except yaml.YAMLError as e:
        raise InputError(f"invalid YAML: {e}", file=path) from None
    if node is None:
        raise InputError("file is empty", file=path)
    lines: dict[Loc, int] = {}
    data = _construct(node, (), lines, path, yaml.SafeLoader(""))
    return LocatedYaml(data, lines)
