"""The lab model builder: a quick model builds, is cached, loads with transformers and speaks the chat template."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tunewise.lab import build_model, default_world_dir, resolve_model
from tunewise.lab.corpus import Corpus
from tunewise.lab.model import encode, model_cache_dir, world_truth
from tunewise.lab.tokenizer import CHAT_TEMPLATE, render, train_tokenizer
from tunewise.lab.world import generate_world


@pytest.fixture(scope="module")
def quick_model(world_dir: Path, lab_cache: Path) -> Path:
    """A quick lab model for the session's world, built into the private cache."""
    return build_model(world_dir, quick=True)


def test_encoding_for_training_matches_the_chat_template_tokenization() -> None:
    world = generate_world(0)
    sample = Corpus(world, 1)
    tokenizer = train_tokenizer([render(sample.item()) for _ in range(300)], 600)
    convs = [sample.item() for _ in range(40)]
    ids, attention, weight = encode(tokenizer, convs, 4096)
    for i, conv in enumerate(convs):
        expected = tokenizer(tokenizer.apply_chat_template(conv, tokenize=False)).input_ids
        n = int(attention[i].sum())
        assert ids[i, :n].tolist() == expected
        assert (weight[i, n:] == 0).all() and (weight[i, :n] > 0).all()
        learned = [t for t, w in zip(ids[i, :n].tolist(), weight[i, :n].tolist()) if w == 1.0]
        answer = tokenizer(" " + conv[-1]["content"]).input_ids + [tokenizer.eos_token_id]
        assert learned[-len(answer) :] == answer, "the final answer and <|end|> must weigh fully"
        assert len(learned) == sum(
            len(tokenizer(" " + m["content"]).input_ids) + 1 for m in conv if m["role"] == "assistant"
        )


def test_an_answer_starts_with_the_tokens_its_words_have_inside_a_sentence() -> None:
    """Copying a name from the context only works if the answer spells it with the same tokens."""
    world = generate_world(0)
    sample = Corpus(world, 1)
    tokenizer = train_tokenizer([render(sample.item()) for _ in range(300)], 600)
    name = world.people[0].name
    conv = [{"role": "user", "content": f"Context:\nThe boss is {name}.\n\nInput:\nWho?"}]
    prompt = tokenizer.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
    answered = tokenizer(tokenizer.apply_chat_template(conv + [{"role": "assistant", "content": name}], tokenize=False))
    in_sentence = tokenizer(f" {name}").input_ids
    start = len(tokenizer(prompt).input_ids)
    assert answered.input_ids[start : start + len(in_sentence)] == in_sentence
    assert in_sentence == tokenizer(f"is {name}.").input_ids[1:-1]


def test_world_truth_refuses_an_edited_world(world_dir: Path, tmp_path: Path) -> None:
    edited = shutil.copytree(world_dir, tmp_path / "edited")
    doc = next((edited / "docs").iterdir())
    doc.write_text(doc.read_text() + "One more line.\n")
    with pytest.raises(ValueError, match="regenerate"):
        world_truth(edited)
    with pytest.raises(FileNotFoundError, match="not a lab world"):
        world_truth(tmp_path)


@pytest.mark.slow
def test_quick_model_builds_into_the_cache_and_is_reused(world_dir: Path, lab_cache: Path, quick_model: Path) -> None:
    assert quick_model == model_cache_dir(world_dir, quick=True)
    assert lab_cache in quick_model.parents
    info = json.loads((quick_model / "lab.json").read_text())
    assert info["quick"] is True and info["steps"] > 0
    before = {p: p.stat().st_mtime_ns for p in quick_model.rglob("*")}
    assert build_model(world_dir, quick=True) == quick_model
    assert {p: p.stat().st_mtime_ns for p in quick_model.rglob("*")} == before  # reused: nothing rebuilt or rewritten
    assert model_cache_dir(world_dir, quick=False) != quick_model
    assert not any(p.name.startswith("building-") for p in quick_model.parent.parent.iterdir())


@pytest.mark.slow
def test_quick_model_loads_and_renders_its_chat_template(quick_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(quick_model)
    model = AutoModelForCausalLM.from_pretrained(quick_model)
    assert tokenizer.eos_token == "<|end|>" and tokenizer.pad_token == "<|pad|>"
    assert tokenizer.chat_template == CHAT_TEMPLATE
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where was Ka Lo born?"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == "<|system|>\n Be brief.<|end|>\n<|user|>\n Where was Ka Lo born?<|end|>\n<|assistant|>\n"
    enc = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=8, do_sample=False)
    again = model.generate(**enc, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > enc["input_ids"].shape[1]
    assert torch.equal(out, again)


@pytest.mark.slow
def test_resolve_model_follows_the_task_relative_world_path(world_dir: Path, quick_model: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import tunewise.lab.model as lab_model

    monkeypatch.setattr(lab_model, "FULL", lab_model.QUICK)  # same recipe, so the quick build is found in the cache
    task_dir = world_dir / "tasks" / "facts"
    assert resolve_model("../..", task_dir) == quick_model
    assert resolve_model(str(world_dir), Path("/")) == quick_model
    with pytest.raises(FileNotFoundError):
        resolve_model("../../nowhere", task_dir)


def test_default_world_is_generated_once_in_the_cache(lab_cache: Path) -> None:
    world = default_world_dir()
    assert lab_cache in world.parents
    stamp = (world / "world.json").stat().st_mtime_ns
    assert default_world_dir() == world
    assert (world / "world.json").stat().st_mtime_ns == stamp
    assert json.loads((world / "world.json").read_text())["seed"] == 0


@pytest.mark.slow
def test_same_world_builds_identical_weights(world_dir: Path, quick_model: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors.torch import load_file

    monkeypatch.setenv("TUNEWISE_CACHE_DIR", str(tmp_path))
    rebuilt = build_model(world_dir, quick=True)
    assert rebuilt != quick_model
    first, second = load_file(quick_model / "model.safetensors"), load_file(rebuilt / "model.safetensors")
    assert first.keys() == second.keys()
    assert all((first[k] == second[k]).all() for k in first)
    assert (quick_model / "tokenizer.json").read_bytes() == (rebuilt / "tokenizer.json").read_bytes()
    # every file alike, so the model's id (cache keys, sampling seeds) is the same for every build of it
    from tunewise.models.hf_backend import local_model_id

    assert sorted(p.name for p in rebuilt.iterdir()) == sorted(p.name for p in quick_model.iterdir())
    assert local_model_id(rebuilt) == local_model_id(quick_model)
    assert json.loads((rebuilt.parent / "build.json").read_text())["seconds"] > 0



def test_the_shipped_model_is_the_full_build_of_the_default_world_by_this_builder() -> None:
    """Bumping the builder, the generator or the recipe without shipping a new build fails here."""
    from tunewise.lab.model import FULL, PREBUILT, WEIGHTS, is_build_of

    assert is_build_of(PREBUILT, 0, FULL, quick=False)
    assert not is_build_of(PREBUILT, 1, FULL, quick=False), "another world's model is trained, as ever"
    assert sorted(p.name for p in PREBUILT.iterdir()) == sorted(
        ["chat_template.jinja", "config.json", "generation_config.json", "lab.json", "tokenizer.json",
         "tokenizer_config.json", WEIGHTS])
    assert sum(p.stat().st_size for p in PREBUILT.iterdir()) < 4_000_000


def test_the_default_world_copies_the_shipped_model_and_never_trains(lab_cache: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import tunewise.lab.model as lab_model

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained instead of copying the shipped model")

    monkeypatch.setenv("TUNEWISE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(lab_model, "train", no_training)
    model = build_model(default_world_dir())
    assert model == model_cache_dir(default_world_dir(), quick=False)
    assert [p.name for p in lab_model.model_files(model)] == [p.name for p in lab_model.model_files(lab_model.PREBUILT)]
    assert all(lab_model.same_file(p, model / p.name) for p in lab_model.model_files(lab_model.PREBUILT))
    assert json.loads((model.parent / "build.json").read_text())["copied_from"] == str(lab_model.PREBUILT)
    assert resolve_model("default", Path("/")) == model


def test_verify_rebuilds_a_model_and_fails_in_one_line_on_a_tampered_copy(tmp_path: Path) -> None:
    from dataclasses import replace

    from typer.testing import CliRunner

    from tunewise.cli import app
    from tunewise.lab.model import QUICK, WEIGHTS, build_into, weights_sha256

    built = tmp_path / "built"
    built.mkdir()
    build_into(built, generate_world(0), replace(QUICK, mix_steps=8, tokenizer_items=50), True, None)  # seconds
    tampered = shutil.copytree(built, tmp_path / "tampered")
    weights = bytearray((tampered / WEIGHTS).read_bytes())
    weights[-1] ^= 1
    (tampered / WEIGHTS).write_bytes(bytes(weights))
    result = CliRunner().invoke(app, ["lab", "model", "--verify", "--model", str(tampered)])
    assert result.exit_code == 1 and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [result.stderr.strip().splitlines()[-1]], result.stderr  # one line, the last
    assert errors[0].startswith(f"error: {tampered} is not what its recipe builds: {WEIGHTS} differ")
    # the rebuild is the genuine model, bit for bit
    assert errors[0].endswith(f"(weights sha256 {weights_sha256(tampered)}, rebuilt {weights_sha256(built)})")
    result = CliRunner().invoke(app, ["lab", "model", "--verify", "--model", str(built)])
    assert result.exit_code == 0 and result.stdout == f"verified: {built} is what its recipe builds (weights sha256 {weights_sha256(built)})\n"


def test_verify_refuses_what_is_not_a_lab_model_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tunewise.cli import app

    result = CliRunner().invoke(app, ["lab", "model", "--verify", "--model", str(tmp_path)])
    assert result.exit_code == 2 and result.stderr.strip() == f"error: {tmp_path} is not a lab model (no lab.json)"
    result = CliRunner().invoke(app, ["lab", "model"])
    assert result.exit_code == 2 and result.stderr.strip().startswith("error: give --world")
