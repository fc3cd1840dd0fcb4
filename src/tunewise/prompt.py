"""How arms turn instructions, demonstrations, retrieved context and an input into chat messages.

One place for the prompt layout, so every arm (and the lab model's pretraining corpus) agrees on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Message = dict[str, str]
ROLES = ("system", "user", "assistant")


def is_turn(value: Any) -> bool:
    """Whether `value` is one chat turn in OpenAI format: `{"role": system|user|assistant, "content": text}`."""
    return isinstance(value, dict) and value.get("role") in ROLES and isinstance(value.get("content"), str)


@dataclass(frozen=True)
class Demo:
    """A demonstration: an input and the answer the model should give."""

    input: str
    output: str


@dataclass(frozen=True)
class ContextChunk:
    """A retrieved passage and where it came from."""

    text: str
    source: str


def render_context(chunks: Sequence[ContextChunk]) -> str:
    """Numbered passages, each headed by its source, as the user turn shows them."""
    return "\n\n".join(f"[{i}] {c.source}\n{c.text}" for i, c in enumerate(chunks, start=1))


def build_messages(
    instructions: str,
    input_text: str,
    demos: Sequence[Demo] = (),
    context: Sequence[ContextChunk] = (),
    history: Sequence[Message] = (),
) -> list[Message]:
    """System turn with the instructions, demonstrations as user/assistant pairs, the conversation so far (its
    own system turns after the instructions), then the input.

    Retrieved context goes in the final user turn, before the input, under a `Context:` header.
    """
    messages: list[Message] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    for demo in demos:
        messages.append({"role": "user", "content": demo.input})
        messages.append({"role": "assistant", "content": demo.output})
    messages.extend(dict(turn) for turn in history)
    user = input_text
    if context:
        user = f"Context:\n{render_context(context)}\n\nInput:\n{input_text}"
    messages.append({"role": "user", "content": user})
    return messages
