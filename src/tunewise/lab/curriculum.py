"""The lab model's curriculum: which lesson the stream draws from at each step, the learning rate, and when
to move on.

1. `sentence_steps` of one-sentence passages, told apart only by their subject: the copy circuit forms here.
2. Retrieved-looking passages (and a share of demonstrated formats) until a held-out copy probe reaches
   `copy_target`, checked every `probe_every` steps from `copy_steps` on, at most until `max_copy_steps`.
   When a tiny model learns to copy is a phase change whose timing varies from one build to the next
   (measured: 1,200 to 2,000 steps for the same recipe and another tokenizer sample), so the build waits for
   it instead of assuming it. The probe is deterministic, so the same seed still gives the same model.
3. `mix_steps` of the full mix, the learning rate decaying to a tenth.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tunewise.lab.corpus import Corpus
from tunewise.lab.encoding import encode
from tunewise.prompt import Message

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerFast

    from tunewise.lab.recipe import Recipe

PROBE_ITEMS = 96


@dataclass
class Curriculum:
    """The schedule of one build; the training loop asks it what to draw and tells it what the probe says."""

    corpus: Corpus
    recipe: Recipe
    copy_done: int | None = None
    probes: list[tuple[int, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.recipe.copy_target:
            self.copy_done = self.recipe.copy_steps

    def lesson(self, step: int) -> Callable[[], list[Message]]:
        """What the stream draws from at `step`."""
        if step < self.recipe.sentence_steps:
            return self.corpus.sentence_item
        if self.copy_done is None or step < self.copy_done:
            return self.corpus.copy_item
        return self.corpus.item

    def wants_probe(self, step: int) -> bool:
        """Whether the copy probe should run after `step` steps."""
        r = self.recipe
        return self.copy_done is None and step >= r.copy_steps and step % r.probe_every == 0

    def probed(self, step: int, accuracy: float) -> None:
        """Move on to the full mix once the probe reaches the target, or at `max_copy_steps` regardless."""
        self.probes.append((step, accuracy))
        if accuracy >= self.recipe.copy_target or step >= self.recipe.max_copy_steps:
            self.copy_done = step

    @property
    def total(self) -> int:
        """The planned number of steps: exact once the copy phase has ended, its longest until then."""
        r = self.recipe
        return (r.max_copy_steps if self.copy_done is None else self.copy_done) + r.mix_steps

    def lr_factor(self, step: int) -> float:
        """Linear warm-up, constant through the lessons, cosine down to a tenth over the full mix."""
        r = self.recipe
        if step < r.warmup:
            return (step + 1) / r.warmup
        start = max(r.warmup, self.copy_done if self.copy_done is not None else step)
        done = min(1.0, max(0, step - start) / max(1, self.total - start))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done))


def copy_probe(corpus: Corpus, n: int = PROBE_ITEMS) -> list[list[Message]]:
    """Held-out questions answered from passages about fresh entities (draw them from a corpus seeded apart
    from the training stream)."""
    items: list[list[Message]] = []
    while len(items) < n:
        conv = corpus.copy_item()
        if conv[-2]["content"].startswith("Context:\n") and len(conv) <= 3:
            items.append(conv)
    return items


def exact_match(model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, convs: list[list[Message]]) -> float:
    """Share of conversations whose answer (with its <|end|>) greedy decoding reproduces token for token,
    computed in one teacher-forced pass per batch."""
    import torch

    was_training = model.training
    model.eval()
    hits = 0
    with torch.no_grad():
        for i in range(0, len(convs), 32):
            ids, attention, weight = encode(tokenizer, convs[i : i + 32], model.config.n_positions)
            predicted = model(input_ids=ids, attention_mask=attention).logits.argmax(-1)
            answer = weight[:, 1:] == 1.0  # the final (only) assistant turn
            right = (predicted[:, :-1] == ids[:, 1:]) | ~answer
            hits += int(right.all(dim=1).sum())
    model.train(was_training)
    return hits / len(convs)
