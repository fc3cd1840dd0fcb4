"""Chunking: sizes in the embedder's word pieces, whole sentences, overlap, paragraphs, determinism."""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass

import pytest
from pydantic import ValidationError

from tunewise.errors import InputError
from tunewise.knowledge.chunker import (
    Chunk,
    ChunkSettings,
    TokenCounter,
    chunk_bounds,
    chunk_document,
    chunks_at,
    load_tokenizer,
    text_hash,
)
from tunewise.knowledge.loaders import Document
from tunewise.knowledge.sentences import split_sentences

WORDS = (
    "river bridge lantern harbour keeper market honey winter museum boat carved festival valley orchard "
    "engine pressure valve turbine inspection quarterly revenue ledger invoice merchant cathedral"
).split()


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("all-MiniLM-L6-v2")


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(4, 22))]
    return words[0].capitalize() + " " + " ".join(words[1:]) + rng.choice([".", ".", "!", "?"])


def corpus_text(seed: int, paragraphs: int = 12) -> tuple[str, list[str]]:
    rng = random.Random(seed)
    paras = [[sentence(rng) for _ in range(rng.randint(1, 9))] for _ in range(paragraphs)]
    return "\n\n".join(" ".join(p) for p in paras), [s for p in paras for s in p]


def n_tokens(tokenizer, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


@pytest.mark.parametrize("size,overlap", [(200, 32), (64, 16), (40, 0)])
def test_no_chunk_over_size_and_sentences_are_never_cut(tokenizer, size, overlap):
    for seed in range(5):
        text, sentences = corpus_text(seed)
        chunks = chunk_document(Document("d", "d.md", text), ChunkSettings(size=size, overlap=overlap), tokenizer)
        for c in chunks:
            assert c.n_tokens == n_tokens(tokenizer, c.text) <= size
            assert c.text in text  # a verbatim slice of the document
            assert c.hash == text_hash(c.text)
        # every sentence (all are shorter than size) sits whole inside some chunk
        for s in sentences:
            assert any(s in c.text for c in chunks), s
        # chunks begin and end on sentence boundaries
        starts = {text[sp.start : sp.end] for sp in split_sentences(text)}
        for c in chunks:
            assert any(c.text.startswith(s) for s in starts) and c.text[-1] in ".!?"


def test_consecutive_chunks_share_whole_trailing_sentences(tokenizer):
    text = " ".join(f"Fact number {i} is about the {WORDS[i % len(WORDS)]}." for i in range(60))
    chunks = chunk_document(Document("d", "d.md", text), ChunkSettings(size=60, overlap=20), tokenizer)
    assert len(chunks) > 4
    for prev, nxt in zip(chunks, chunks[1:]):
        prev_sentences = [prev.text[s.start : s.end] for s in split_sentences(prev.text)]
        shared = [s for s in prev_sentences if nxt.text.startswith(s) or s in nxt.text]
        assert shared, (prev.text, nxt.text)
        assert prev.text.endswith(shared[-1])  # the overlap is the previous chunk's tail
        assert n_tokens(tokenizer, " ".join(shared)) <= 20
    no_overlap = chunk_document(Document("d", "d.md", text), ChunkSettings(size=60, overlap=0), tokenizer)
    assert sum(len(c.text) for c in no_overlap) == len(text) - (len(no_overlap) - 1)  # only the spaces between


def test_a_paragraph_that_fits_is_not_split_across_chunks(tokenizer):
    first = " ".join(f"Opening sentence {i} describes the harbour market." for i in range(8))  # ~80 tokens
    second = " ".join(f"Closing sentence {i} describes the winter orchard." for i in range(6))  # ~60 tokens
    chunks = chunk_document(Document("d", "d.md", first + "\n\n" + second), ChunkSettings(size=100, overlap=0), tokenizer)
    assert [c.text for c in chunks] == [first, second]


def test_a_sentence_longer_than_size_is_cut_between_words(tokenizer):
    long = "The " + " ".join(f"inspection{i} valve{i}" for i in range(150)) + " end."
    text = "Short opener here. " + long + " Short closer here."
    chunks = chunk_document(Document("d", "d.md", text), ChunkSettings(size=50, overlap=10), tokenizer)
    assert all(c.n_tokens <= 50 for c in chunks)
    words = set(text.split())
    for c in chunks:
        assert set(c.text.split()) <= words  # no word cut in two
    covered = " ".join(c.text for c in chunks)
    assert all(w in covered.split() for w in text.split())


def test_chunking_is_deterministic_and_ids_are_stable(tokenizer):
    text, _ = corpus_text(3)
    doc = Document("guide/p1", "guide/p1.md", text)
    a = chunk_document(doc, ChunkSettings(size=64, overlap=16), tokenizer)
    b = chunk_document(doc, ChunkSettings(size=64, overlap=16), load_tokenizer("all-MiniLM-L6-v2"))
    assert a == b
    assert [c.id for c in a] == [f"guide/p1:{n}" for n in range(len(a))]
    assert {c.doc_id for c in a} == {"guide/p1"} and {c.source for c in a} == {"guide/p1.md"}
    # the chunk text does not depend on where the file is (no path or title glued in)
    moved = chunk_document(Document("x", "elsewhere/x.txt", text), ChunkSettings(size=64, overlap=16), tokenizer)
    assert [c.text for c in moved] == [c.text for c in a]


def test_empty_text_gives_no_chunks_and_short_text_one(tokenizer):
    assert chunk_document(Document("e", "e.md", " \n\n "), ChunkSettings(), tokenizer) == []
    [only] = chunk_document(Document("s", "s.md", "  One line.  "), ChunkSettings(), tokenizer)
    assert only.text == "One line." and only.id == "s:0"


def test_settings_must_fit_what_the_embedder_reads():
    assert ChunkSettings().size + 2 <= 256  # the default fits MiniLM's 256 word pieces
    ChunkSettings(size=254).check_fits(256)
    with pytest.raises(InputError, match="at most 254"):
        ChunkSettings(size=255).check_fits(256)
    with pytest.raises(ValidationError, match="overlap"):
        ChunkSettings(size=50, overlap=50)
    with pytest.raises(ValidationError):
        ChunkSettings(chunk_size=100)  # unknown keys are refused


def test_unknown_tokenizer_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="unknown tokenizer"):
        load_tokenizer(str(tmp_path / "missing"))


def test_sentence_splitter_rules():
    text = "# Title\nFirst line of body. It says e.g. the valve is shut.\nWrapped PDF line\ncontinues here! Next?\n\n- item one\n- item two"
    got = [text[s.start : s.end] for s in split_sentences(text)]
    assert got == [
        "# Title",
        "First line of body.",
        "It says e.g. the valve is shut.",
        "Wrapped PDF line\ncontinues here!",
        "Next?",
        "- item one",
        "- item two",
    ]
    assert [s.paragraph for s in split_sentences(text)] == [0, 0, 0, 0, 0, 1, 1]


def test_no_warning_for_normal_documents(tokenizer):
    text, _ = corpus_text(11)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chunk_document(Document("d", "d.md", text), ChunkSettings(), tokenizer)


# ----------------------------------------------------------------------------------------------------------------
# The batched path against chunking as it was done before it (one document at a time, every sentence and every chunk
# text encoded on its own): the same chunks, byte for byte, whatever the text and the tokenizer.

ODD = [
    "café", "cafe\u0301", "naïve", "ΣΟΦΟΣ", "İstanbul", "東京タワー", "北京大学", "😀", "e.g.", "U.S.A.", "x\u00a0y", "a\tb",
    "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u3000", "\u200b", "don't", "“quoted”", "[CLS]", "[MASK]", "##",
    "supercalifragilisticexpialidocious" * 3, "a" * 120, "12,345.67", "…", "\n# Heading\n", "\n- item ", "\n1. first ",
    "> quote", "| a | b |", "Zürich", "ﬁne", "\u0301x",
]  # fmt: skip


def odd_text(rng: random.Random) -> str:
    """Words, sentence ends, paragraph breaks, and the characters that trip tokenizers up."""
    parts = []
    for _ in range(rng.randint(0, 90)):
        r = rng.random()
        if r < 0.6:
            parts.append(rng.choice(ODD) if rng.random() < 0.3 else rng.choice(WORDS))
        elif r < 0.8:
            parts.append(rng.choice([".", "!", "?"]) + " " + rng.choice(["The", "A", "and"]))
        else:
            parts.append(rng.choice([" ", "\n", "\n\n", " \n \n ", "\t"]))
    return "".join(p + rng.choice([" ", "", " "]) for p in parts)


@dataclass(frozen=True)
class _OldUnit:
    start: int
    end: int
    n: int
    paragraph: int


def old_chunk_document(doc: Document, settings: ChunkSettings, tokenizer) -> list[Chunk]:
    """chunk_document as it was before the batched path, inlined (its _split_long is unchanged, so reused)."""
    from tunewise.knowledge.chunker import _split_long

    size, overlap, text = settings.size, settings.overlap, doc.text
    spans = split_sentences(text)
    encodings = tokenizer.encode_batch([text[s.start : s.end] for s in spans], add_special_tokens=False)
    units = []
    for span, encoding in zip(spans, encodings):
        if len(encoding.ids) <= size:
            units.append(_OldUnit(span.start, span.end, len(encoding.ids), span.paragraph))
        else:
            units.extend(_split_long(text, span.start, span.end, span.paragraph, size, tokenizer))
    groups, current, carried, paragraph_tokens = [], [], 0, {}
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
        keep_paragraph = 0 < whole_paragraph <= size and used + whole_paragraph > size and fresh >= size // 4
        if current and len(current) > carried and (overflow or keep_paragraph):
            groups.append(current)
            need = whole_paragraph if keep_paragraph else unit.n
            carry, total = [], 0
            for u in reversed(current):
                if total + u.n > min(overlap, size - need):
                    break
                carry.insert(0, u)
                total += u.n
            current, carried = carry, len(carry)
            continue
        current.append(unit)
        i += 1
    if len(current) > carried:
        groups.append(current)
    texts = [text[g[0].start : g[-1].end] for g in groups]
    counts = [len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)] if texts else []
    return [
        Chunk(f"{doc.id}:{n}", doc.id, doc.source, t, c, text_hash(t)) for n, (t, c) in enumerate(zip(texts, counts))
    ]


@pytest.fixture(scope="module")
def byte_level_bpe():
    """A GPT-2 style tokenizer: its tokens carry the space before a word, so words do not count apart."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator([odd_text(random.Random(i)) for i in range(100)], trainer)
    return bpe


@pytest.mark.parametrize("which", ["minilm", "byte-level"])
def test_batched_chunking_equals_one_document_at_a_time(tokenizer, byte_level_bpe, which):
    tok = tokenizer if which == "minilm" else byte_level_bpe
    rng = random.Random(5)
    docs = [Document(f"d{i}", f"d{i}.md", odd_text(rng)) for i in range(60)]
    docs += [Document(f"c{seed}", "c.md", corpus_text(seed)[0]) for seed in range(4)]
    long = "Opener. The " + " ".join(f"inspection{i} valve{i}," for i in range(40)) + " end. Closer."
    docs += [Document("long", "l.md", long), Document("empty", "e.md", " \n\n\t "), Document("one", "o.md", " One. ")]
    counter = TokenCounter(tok)
    assert counter.by_words == (which == "minilm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # over-size chunks warn on both paths
        for settings in (ChunkSettings(), ChunkSettings(size=24, overlap=6)):
            batched = [chunks_at(d, b) for d, b in zip(docs, chunk_bounds(docs, settings, counter))]
            for doc, got in zip(docs, batched):
                assert got == old_chunk_document(doc, settings, tok), doc.text
                assert got == chunk_document(doc, settings, tok)
    assert sum(len(b) > 1 for b in batched) > 30 and len(batched[-3]) > 6  # many cut, the long sentence in pieces


def test_token_counts_are_the_tokenizers_own(tokenizer):
    texts = [odd_text(random.Random(i)) for i in range(200)]
    counter = TokenCounter(tokenizer)
    assert counter.counts(texts) == [n_tokens(tokenizer, t) for t in texts]
    assert counter.counts(texts[::-1]) == [n_tokens(tokenizer, t) for t in texts[::-1]]  # words remembered
    padded = load_tokenizer("all-MiniLM-L6-v2")
    padded.enable_padding(length=300)
    assert not TokenCounter(padded).by_words
