"""Paragraphs and sentences of a text, as character spans into it (so chunks are verbatim slices).

Rules, in order:
- a blank line ends a paragraph;
- inside a paragraph, a markdown heading, list item, quote or table row starts a new block, and a
  heading is a block by itself; other single newlines are soft (PDF text wraps lines mid-sentence);
- inside a block, a sentence ends at . ! ? or … (plus closing quotes/brackets) followed by white space
  and a character that is not a lower-case letter ("e.g. the" does not end a sentence).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_BLOCK_START = re.compile(r"[ \t]*(#{1,6}\s|[-*+•]\s|\d{1,3}[.)]\s|>|\|)")
_HEADING = re.compile(r"[ \t]*#{1,6}\s")
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s+(\S))")


@dataclass(frozen=True)
class Span:
    """Characters `start:end` of the text; `paragraph` counts paragraphs from 0."""

    start: int
    end: int
    paragraph: int


def split_sentences(text: str) -> list[Span]:
    """Sentence spans in text order, trimmed of surrounding white space; empty ones left out."""
    spans: list[Span] = []
    for paragraph, (p_start, p_end) in enumerate(_paragraphs(text)):
        for b_start, b_end in _blocks(text, p_start, p_end):
            for s_start, s_end in _sentences(text, b_start, b_end):
                trimmed = _trim(text, s_start, s_end)
                if trimmed:
                    spans.append(Span(trimmed[0], trimmed[1], paragraph))
    return _renumber(spans)


def _paragraphs(text: str) -> list[tuple[int, int]]:
    out, start = [], 0
    for m in _PARAGRAPH_BREAK.finditer(text):
        out.append((start, m.start()))
        start = m.end()
    out.append((start, len(text)))
    return [(s, e) for s, e in out if text[s:e].strip()]


def _blocks(text: str, start: int, end: int) -> list[tuple[int, int]]:
    out, block_start, pos = [], start, start
    after_heading = False
    while pos < end:
        newline = text.find("\n", pos, end)
        line_end = end if newline < 0 else newline
        line = text[pos:line_end]
        if pos > block_start and (after_heading or _BLOCK_START.match(line)):
            out.append((block_start, pos))
            block_start = pos
        after_heading = bool(_HEADING.match(line))
        pos = line_end + 1
    out.append((block_start, end))
    return out


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    out, sentence_start = [], start
    for m in _SENTENCE_END.finditer(text, start, end):
        if m.group(1).islower():
            continue
        out.append((sentence_start, m.end()))
        sentence_start = m.end()
    out.append((sentence_start, end))
    return out


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _renumber(spans: list[Span]) -> list[Span]:
    """Paragraph numbers without gaps (a paragraph of white space only has no sentences)."""
    numbers: dict[int, int] = {}
    return [Span(s.start, s.end, numbers.setdefault(s.paragraph, len(numbers))) for s in spans]
