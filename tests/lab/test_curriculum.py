"""The curriculum: lessons in order, the copy phase ends when the probe says so, the stream follows it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tunewise.lab.corpus import Corpus
from tunewise.lab.curriculum import Curriculum
from tunewise.lab.model import FULL, QUICK, batches
from tunewise.lab.tokenizer import render, train_tokenizer
from tunewise.lab.world import generate_world

RECIPE = replace(FULL, sentence_steps=10, copy_steps=20, max_copy_steps=60, probe_every=10, mix_steps=30, warmup=5)


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus(generate_world(0), 0)


def test_lessons_follow_the_probe(corpus: Corpus) -> None:
    c = Curriculum(corpus, RECIPE)
    assert c.lesson(0) == corpus.sentence_item and c.lesson(9) == corpus.sentence_item
    assert c.lesson(10) == corpus.copy_item and c.lesson(500) == corpus.copy_item
    assert not c.wants_probe(10), "no probe before copy_steps"
    assert c.wants_probe(20) and not c.wants_probe(25)
    assert c.total == 60 + 30  # the longest it can take, until the copy phase ends
    c.probed(20, 0.5)
    assert c.copy_done is None and c.lesson(21) == corpus.copy_item
    c.probed(30, RECIPE.copy_target)
    assert c.copy_done == 30 and not c.wants_probe(40)
    assert c.lesson(29) == corpus.copy_item and c.lesson(30) == corpus.item
    assert c.total == 30 + 30
    assert c.probes == [(20, 0.5), (30, RECIPE.copy_target)]


def test_the_copy_phase_ends_at_its_longest_even_if_the_probe_never_passes(corpus: Corpus) -> None:
    c = Curriculum(corpus, RECIPE)
    for step in range(20, 70, 10):
        if c.wants_probe(step):
            c.probed(step, 0.0)
    assert c.copy_done == 60 and c.total == 90


def test_a_recipe_without_a_copy_target_goes_by_steps(corpus: Corpus) -> None:
    c = Curriculum(corpus, QUICK)
    assert c.copy_done == 0 and c.lesson(0) == corpus.item and c.total == QUICK.mix_steps
    assert not any(c.wants_probe(s) for s in range(200))


def test_learning_rate_warms_up_holds_through_the_lessons_and_decays_over_the_mix(corpus: Corpus) -> None:
    c = Curriculum(corpus, RECIPE)
    assert c.lr_factor(0) == pytest.approx(1 / 5) and c.lr_factor(4) == pytest.approx(1.0)
    assert all(c.lr_factor(s) == pytest.approx(1.0) for s in (5, 20, 45))
    c.probed(40, 1.0)
    factors = [c.lr_factor(s) for s in range(40, 71)]
    assert factors[0] == pytest.approx(1.0) and factors[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors, factors[1:]))


def test_every_batch_is_of_the_lesson_of_its_step(corpus: Corpus) -> None:
    tokenizer = train_tokenizer([render(corpus.item()) for _ in range(200)], 600)
    recipe = replace(RECIPE, batch=2)
    c = Curriculum(corpus, recipe)
    marked = Corpus(generate_world(0), 0)
    lessons = {"sentence_item": "S", "copy_item": "C", "item": "M"}
    for name, mark in lessons.items():  # tag each lesson's items so a batch tells where it came from
        make = getattr(marked, name)
        setattr(marked, name, lambda make=make, mark=mark: [{"role": "system", "content": mark}, *make()])
    c.corpus = marked
    stream = batches(c, tokenizer, recipe)
    system = tokenizer.convert_tokens_to_ids("<|system|>")
    seen = []
    for step in range(40):
        if step == 25:
            c.probed(25, 1.0)  # the switch to the full mix mid-pool
        ids, _, _ = next(stream)
        row = ids[0].tolist()
        seen.append(tokenizer.decode(row[row.index(system) + 1 : row.index(system) + 3]).strip())
    assert seen == ["S"] * 10 + ["C"] * 15 + ["M"] * 15


def test_the_copy_probe_counts_a_hit_only_when_every_answer_token_and_the_end_are_predicted(corpus: Corpus) -> None:
    import torch

    from tunewise.lab.curriculum import copy_probe, exact_match
    from tunewise.lab.model import encode

    tokenizer = train_tokenizer([render(corpus.item()) for _ in range(200)], 600)
    convs = copy_probe(Corpus(generate_world(0), 9), 40)  # two batches, rows of different lengths
    wrong = {3, 17, 33}  # rows whose model misses one answer token (the last: their <|end|>)

    class Oracle(torch.nn.Module):
        """Predicts every next token right, except the last answer token of the `wrong` rows."""

        config = type("Config", (), {"n_positions": 512})()
        offset = 0

        def forward(self, input_ids, attention_mask):
            logits = torch.zeros(*input_ids.shape, len(tokenizer))
            logits[:, :-1].scatter_(2, input_ids[:, 1:, None], 1.0)
            for row in range(input_ids.shape[0]):
                if self.offset + row in wrong:
                    last = int(attention_mask[row].sum()) - 3  # predicts the answer's <|end|>, before its newline
                    logits[row, last] = 0.0
                    logits[row, last, 0] = 1.0
            self.offset += input_ids.shape[0]
            return type("Out", (), {"logits": logits})()

    ids, attention, weight = encode(tokenizer, convs[:1], 512)
    n = int(attention[0].sum())
    assert ids[0, n - 2] == tokenizer.eos_token_id and weight[0, n - 2] == 1.0 and weight[0, n - 1] < 1.0
    assert exact_match(Oracle(), tokenizer, convs) == (40 - len(wrong)) / 40
