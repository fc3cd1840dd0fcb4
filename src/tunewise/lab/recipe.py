"""Size and schedule of a lab model build: the full recipe, and the quick one tests use."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    """Size and schedule of one build (see tunewise.lab.curriculum); `quick` trades quality for a build of
    well under a minute."""

    batch: int
    layers: int
    width: int
    heads: int
    vocab: int
    lr: float
    mix_steps: int
    max_len: int = 512
    warmup: int = 100
    sentence_steps: int = 0
    copy_steps: int = 0
    max_copy_steps: int = 0
    copy_target: float = 0.0
    probe_every: int = 100
    tokenizer_items: int = 3000


FULL = Recipe(batch=32, layers=2, width=128, heads=4, vocab=2000, lr=3e-3, sentence_steps=600, copy_steps=1200,
              max_copy_steps=3600, copy_target=0.8, mix_steps=1000)
QUICK = Recipe(batch=16, layers=1, width=64, heads=2, vocab=600, lr=5e-3, mix_steps=300, warmup=10, tokenizer_items=500)
