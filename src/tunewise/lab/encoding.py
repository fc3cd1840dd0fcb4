"""Conversations as the lab model trains on them: token ids laid out as the chat template, and a weighted loss."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunewise.lab.tokenizer import END
from tunewise.prompt import Message

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerFast

PROMPT_WEIGHT = 0.5


def encode(tokenizer: PreTrainedTokenizerFast, conversations: list[list[Message]], max_len: int) -> tuple[
    torch.Tensor, torch.Tensor, torch.Tensor
]:
    """Token ids, attention mask and per-token loss weights of a batch, laid out exactly as the chat template.

    Assistant turns (answers and their <|end|>) weigh 1; every other token weighs PROMPT_WEIGHT, a light
    language-modelling signal on the prompts that speeds up learning to copy names; padding weighs 0.
    """
    import torch

    backend = tokenizer.backend_tokenizer
    contents = [" " + m["content"] for conv in conversations for m in conv]
    pieces = iter(backend.encode_batch(contents, add_special_tokens=False))
    newline = backend.encode("\n", add_special_tokens=False).ids
    end = tokenizer.convert_tokens_to_ids(END)
    rows: list[tuple[list[int], list[float]]] = []
    for conv in conversations:
        ids: list[int] = []
        weights: list[float] = []
        for m in conv:
            head = [tokenizer.convert_tokens_to_ids(f"<|{m['role']}|>")] + newline
            body = next(pieces).ids + [end]
            ids += head + body + newline
            answer = 1.0 if m["role"] == "assistant" else PROMPT_WEIGHT
            weights += [PROMPT_WEIGHT] * len(head) + [answer] * len(body) + [PROMPT_WEIGHT] * len(newline)
        rows.append((ids[:max_len], weights[:max_len]))
    width = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows])
    attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows])
    weight = torch.tensor([w + [0.0] * (width - len(w)) for _, w in rows])
    return input_ids, attention, weight


def weighted_loss(logits: torch.Tensor, input_ids: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy, each target token weighted, averaged over the total weight."""
    import torch.nn.functional as F

    losses = F.cross_entropy(logits[:, :-1].flatten(0, 1), input_ids[:, 1:].flatten(), reduction="none")
    w = weight[:, 1:].flatten()
    return (losses * w).sum() / w.sum()
