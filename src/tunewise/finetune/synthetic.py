"""A synthetic set (`tunewise synth` output) as arms use it: conversations to train on, or examples to show.

Whoever wrote the file, a conversation whose input near-copies a dev or test input is dropped here (ROUGE-L,
as synth rejects them), so a synthetic set can never carry an evaluation input into training or a prompt.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.data import Example
from tunewise.finetune.export import Conversation, read_jsonl
from tunewise.near_duplicates import NearDuplicates

MAX_ROUGE_L = 0.7


@dataclass
class SyntheticSet:
    """The conversations kept, how many were dropped as near-copies of evaluation inputs, and the stats header."""

    path: Path
    conversations: list[Conversation]
    dropped: int
    stats: dict[str, Any] = field(default_factory=dict)

    def examples(self) -> list[Example]:
        """Each conversation as a train-like example: its last user turn the input, the answer the target."""
        return [Example(f"synthetic-{i}", _user_turn(c), c[-1]["content"], "train") for i, c in enumerate(self.conversations)]

    def describe(self) -> dict[str, Any]:
        """For the arm's record and the report: the file, its size, what was dropped, and how it was generated."""
        msifr = self.stats.get("msifr") or {}
        return {
            "path": str(self.path), "examples": len(self.conversations), "dropped": self.dropped,
            "generator": self.stats.get("generator"), "attempts": msifr.get("attempts"),
            "tokens_saved_pct": self.stats.get("tokens_saved_pct"),
        }


def _user_turn(conversation: Conversation) -> str:
    return next((m["content"] for m in reversed(conversation[:-1]) if m["role"] == "user"), "")


def load_synthetic(path: Path, evaluation_inputs: Iterable[str]) -> SyntheticSet:
    """The synthetic set at `path`, less its near-copies of `evaluation_inputs`; InputError at a bad line."""
    references = NearDuplicates(MAX_ROUGE_L)
    for text in evaluation_inputs:
        references.add(text, "evaluation")
    kept, dropped = [], 0
    for conversation in read_jsonl(path):
        if references.match(_user_turn(conversation)) is None:
            kept.append(conversation)
        else:
            dropped += 1
    stats_file = path.with_name(path.stem + ".stats.json")
    try:
        stats = json.loads(stats_file.read_text(encoding="utf-8")) if stats_file.is_file() else {}
    except (OSError, json.JSONDecodeError):
        stats = {}
    return SyntheticSet(path, kept, dropped, stats if isinstance(stats, dict) else {})


def synthetic_fields(described: dict[str, Any] | None) -> dict[str, Any]:
    """The report's columns for a synthetic set an arm used (none when it used none)."""
    if not described:
        return {}
    return {"synthetic": Path(described["path"]).name, "synthetic_examples": described["examples"],
            "synthetic_dropped": described["dropped"], "synthetic_generator": described.get("generator"),
            "synthetic_tokens_saved_pct": described.get("tokens_saved_pct")}
