"""`static:` embedders: model2vec distilled here from the packaged MiniLM (once per session, with every
connection off this machine refused), its cache folder, its vectors, its id, an index on it, and the task-file
errors. The distillation is the slow part; every other test reuses its folder."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from tunewise.db import connect
from tunewise.errors import InputError
from tunewise.knowledge.chunker import ChunkSettings
from tunewise.knowledge.embedder import SentenceTransformerEmbedder
from tunewise.knowledge.index import KnowledgeIndex
from tunewise.knowledge.loaders import Document
from tunewise.knowledge.static_embedder import DistilledEmbedder, DistillSettings, StaticEmbedder
from tunewise.knowledge.task_index import build_task_index, open_embedder
from tunewise.spec import EmbedderSpec
from tunewise.taskfile import load_task

from .test_openai_embedder import TOPICS as OPENAI_TOPICS

TOPICS = {
    **OPENAI_TOPICS,
    "library": "Students borrow books from the library and return them within three weeks.",
    "potter": "Potters fire their clay bowls in a wood-burning kiln.",
}
TEXTS = ["The cat sat on the mat.", "A cat is sitting on a mat.", "Quarterly revenue grew by 4%.", "", "🙂🙂"]


@pytest.fixture(scope="session")
def static_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A cache dir holding the MiniLM distilled once for the session, with no connection off this machine."""
    root = tmp_path_factory.mktemp("static-cache")
    connect_ = socket.socket.connect

    def loopback_only(sock: socket.socket, address: object) -> None:
        host = address[0] if isinstance(address, tuple) else ""
        if sock.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"test: no network ({address})")
        connect_(sock, address)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", loopback_only)
        embedder = DistilledEmbedder(connect(root / "db.sqlite"), cache_dir=root)
        embedder.distill()
    assert embedder.distilled_now and embedder.ready
    yield root


def distilled(tmp_path: Path, cache: Path, name: str = "db.sqlite") -> DistilledEmbedder:
    return DistilledEmbedder(connect(tmp_path / name), cache_dir=cache)


@pytest.mark.slow
def test_distilled_once_then_opened_from_the_cache(tmp_path, static_cache, capfd):
    before = sorted(p.name for p in (static_cache / "embedders").iterdir())
    e = distilled(tmp_path, static_cache)
    e.embed(TEXTS)
    assert not e.distilled_now and e.computed == len(TEXTS)
    assert sorted(p.name for p in (static_cache / "embedders").iterdir()) == before  # no second folder, no leftovers
    assert [p.name for p in (static_cache / "embedders").iterdir() if p.name.startswith(".")] == []
    assert "distilling" not in capfd.readouterr().err
    assert e.folder.parent == static_cache / "embedders" and e.folder.name.startswith("all-MiniLM-L6-v2-static-")


@pytest.mark.slow
def test_vectors_are_unit_float32_deterministic_and_meaningful(tmp_path, static_cache):
    v = distilled(tmp_path, static_cache, "a.sqlite").embed(TEXTS)
    again = distilled(tmp_path, static_cache, "b.sqlite")  # its own cache: computed again, not read back
    w = again.embed(list(reversed(TEXTS)))
    assert again.computed == len(TEXTS)
    assert v.shape == (5, 256) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)  # also the empty and the emoji-only text
    assert np.array_equal(v, w[::-1])
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3
    assert np.array_equal(v[3], v[4])  # nothing the model knows: the same 'average text' vector


def test_the_id_names_every_setting_and_keys_its_own_folder(tmp_path):
    db = connect(tmp_path / "db.sqlite")
    base = DistilledEmbedder(db, cache_dir=tmp_path)
    variants = [DistilledEmbedder(db, DistillSettings(pca_dims=128), cache_dir=tmp_path),
                DistilledEmbedder(db, DistillSettings(sif_coefficient=1e-3), cache_dir=tmp_path),
                DistilledEmbedder(db, DistillSettings(dtype="float32"), cache_dir=tmp_path)]
    ids = {base.id, *(v.id for v in variants)}
    folders = {base.folder, *(v.folder for v in variants)}
    assert len(ids) == len(folders) == 4
    assert base.id.startswith("static:all-MiniLM-L6-v2 (") and "model2vec 0.10" in base.id
    assert DistilledEmbedder(db, cache_dir=tmp_path / "elsewhere").id == base.id  # the cache's place is no setting
    assert base.max_seq_length == 512 and base.tokenizer_file == base.folder / "tokenizer.json"
    assert not base.ready  # opening distils nothing: that waits for the first text to embed


@pytest.mark.slow
def test_a_model2vec_folder_is_its_own_embedder_and_its_id_follows_its_files(tmp_path, static_cache):
    source = distilled(tmp_path, static_cache)
    folder = shutil.copytree(source.folder, tmp_path / "my-static")
    db = connect(tmp_path / "db.sqlite")
    mine = open_embedder(EmbedderSpec(uri="static:my-static"), db, tmp_path)
    assert isinstance(mine, StaticEmbedder) and mine.id.startswith(f"static:{folder} (")
    assert np.array_equal(mine.embed(TEXTS), source.embed(TEXTS))
    (folder / "config.json").write_text((folder / "config.json").read_text().replace('"max_length": 512',
                                                                                       '"max_length": 64'))
    changed = StaticEmbedder.from_folder(db, folder)
    assert changed.id != mine.id and changed.max_seq_length == 64


@pytest.mark.slow
def test_an_index_on_the_static_embedder_finds_the_right_document(tmp_path, static_cache):
    db = connect(tmp_path / "db.sqlite")
    index = KnowledgeIndex(tmp_path / "index", db, settings=ChunkSettings(size=48, overlap=0),
                           embedder=DistilledEmbedder(db, cache_dir=static_cache))
    index.update([Document(name, f"{name}.md", text, {}) for name, text in TOPICS.items()])
    queries = {"when does the ferry sail across the bay": "ferry", "who lights the lamp in the tower": "lighthouse",
               "where can I borrow a book": "library", "bread and cakes for sale": "bakery",
               "mechanics who repair brakes": "garage"}
    for query, doc in queries.items():
        assert index.search(query, 1, "dense")[0].chunk.doc_id == doc, query


def test_the_spec_takes_static_uris_and_open_embedder_picks_the_implementation(tmp_path):
    db = connect(tmp_path / "db.sqlite")
    assert EmbedderSpec(uri="static:all-MiniLM-L6-v2").scheme == "static"
    assert isinstance(open_embedder(EmbedderSpec(uri="static:all-MiniLM-L6-v2"), db, tmp_path), DistilledEmbedder)
    assert isinstance(open_embedder(EmbedderSpec(), db, tmp_path), SentenceTransformerEmbedder)
    with pytest.raises(ValueError, match="only for openai"):
        EmbedderSpec(uri="static:all-MiniLM-L6-v2", batch_size=8)


def write_task(folder: Path, embedder: str) -> Path:
    (folder / "docs").mkdir(parents=True, exist_ok=True)
    (folder / "docs" / "ferry.md").write_text(TOPICS["ferry"] + "\n")
    (folder / "data.jsonl").write_text('{"question": "q", "answer": "a"}\n')
    task = {"name": "t", "data": {"path": "data.jsonl", "input": "question", "output": "answer"},
            "metric": "exact", "model": "lab:x", "arms": ["zero_shot"],
            "knowledge": {"paths": ["docs"], "embedder": embedder}}
    path = folder / "task.yaml"
    path.write_text(yaml.safe_dump(task, sort_keys=False))
    return path


def embedder_line(path: Path) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if "embedder:" in line)


@pytest.mark.parametrize(
    ("embedder", "says"),
    [
        ("static:no-such-model", "unknown static model 'no-such-model': give static:all-MiniLM-L6-v2"),
        ("static:docs", "is not a model2vec static model folder (it lacks config.json, model.safetensors, "
                        "tokenizer.json)"),
    ],
)
def test_an_unknown_static_model_or_a_folder_that_is_none_is_one_line_at_its_line(tmp_path, embedder, says):
    path = write_task(tmp_path, embedder)
    with pytest.raises(InputError) as caught:
        build_task_index(load_task(path), connect(tmp_path / "db.sqlite"), tmp_path / "runs")
    message = str(caught.value)
    assert message.startswith(f"{path}:{embedder_line(path)}: ") and says in message and "\n" not in message


def test_a_sentence_transformers_folder_is_refused_with_the_scheme_it_needs(tmp_path):
    folder = tmp_path / "minilm"
    folder.mkdir()
    for name in ("model.safetensors", "tokenizer.json"):
        (folder / name).touch()
    (folder / "config.json").write_text('{"model_type": "bert"}')  # a transformer's, as the packaged MiniLM's
    with pytest.raises(InputError, match=r"is not a model2vec static model \(config.json model_type is 'bert'\): "
                                         r"use st:<folder>"):
        open_embedder(EmbedderSpec(uri="static:minilm"), connect(tmp_path / "db.sqlite"), tmp_path)


def test_opening_a_static_embedder_imports_nothing_heavy(tmp_path):
    code = (
        "import sys; from pathlib import Path; from tunewise.db import connect;"
        "from tunewise.knowledge.static_embedder import DistilledEmbedder;"
        f"e = DistilledEmbedder(connect(Path({str(tmp_path / 'db.sqlite')!r})), cache_dir=Path({str(tmp_path)!r}));"
        "e.id, e.max_seq_length, e.tokenizer_file;"
        "heavy = {'model2vec', 'torch', 'transformers', 'sentence_transformers', 'tokenizers'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
