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


MAX_DEPTH = 64  # nesting a task file may have; deeper is refused before anything recurses that far
MAX_ALIAS_NODES = 10_000  # nodes YAML aliases may add by repeating what they point to ("billion laughs")


class _Builder:
    """Builds plain data from a composed YAML node graph, noting the line of every path.

    An alias is the node it points to, composed once: building it again for every alias is what makes a
    few hundred bytes of nested aliases expand to billions of nodes. So every node built a second time
    counts, and past MAX_ALIAS_NODES the file is refused, before time or memory run out.
    """

    def __init__(self, file: Path):
        self.file = file
        self.lines: dict[Loc, int] = {}
        self.built: set[int] = set()  # ids of the nodes built at least once
        self.repeated = 0
        self.scalars = yaml.SafeLoader("")

    def build(self, node: yaml.Node, loc: Loc, line: int, depth: int = 0, alias_line: int | None = None) -> Any:
        """`node` as data; `line` is where the reference to it is written (a key's line, a sequence's), and
        `alias_line` where the alias that repeats it is, when it is a repetition."""
        if id(node) in self.built:
            alias_line = alias_line or line
            self.repeated += 1
            if self.repeated > MAX_ALIAS_NODES:
                raise InputError(
                    f"YAML aliases here expand to more than {MAX_ALIAS_NODES:,} nodes; write the values out instead",
                    file=self.file, line=alias_line,
                )
        else:
            self.built.add(id(node))
        start = node.start_mark.line + 1
        if depth > MAX_DEPTH:
            raise InputError(f"nested more than {MAX_DEPTH} levels deep", file=self.file, line=start)
        self.lines.setdefault(loc, start)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key_line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode):
                    kind = "mapping" if isinstance(key_node, yaml.MappingNode) else "sequence"
                    raise InputError(f"keys must be strings, got a {kind}", file=self.file, line=key_line)
                key = self._scalar(key_node)
                if not isinstance(key, str):
                    raise InputError(f"keys must be strings, got {key!r}", file=self.file, line=key_line)
                if key in out:
                    raise InputError(f"duplicate key '{key}'", file=self.file, line=key_line)
                self.lines[loc + (key,)] = key_line
                out[key] = self.build(value_node, loc + (key,), key_line, depth + 1, alias_line)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, loc + (i,), start, depth + 1, alias_line) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _scalar(self, node: yaml.Node) -> Any:
        """A scalar by its tag (`!!int abc` or an unknown `!tag` is an error at its line, not a traceback), and
        text only when it is text: `"\\ud800"` is half of a surrogate pair, which no file or parser can take."""
        line = node.start_mark.line + 1
        try:
            value = self.scalars.construct_object(node, deep=True)
        except Exception as e:  # noqa: BLE001 - a tag's constructor fails any way it does (!!int "" is an IndexError)
            said = getattr(e, "problem", None) or (str(e).splitlines() or [type(e).__name__])[0]
            raise InputError(f"invalid YAML value {node.value!r}: {said}", file=self.file, line=line) from None
        if isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as e:
                raise InputError(f"invalid YAML value: the escape for U+{ord(value[e.start]):04X} is half of a "
                                 "surrogate pair, not a character", file=self.file, line=line) from None
        return value


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
    except yaml.reader.ReaderError as e:  # a character YAML does not allow, e.g. a control character
        line = text[: e.position].count("\n") + 1
        code = e.character if isinstance(e.character, int) else ord(e.character)
        raise InputError(f"invalid YAML: character U+{code:04X} is not allowed ({e.reason})", file=path,
                         line=line) from None
    except yaml.YAMLError as e:
        raise InputError(f"invalid YAML: {str(e).splitlines()[0]}", file=path) from None
    except RecursionError:
        raise InputError("invalid YAML: nested too deeply", file=path) from None
    if node is None:
        raise InputError("file is empty", file=path)
    builder = _Builder(path)
    data = builder.build(node, (), node.start_mark.line + 1)
    return LocatedYaml(data, builder.lines)
