"""A tiny GPT-2 with a BPE tokenizer and a chat template, built in a second with no hub access."""

from __future__ import annotations

from pathlib import Path

SPECIALS = ["<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]


def build_tiny_gpt2(out: Path, chat_template: str, corpus: list[str], *, width: int = 32, seed: int = 0) -> Path:
    """A randomly initialised 2-layer GPT-2 and a byte-level BPE fitted to `corpus`, saved to `out`."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus, vocab_size=400, min_frequency=1, special_tokens=SPECIALS)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|end|>", pad_token="<|end|>")
    tokenizer.chat_template = chat_template
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_embd=width, n_layer=2, n_head=2,
                        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id)
    GPT2LMHeadModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
