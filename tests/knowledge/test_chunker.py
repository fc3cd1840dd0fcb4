"""Chunking: sizes in the embedder's word pieces, whole sentences, overlap, paragraphs, determinism."""

from __future__ import annotations

import random
import warnings

import pytest
from pydantic import ValidationError

from tunewise.errors import InputError
from tunewise.knowledge.chunker import (
    ChunkSettings,
    chunk_document,
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
