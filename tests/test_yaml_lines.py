"""YAML with lines: whatever a task file holds, its reading ends in data or in one InputError at a line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunewise.errors import InputError
from tunewise.yaml_lines import MAX_ALIAS_NODES, load_yaml

# "Billion laughs": 342 bytes whose aliases expand to 9**9 (387 million) strings.
BILLION_LAUGHS = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi")
)


def read(tmp_path: Path, text: str) -> object:
    path = tmp_path / "task.yaml"
    path.write_text(text, encoding="utf-8")
    return load_yaml(path).data


def error_of(tmp_path: Path, text: str) -> InputError:
    with pytest.raises(InputError) as info:
        read(tmp_path, text)
    return info.value


@pytest.mark.timeout(30)  # expanded, the bomb would not end: refused, it ends in milliseconds
def test_an_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    assert len(BILLION_LAUGHS) < 400
    e = error_of(tmp_path, BILLION_LAUGHS)
    assert f"expand to more than {MAX_ALIAS_NODES:,} nodes" in e.message
    assert e.line in range(2, 10)  # a line that uses aliases


def test_ordinary_aliases_still_work(tmp_path: Path) -> None:
    data = read(tmp_path, "base: &b {k: 2, selector: knn}\narms:\n  - few_shot: *b\n  - {few_shot_rag: *b}\n")
    assert data == {"base": {"k": 2, "selector": "knn"}, "arms": [{"few_shot": {"k": 2, "selector": "knn"}},
                                                                   {"few_shot_rag": {"k": 2, "selector": "knn"}}]}


@pytest.mark.parametrize("text, line, phrase", [
    ("a: 1\nb: !!int abc\n", 2, "invalid YAML value 'abc'"),
    ("when: !!timestamp 2020-13-45\n", 1, "month must be in 1..12"),
    ("x: !custom 3\n", 1, "could not determine a constructor for the tag '!custom'"),
    ("blob: !!binary zz!\n", 1, "base64"),
    ("? {[a]: b}\n: c\n", 1, "keys must be strings, got a mapping"),
    ("? [a]\n: b\n", 1, "keys must be strings, got a sequence"),
    ("name: x\n1: y\n", 2, "keys must be strings, got 1"),
    ("[" * 70 + "]" * 70, 1, "nested more than 64 levels"),
    ("[" * 5000, None, "nested too deeply"),
    ("name: x\nmetric: \"\\ud800\"\n", 2, "the escape for U+D800 is half of a surrogate pair"),
    ("a: 1\nb: \x1f\n", 2, "character U+001F is not allowed"),
])
def test_bad_yaml_values_are_errors_at_their_line(tmp_path: Path, text: str, line: int | None, phrase: str) -> None:
    e = error_of(tmp_path, text)
    assert e.line == line
    assert phrase in e.message
