"""The text shape a generator writes one synthetic example in, and where its stages end.

A sample is streamed as

    QUESTION: <the input>
    ANSWER: <the output, reasoning first when the task has any>
    END

S1 (the input) ends at the `ANSWER:` marker, S2 is the first part of the answer (a token budget), S3 the
full answer, ended by `END` or the end of the stream. Generators (an LLM prompted by `synth.prompt`, or
the lab's scripted teacher) are asked for exactly this shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

INPUT_MARKER = "QUESTION:"
ANSWER_MARKER = "ANSWER:"
END_MARKER = "END"
PROMPT_HEADER = "Write one new example for this task."
SOURCE_HEADER = "Source passage:"

_END = re.compile(rf"(?:^|\n)\s*{END_MARKER}\s*$")


@dataclass(frozen=True)
class Parsed:
    """A sample's text split at its markers; `answer` is None until the answer marker has been written."""

    input: str
    answer: str | None
    ended: bool


def parse(text: str) -> Parsed:
    """The input and answer of a (possibly partial) sample text."""
    body = text.lstrip()
    if body.startswith(INPUT_MARKER):
        body = body[len(INPUT_MARKER):]
    head, marker, tail = body.partition(ANSWER_MARKER)
    if not marker:
        return Parsed(head.strip(), None, False)
    ended = bool(_END.search(tail))
    if ended:
        tail = _END.sub("", tail)
    return Parsed(head.strip(), tail.strip(), ended)
