"""One reader per document format: file bytes in, plain text out, or `BadDocument` saying why not.

Readers know nothing about folders, ids or skipping; `loaders.py` does that. trafilatura and pypdf
are imported inside the readers that need them.
"""

from __future__ import annotations

import html
import io
import json
import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any


class BadDocument(Exception):
    """A file (or one line of it) that cannot be read as a document."""

    def __init__(self, reason: str, line: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.line = line


@dataclass(frozen=True)
class Text:
    """What a reader extracted: the text and what it learned on the way (title, pages...)."""

    text: str
    meta: dict[str, Any] = field(default_factory=dict)


def decode_utf8(data: bytes) -> str:
    """UTF-8 text with one kind of newline and no byte-order mark; binary or non-UTF-8 bytes are refused."""
    nul = data.find(b"\x00")
    if nul >= 0:
        raise BadDocument(f"binary file (NUL byte at byte offset {nul}), expected UTF-8 text", _line_of(data, nul))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadDocument(
            f"not UTF-8: invalid byte 0x{data[e.start]:02x} at byte offset {e.start}", _line_of(data, e.start)
        ) from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _require_text(text: str) -> str:
    if not text.strip():
        raise BadDocument("empty document (no text)")
    return text


def read_plain(data: bytes) -> Text:
    """.txt and .md files: the text as written."""
    return Text(_require_text(decode_utf8(data)))


# ---------------------------------------------------------------------------------------------- html

_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_\-]+)""", re.I)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.I | re.S)


def _decode_html(data: bytes) -> str:
    try:
        return decode_utf8(data)
    except BadDocument as utf8_error:
        declared = _CHARSET.search(data[:4096])
        if declared is None or b"\x00" in data:
            raise
        try:
            return data.decode(declared.group(1).decode("ascii")).replace("\r\n", "\n").replace("\r", "\n")
        except (LookupError, UnicodeDecodeError):
            raise utf8_error from None


def read_html(data: bytes) -> Text:
    """The page's main text as trafilatura finds it (boilerplate and tags dropped), one block per paragraph.

    If trafilatura finds nothing in a page that has text, the text of <body> with the tags stripped is used.
    """
    import trafilatura

    page = _decode_html(data)
    meta: dict[str, Any] = {}
    title = _TITLE.search(page)
    if title and title.group(1).strip():
        meta["title"] = " ".join(html.unescape(title.group(1)).split())
    try:
        extracted = trafilatura.extract(page, include_comments=False, include_tables=True, deduplicate=False)
    except Exception:  # a page lxml cannot make sense of: the fallback below still reads its text
        extracted = None
    if extracted and extracted.strip():
        blocks = [line.strip() for line in extracted.split("\n") if line.strip()]
        return Text("\n\n".join(blocks), meta)
    fallback = strip_tags(page)
    if not fallback.strip():
        raise BadDocument("empty document (no text in the HTML page)")
    meta["extraction"] = "tag-stripped body"
    return Text(fallback, meta)


class _BodyText(HTMLParser):
    """Text of <body> (or of everything outside <head> when there is no <body>), blocks on their own lines."""

    SKIP = {"head", "script", "style", "noscript", "template", "svg", "title"}
    BLOCK = {
        "p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "header", "footer", "main",
        "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "hr", "dd", "dt", "figcaption", "nav", "aside",
    }  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.saw_body = False
        self.in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.saw_body = self.in_body = True
            self.parts.clear()  # anything before <body> is not the body
        elif tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "body":
            self.in_body = False
        elif tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self.skipping or (self.saw_body and not self.in_body):
            return
        self.parts.append(data)


def strip_tags(page: str) -> str:
    """The body's text with tags, scripts and styles removed; blank-line-separated blocks."""
    parser = _BodyText()
    parser.feed(page)
    parser.close()
    blocks = (" ".join(block.split()) for block in "".join(parser.parts).split("\n\n"))
    return "\n\n".join(b for b in blocks if b)


# ----------------------------------------------------------------------------------------------- pdf


@contextmanager
def _quiet_pypdf() -> Iterator[None]:
    """pypdf logs complaints about damaged files; the error we raise says it once, on one line."""
    logger = logging.getLogger("pypdf")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def read_pdf(data: bytes) -> Text:
    """The text of every page, pages separated by a blank line."""
    from pypdf import PdfReader

    try:
        with _quiet_pypdf():
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):
                raise BadDocument("encrypted PDF (needs a password)")
            pages = [page.extract_text() or "" for page in reader.pages]
            title = reader.metadata.title if reader.metadata else None
    except BadDocument:
        raise
    except Exception as e:  # pypdf raises many kinds of errors on damaged files
        raise BadDocument(f"broken PDF ({type(e).__name__}: {e})") from None
    text = "\n\n".join(p.replace("\x00", "").strip() for p in pages if p.strip())
    if not text.strip():
        raise BadDocument("no text in the PDF (scanned pages? tunewise does not run OCR)")
    meta: dict[str, Any] = {"pages": len(pages)}
    if isinstance(title, str) and title.strip():
        meta["title"] = title.strip()
    return Text(text, meta)


# --------------------------------------------------------------------------------------------- jsonl


@dataclass(frozen=True)
class Record:
    """One line of a .jsonl corpus: its own id (given or the line number), text and other fields."""

    line: int
    id: str
    text: str
    meta: dict[str, Any]


def read_jsonl(data: bytes) -> Iterator[Record | BadDocument]:
    """One `Record` per non-blank line, or a `BadDocument` for a line that is not a usable object.

    A file that is not UTF-8 or has no lines at all raises `BadDocument` for the whole file.
    """
    lines = decode_utf8(data).split("\n")
    if not any(line.strip() for line in lines):
        raise BadDocument("empty document (no lines)")
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            yield BadDocument(f"bad JSON: {e.msg} (column {e.colno})", number)
            continue
        if not isinstance(obj, dict):
            yield BadDocument(f"expected a JSON object with a 'text' field, got {type(obj).__name__}", number)
            continue
        text = obj.get("text")
        if not isinstance(text, str):
            yield BadDocument("missing 'text' field (a string)" if text is None else "'text' must be a string", number)
            continue
        if not text.strip():
            yield BadDocument("empty 'text'", number)
            continue
        raw_id = obj.get("id")
        if raw_id is not None and (isinstance(raw_id, bool) or not isinstance(raw_id, (str, int))):
            yield BadDocument("'id' must be a string or an integer", number)
            continue
        record_id = str(number) if raw_id is None else str(raw_id)
        if not record_id.strip():
            yield BadDocument("empty 'id'", number)
            continue
        if record_id in seen:
            yield BadDocument(f"id '{record_id}' is also used on line {seen[record_id]}", number)
            continue
        seen[record_id] = number
        meta = {k: v for k, v in obj.items() if k not in ("text", "id")}
        yield Record(number, record_id, text.replace("\r\n", "\n").replace("\r", "\n"), meta)
