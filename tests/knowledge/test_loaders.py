"""Loading documents: every format, ids and sources, and every kind of bad file (error or listed skip)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunewise.errors import InputError
from tunewise.knowledge import readers
from tunewise.knowledge.loaders import Document, Skipped, load_documents

ARTICLE = """<!doctype html>
<html><head><title>Lighthouses &amp; tides</title>
<style>.nav { color: red }</style><script>var tracking = "SECRET-TRACKER";</script></head>
<body>
<nav><a href="/">Home</a> | <a href="/shop">Shop</a> | <a href="/login">Log in</a></nav>
<article>
<h1>The keeper of Skerry Point</h1>
<p>The lighthouse keeper of Skerry Point logs every passing ship in a leather book.
He has kept the light burning for thirty years, through storms and calm nights alike.</p>
<p>Each morning he climbs the <b>ninety-two</b> steps to clean the great lens, then records the tide.</p>
</article>
<footer>Copyright 2024 Coastal Press. All rights reserved. Cookie settings.</footer>
<script>trackPageView();</script>
</body></html>
"""


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def by_id(docs: list[Document]) -> dict[str, Document]:
    return {d.id: d for d in docs}


def test_every_format_from_a_folder(tmp_path, pdf_bytes):
    docs = tmp_path / "docs"
    write(docs / "notes.txt", "Plain notes.\r\nSecond line.\n")
    write(docs / "guide" / "p0012.md", "\ufeff# Guide\n\nUse the *blue* valve.\n")
    write(docs / "page.html", ARTICLE)
    write(docs / "manual.pdf", pdf_bytes(["The pump runs at 40 bar.", "Page two: check the seals."], title="Pump"))
    write(
        docs / "faq.jsonl",
        json.dumps({"id": "q1", "text": "How do I reset?", "topic": "setup"}) + "\n\n"
        + json.dumps({"text": "Answer without id.", "score": 3}) + "\n",
    )
    result = load_documents([docs])
    assert result.skipped == []
    got = by_id(result.documents)
    # sorted by relative path, ids without extension, sources with it
    assert [d.id for d in result.documents] == ["faq#q1", "faq#3", "guide/p0012", "manual", "notes", "page"]
    assert got["guide/p0012"].source == "guide/p0012.md"
    assert got["guide/p0012"].text == "# Guide\n\nUse the *blue* valve.\n"  # BOM dropped, markdown kept
    assert got["notes"].text == "Plain notes.\nSecond line.\n"  # one kind of newline
    assert got["manual"].text == "The pump runs at 40 bar.\n\nPage two: check the seals."
    assert got["manual"].meta["pages"] == 2 and got["manual"].meta["title"] == "Pump"
    assert got["faq#q1"].source == "faq.jsonl#q1"
    assert got["faq#q1"].meta == {"topic": "setup"} and got["faq#3"].meta == {"score": 3}
    assert got["faq#3"].text == "Answer without id."


def test_html_gives_the_main_text_not_tags_scripts_or_boilerplate(tmp_path):
    doc = load_documents([write(tmp_path / "keeper.html", ARTICLE)]).documents[0]
    assert doc.id == "keeper" and doc.source == "keeper.html"
    assert "logs every passing ship" in doc.text and "ninety-two steps" in doc.text
    for junk in ("<", ">", "SECRET-TRACKER", "trackPageView", "color: red", "Log in", "Cookie settings"):
        assert junk not in doc.text
    assert doc.meta["title"] == "Lighthouses & tides"
    # paragraphs stay paragraphs, so the chunker can respect them
    assert "\n\n" in doc.text


def test_html_falls_back_to_the_body_text_when_trafilatura_finds_nothing(tmp_path, monkeypatch):
    import trafilatura

    monkeypatch.setattr(trafilatura, "extract", lambda *a, **k: None)
    page = "<html><head><title>Head title</title><script>evil()</script></head><body><p>Only &amp; body.</p>"
    page += "<div>Second block</div><script>more()</script></body></html>"
    doc = load_documents([write(tmp_path / "p.htm", page)]).documents[0]
    assert doc.text == "Only & body.\n\nSecond block"
    assert doc.meta["extraction"] == "tag-stripped body"


def test_html_in_a_declared_legacy_charset(tmp_path):
    page = '<html><head><meta charset="iso-8859-1"></head><body><p>Caf\xe9 au lait costs two euros here.</p></body></html>'
    doc = load_documents([write(tmp_path / "cafe.html", page.encode("latin-1"))]).documents[0]
    assert "Café au lait" in doc.text


def test_single_files_named_directly_use_their_stem_and_name(tmp_path):
    f = write(tmp_path / "deep" / "dir" / "report.md", "Report text.")
    doc = load_documents([f]).documents[0]
    assert (doc.id, doc.source) == ("report", "report.md")


def test_hidden_files_and_folders_are_ignored_and_the_same_file_is_loaded_once(tmp_path):
    docs = tmp_path / "docs"
    write(docs / "a.md", "Visible.")
    write(docs / ".secret.md", "Hidden file.")
    write(docs / ".git" / "notes.md", "Hidden folder.")
    result = load_documents([docs, docs / "a.md"])
    assert [d.id for d in result.documents] == ["a"]
    assert result.skipped == []


def test_unsupported_types_in_a_folder_are_listed_as_skipped_not_errors(tmp_path):
    docs = tmp_path / "docs"
    write(docs / "a.md", "Text.")
    write(docs / "logo.png", b"\x89PNG\r\n\x1a\n\x00\x00")
    write(docs / "Makefile", "all:")
    result = load_documents([docs])
    assert [d.id for d in result.documents] == ["a"]
    assert result.skipped == [
        Skipped(str(docs / "Makefile"), "unsupported type (no extension)"),
        Skipped(str(docs / "logo.png"), "unsupported type (.png)"),
    ]


def test_a_missing_path_is_an_error_even_when_skipping(tmp_path):
    with pytest.raises(InputError) as e:
        load_documents([tmp_path / "nope"], skip_bad=True)
    assert e.value.file == str(tmp_path / "nope") and "no such file" in e.value.message


BAD_CASES = {
    # name: (file name, content, words the reason must contain, line)
    "binary": ("bin.txt", b"text then \x00\x01 binary", ["binary", "offset 10"], 1),
    "not utf-8": ("latin.md", "line one\nna\xefve line two\n".encode("latin-1"), ["not UTF-8", "0xef", "offset 11"], 2),
    "empty": ("empty.txt", b"", ["empty"], None),
    "whitespace": ("blank.md", b"  \n\t\n  ", ["empty"], None),
    "broken pdf": ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog", ["broken PDF"], None),
    "empty html": ("nothing.html", b"<html><body>  <script>x()</script> </body></html>", ["empty"], None),
    "bad json": ("faq.jsonl", b'{"text": "fine"}\n{"text": broken}\n', ["bad JSON"], 2),
    "no text field": ("faq.jsonl", b'{"text": "fine"}\n{"title": "no text"}\n', ["missing 'text'"], 2),
    "duplicate jsonl id": ("faq.jsonl", b'{"id": 1, "text": "a"}\n{"id": "1", "text": "b"}\n', ["also used on line 1"], 2),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_documents_raise_naming_the_file_or_are_skipped(tmp_path, case):
    name, content, words, line = BAD_CASES[case]
    docs = tmp_path / "docs"
    write(docs / "good.md", "A good document.")
    bad = write(docs / name, content)
    with pytest.raises(InputError) as e:
        load_documents([docs])
    assert e.value.file == str(bad) and e.value.line == line
    for word in words:
        assert word in e.value.message
    where = f"{bad}:{line}" if line else str(bad)
    assert str(e.value) == f"{where}: {e.value.message}"  # what the CLI prints after "error: "

    result = load_documents([docs], skip_bad=True)
    assert [s.path for s in result.skipped] == [where]
    assert all(word in result.skipped[0].reason for word in words)
    ids = {d.id for d in result.documents}
    assert "good" in ids
    if name.endswith(".jsonl"):
        assert ids == {"good", "faq#1"}  # the good line of the file still loads


def test_a_file_over_the_size_limit_says_its_size(tmp_path):
    big = write(tmp_path / "big.txt", "word " * 300_000)  # 1.5 MB
    with pytest.raises(InputError) as e:
        load_documents([big], max_file_mb=1)
    assert e.value.message == "file is 1.4 MB, over the 1 MB limit"
    assert load_documents([big], max_file_mb=1, skip_bad=True).skipped[0].reason == e.value.message
    assert len(load_documents([big], max_file_mb=2).documents) == 1


def test_unsupported_file_named_directly_is_an_error(tmp_path):
    png = write(tmp_path / "logo.png", b"\x89PNG")
    with pytest.raises(InputError) as e:
        load_documents([png])
    assert e.value.file == str(png) and "unsupported type (.png)" in e.value.message
    assert load_documents([png], skip_bad=True).skipped[0].path == str(png)


def test_two_files_with_the_same_id_are_refused(tmp_path):
    docs = tmp_path / "docs"
    write(docs / "a.md", "Markdown a.")
    dup = write(docs / "a.txt", "Text a.")
    with pytest.raises(InputError) as e:
        load_documents([docs])
    assert e.value.file == str(dup) and f"'a' is already used by {docs / 'a.md'}" in e.value.message
    result = load_documents([docs], skip_bad=True)
    assert [d.source for d in result.documents] == ["a.md"] and result.skipped[0].path == str(dup)


def test_strip_tags_keeps_only_body_text():
    page = "<html><head><title>T</title></head><body><h1>Head</h1>text <b>bold</b><br>next<style>x{}</style></body></html>"
    assert readers.strip_tags(page) == "Head\n\ntext bold\n\nnext"


def link(path: Path, target: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    return path


@pytest.mark.parametrize("case", ["to-an-ancestor", "to-itself", "two-links-in-a-circle", "to-the-root-above"])
def test_a_symlink_loop_is_an_error_naming_it_or_a_listed_skip(tmp_path, case):
    docs = tmp_path / "docs"
    write(docs / "a.md", "A document.")
    bad, reason = {
        "to-an-ancestor": (lambda: link(docs / "sub" / "up", ".."), "symlink loop (the link leads back to"),
        "to-itself": (lambda: link(docs / "self.md", "self.md"), "symlink loop (following the link never ends)"),
        "two-links-in-a-circle": (lambda: (link(docs / "b.md", "c.md"), link(docs / "c.md", "b.md"))[0],
                                  "symlink loop (following the link never ends)"),
        "to-the-root-above": (lambda: link(docs / "sub" / "root", "../.."), "symlink loop (the link leads back to"),
    }[case]
    looping = bad()
    with pytest.raises(InputError) as e:
        load_documents([docs])
    assert e.value.file == str(looping if case != "to-the-root-above" else docs / "sub" / "root" / "docs")
    assert e.value.message.startswith(reason)
    loaded = load_documents([docs], skip_bad=True)
    assert [d.id for d in loaded.documents if not d.id.startswith("sub/root/")] == ["a"]
    assert any(s.path == e.value.file and s.reason == e.value.message for s in loaded.skipped), loaded.skipped


def test_links_to_folders_and_files_elsewhere_are_followed_once(tmp_path):
    docs, shared = tmp_path / "docs", tmp_path / "shared"
    write(docs / "a.md", "A document.")
    write(shared / "s.md", "A shared document.")
    link(docs / "shared", "../shared")
    link(docs / "again", "../shared")  # the same folder by two links: its file is loaded once
    link(docs / "alias.md", "a.md")
    loaded = load_documents([docs])
    assert sorted(d.id for d in loaded.documents) == ["a", "again/s"]
    assert loaded.skipped == []


def test_a_broken_link_is_an_error_naming_it(tmp_path):
    docs = tmp_path / "docs"
    write(docs / "a.md", "A document.")
    gone = link(docs / "gone", "nowhere")
    with pytest.raises(InputError, match=r"broken symlink \(it points to nowhere, which does not exist\)") as e:
        load_documents([docs])
    assert e.value.file == str(gone)
    for given in (gone, link(tmp_path / "loop.md", "loop.md")):  # named directly, too
        with pytest.raises(InputError) as e:
            load_documents([given])
        assert e.value.file == str(given) and "symlink" in e.value.message
