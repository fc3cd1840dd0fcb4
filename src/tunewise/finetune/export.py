"""Training data for fine-tuning: each example as the chat the model sees at inference plus its answer.

The prompt is the zero-shot one (instructions + input, no demonstrations): a fine-tuned model learns
the task instead of being shown it. With `documents: true` the task's knowledge documents join the
training set too, each chunk as a conversation asking for it by its source. The same conversations are
what `tunewise finetune export` writes, what a provider job uploads, and what `extra:` files hold, one `{"messages": [...]}` object a line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from tunewise.errors import InputError
from tunewise.prompt import Message, build_messages, is_turn

if TYPE_CHECKING:
    from tunewise.data import Example
    from tunewise.spec import Task

Conversation = list[Message]


class Passage(Protocol):
    """A piece of a document: a knowledge chunk, say."""

    @property
    def source(self) -> str: ...

    @property
    def text(self) -> str: ...


def conversation(task: Task, example: Example) -> Conversation:
    """The inference prompt for `example` (its conversation so far too) followed by its target as the assistant's
    turn."""
    prompt = build_messages(task.instructions, example.input, history=example.history)
    return [*prompt, {"role": "assistant", "content": example.target}]


def conversations(task: Task, examples: Sequence[Example]) -> list[Conversation]:
    return [conversation(task, e) for e in examples]


def document_conversations(chunks: Iterable[Passage]) -> list[Conversation]:
    """Knowledge documents, a chunk each, as conversations that ask for them by their source: trained on, they
    put the documents' facts into the weights (knowledge injection), in a form provider jobs accept too."""
    return [
        [{"role": "user", "content": f"What does {c.source} say?"}, {"role": "assistant", "content": c.text}]
        for c in chunks
    ]


def to_jsonl(convs: Sequence[Conversation]) -> str:
    """OpenAI's chat fine-tuning format: one `{"messages": [...]}` a line."""
    return "".join(json.dumps({"messages": c}, ensure_ascii=False) + "\n" for c in convs)


def write_jsonl(convs: Sequence[Conversation], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_jsonl(convs), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[Conversation]:
    """Conversations from a chat JSONL file; each must end with the assistant's answer."""
    from tunewise.data import read_rows

    out = []
    for line, row in read_rows(path):
        messages = row.get("messages")
        ok = isinstance(messages, list) and messages and all(is_turn(m) for m in messages)
        if not ok:
            raise InputError(
                'each line must be {"messages": [{"role": "system|user|assistant", "content": "..."}, ...]}',
                file=path, line=line,
            )
        if messages[-1]["role"] != "assistant":
            raise InputError("the last message must be the assistant's answer", file=path, line=line)
        out.append([{"role": m["role"], "content": m["content"]} for m in messages])
    return out
