"""The lab model's tokenizer: byte-level BPE trained on the corpus, with role markers and a chat template."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

ROLES: tuple[str, ...] = ("system", "user", "assistant")
END = "<|end|>"
PAD = "<|pad|>"
SPECIAL_TOKENS: list[str] = [PAD, END] + [f"<|{r}|>" for r in ROLES]
# A turn's content starts after a space, so a word opening an answer is the same token as that word inside a
# sentence: the tiny model can then copy a name from the context instead of learning a second spelling of it.
# The generation prompt stops before that space; the model writes it as part of its first token.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n ' + message['content'] + '<|end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE fitted to `texts`, wrapped for transformers with eos=<|end|>, pad=<|pad|> and the template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=END,
        pad_token=PAD,
        additional_special_tokens=SPECIAL_TOKENS[2:],
        chat_template=CHAT_TEMPLATE,
        model_max_length=512,
    )


def render(messages: list[dict[str, str]]) -> str:
    """A conversation as text, exactly what the chat template produces."""
    return "".join(f"<|{m['role']}|>\n {m['content']}{END}\n" for m in messages)
