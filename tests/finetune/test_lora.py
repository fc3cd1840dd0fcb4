"""LoRA on a real tiny GPT-2: only the answer is trained on, the adapter changes answers, same seed same bits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from openai_server import CAPITALS
from tiny_gpt2 import build_tiny_gpt2

from tunewise.errors import InputError
from tunewise.finetune.lora import IGNORE, LoraSettings, encode, train_adapter
from tunewise.models.base import ChatRequest
from tunewise.spec import ModelSpec

# The lab's layout: a space after the role header's newline, a generation prompt without it.
LAB_STYLE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n ' + m['content'] + '<|end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
PAIRS = list(CAPITALS.items())[:8]


def chat(country: str, capital: str | None = None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": "Answer."}, {"role": "user", "content": f"Capital of {country}?"}]
    return messages + ([{"role": "assistant", "content": capital}] if capital else [])


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    corpus = [f"Capital of {c}? {k}" for c, k in CAPITALS.items()] * 3
    return build_tiny_gpt2(tmp_path_factory.mktemp("base"), LAB_STYLE, corpus, width=64)


def test_only_the_answer_is_trained_on_and_the_prompt_is_tokenized_as_at_inference(base):
    from transformers import AutoTokenizer

    from tunewise.models.hf_backend import HFModel

    tokenizer = AutoTokenizer.from_pretrained(base)
    row = encode(tokenizer, chat("Alania", "Anville"))
    prompt = HFModel(str(base), ModelSpec(uri="hf:x")).render(ChatRequest.from_messages(chat("Alania")))
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    n = len(prompt_ids)
    assert row["input_ids"][:n] == prompt_ids  # the very tokens the model reads when answering
    assert row["labels"][:n] == [IGNORE] * n
    assert row["labels"][n:] == row["input_ids"][n:]
    assert tokenizer.decode(row["labels"][n:]) == " Anville<|end|>\n"  # the template's space belongs to the answer
    assert tokenizer.eos_token_id in row["labels"]  # so the model learns to stop


def test_a_template_whose_prompt_is_not_a_prefix_of_the_conversation_is_refused(base):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.chat_template = LAB_STYLE.replace("'<|assistant|>\\n'", "'<|assistant|>:'")
    with pytest.raises(InputError, match="cannot be told apart"):
        encode(tokenizer, chat("Alania", "Anville"))


def answers(source: Path, adapter: Path | None, *, merge: bool = True) -> list[str]:
    from tunewise.models.hf_backend import HFModel

    model = HFModel(str(source), ModelSpec(uri="hf:x", max_tokens=8), adapter=adapter, merge=merge)
    requests = [ChatRequest.from_messages(chat(country), max_tokens=8) for country, _ in PAIRS]

    async def ask() -> list[str]:
        return [(await model.complete(r))[0].text for r in requests]

    return asyncio.run(ask())


@pytest.mark.slow
def test_adapter_learns_the_train_answers(base, tmp_path):
    train = [chat(country, capital) for country, capital in PAIRS]
    settings = LoraSettings(r=16, alpha=32, lr=5e-3, max_steps=200, batch_size=8)
    steps: list[tuple[int, int]] = []
    adapter = train_adapter(str(base), train, [], settings, seed=1, out=tmp_path / "a", fingerprint="f",
                            progress=lambda step, total, loss: steps.append((step, total)))
    assert adapter.steps == 200 and steps[-1] == (200, 200)
    capitals = [capital for _, capital in PAIRS]
    assert sum(a == c for a, c in zip(answers(base, None), capitals)) == 0
    tuned = answers(base, adapter.path)
    assert sum(a == c for a, c in zip(tuned, capitals)) >= 6
    assert answers(base, adapter.path, merge=False) == tuned  # merging changes speed, not answers


def test_same_seed_same_adapter(base, tmp_path):
    from safetensors.torch import load_file

    train = [chat(country, capital) for country, capital in PAIRS]
    settings = LoraSettings(r=4, max_steps=5, batch_size=4, dropout=0.1)
    first, again, other = (
        load_file(train_adapter(str(base), train, [], settings, seed=seed, out=tmp_path / name, fingerprint="f").path
                  / "adapter_model.safetensors")
        for name, seed in (("a", 1), ("b", 1), ("c", 2))
    )
    assert {k.split(".")[-3] for k in first} == {"c_attn", "c_proj", "c_fc"}  # GPT-2's Conv1D layers found
    assert all(first[k].equal(again[k]) for k in first)
    assert not all(first[k].equal(other[k]) for k in first)
