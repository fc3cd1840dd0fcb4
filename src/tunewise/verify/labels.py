"""Who says what a turn does to the premise graph: the task's model (a short classification prompt, cached and
counted like every call) or the user's `python:module:function`.

A labeller reads one text (a conversation turn, or a passage put in front of the model) and returns the updates
it makes, each an operation, the key it is about (e.g. "works_at: Mara Quell") and the value it states.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tunewise.verify.graph import Operation

if TYPE_CHECKING:
    from tunewise.calls.caller import ExampleCaller
    from tunewise.prompt import Message

LABEL_INSTRUCTIONS = (
    "Label what this text does to the facts of a conversation. One line per fact it touches, in the form\n"
    "OPERATION | KEY | VALUE\n"
    "OPERATION is one of: " + ", ".join(op.value for op in Operation) + ".\n"
    "assert: states a fact; revise: corrects an earlier fact on the same key; retract: withdraws a fact "
    "(no value); hypothesize: supposes a fact; introduce: mentions a new entity with no fact (no value); "
    "infer: concludes a fact from earlier ones; attack: disputes an earlier fact; query: asks about a key "
    "(no value).\nKEY names the attribute and its subject, e.g. 'employer of Mara Quell'. Reply with the lines only."
)
_LINE = re.compile(r"^\s*(?:[-*]\s*)?(\w+)\s*\|\s*([^|]*?)\s*(?:\|\s*(.*?)\s*)?$")


@dataclass(frozen=True)
class TurnLabel:
    """One update a text makes: what it does, what it is about and the value it states ('' when none)."""

    op: Operation
    key: str
    value: str = ""

    @classmethod
    def coerce(cls, item: Any) -> TurnLabel:
        """A labeller's item (a TurnLabel, or a mapping with op, key and value) as a TurnLabel; ValueError if not."""
        if isinstance(item, TurnLabel):
            return item
        if not isinstance(item, dict) or "op" not in item:
            raise ValueError(f"a label must be a TurnLabel or a dict with 'op', 'key', 'value', got {item!r}")
        return cls(Operation(str(item["op"]).lower()), str(item.get("key") or ""), str(item.get("value") or ""))


def parse_labels(reply: str) -> list[TurnLabel]:
    """The `OPERATION | KEY | VALUE` lines of a model's reply; lines of another shape or operation are skipped,
    so a reply that labels nothing leaves the graph as it was."""
    labels = []
    for line in reply.splitlines():
        m = _LINE.match(line)
        if m and m.group(1).lower() in Operation._value2member_map_ and m.group(2):
            labels.append(TurnLabel(Operation(m.group(1).lower()), m.group(2), m.group(3) or ""))
    return labels


Labeller = Callable[[str, str, "ExampleCaller"], Awaitable[list[TurnLabel]]]


def label_messages(text: str, role: str) -> list[Message]:
    """The classification prompt for one text said by `role` (user, assistant, or document)."""
    return [{"role": "system", "content": LABEL_INSTRUCTIONS}, {"role": "user", "content": f"[{role}] {text}"}]


async def model_labeller(text: str, role: str, lm: ExampleCaller) -> list[TurnLabel]:
    """Labels from the task's model at temperature 0: through the answer's caller, so cached and counted."""
    return parse_labels(await lm.chat(label_messages(text, role), temperature=0.0, max_tokens=96))


def python_labeller(function: Callable[..., Any]) -> Labeller:
    """A user's `label(text, role)` (plain or async) returning TurnLabels or dicts, as a Labeller."""

    async def label(text: str, role: str, lm: ExampleCaller) -> list[TurnLabel]:
        found = function(text, role)
        if inspect.isawaitable(found):
            found = await found
        return [TurnLabel.coerce(item) for item in _items(found)]

    return label


def _items(found: Any) -> Sequence[Any]:
    if found is None:
        return []
    if not isinstance(found, (list, tuple)):
        raise ValueError(f"a labeller must return a list of labels, got {type(found).__name__}")
    return found
