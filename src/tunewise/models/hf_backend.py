"""`hf:<id-or-path>` — a local transformers causal LM.

Greedy requests that arrive together are generated as one left-padded batch; sampled requests
are generated one at a time with a seed derived from the request and the first sample's number, so
samples are reproducible and samples asked for later are new ones. A stream is one sample, generated
in a worker thread that holds the model as a batch does, token by token.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunewise.batching import MicroBatcher
from tunewise.errors import InputError
from tunewise.models.base import ChatRequest, Completion, Piece
from tunewise.prompt import Message

if TYPE_CHECKING:
    from tunewise.spec import ModelSpec


def local_model_id(path: Path) -> str:
    """A content-based id for a model folder: config, tokenizer and a digest of each weights file."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.iterdir() if p.is_file()):
        h.update(f.name.encode())
        if f.suffix in (".json", ".jinja", ".txt", ".model"):
            h.update(f.read_bytes())
        else:
            h.update(str(f.stat().st_size).encode())
            with f.open("rb") as fh:
                h.update(fh.read(1 << 20))
    return h.hexdigest()[:16]


def hf_model_id(source: str) -> str:
    """The id a local folder or hub model goes by in cache keys: a content hash for folders."""
    path = Path(source)
    return f"hf:{local_model_id(path)}" if path.is_dir() else f"hf:{source}"


def _cached_snapshot(repo_id: str) -> str | None:
    """The folder of a hub model's snapshot in the local Hugging Face cache, found without a network call."""
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id, local_files_only=True)
    except (OSError, ValueError):  # not in the cache (LocalEntryNotFoundError is an OSError), or not a hub id
        return None


def load_pretrained(source: str) -> tuple[Any, Any]:
    """The tokenizer and causal LM at `source` (a folder, or a hub id), read from this machine when they are on it.

    A hub model already in the local cache is loaded from its snapshot folder, with no network call: named by its
    hub id, transformers asks the hub for newer files (and for an adapter, even with local_files_only), and when
    the hub cannot be reached it retries for minutes before it falls back to the cache. Only a model the cache
    lacks, or lacks files of, is fetched. InputError when it cannot be loaded.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def load(where: str, local_only: bool) -> tuple[Any, Any]:
        return (AutoTokenizer.from_pretrained(where, local_files_only=local_only),
                AutoModelForCausalLM.from_pretrained(where, local_files_only=local_only))

    try:
        if Path(source).is_dir():
            return load(source, local_only=True)
        snapshot = _cached_snapshot(source)
        if snapshot is not None:
            try:
                return load(snapshot, local_only=True)
            except OSError:
                pass  # a snapshot without every file: the hub has the rest
        return load(source, local_only=False)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"cannot load transformers model '{source}': {first}") from None


def chat_text(tokenizer: Any, messages: list[Message], *, add_generation_prompt: bool) -> str:
    """A conversation as the model reads it: the tokenizer's chat template when it has one, else
    role-prefixed lines. Inference and fine-tuning both render through here, so they agree."""
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=False)
    text = "\n".join(f"{m['role']}: {m['content']}" for m in messages)
    return text + "\nassistant:" if add_generation_prompt else text


def _cut_at_stop(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    """`text` up to the stop string that ends first in it, and whether one did: where a stream of it stops."""
    ends = [(text.index(s) + len(s), text.index(s)) for s in stops if s in text]
    return (text[: min(ends)[1]], True) if ends else (text, False)


def _settled(text: str, stops: tuple[str, ...]) -> str:
    """The stripped part of an unfinished answer that later tokens cannot change: not a character whose bytes
    are still coming, nor an end that may begin a stop string, nor whitespace the final strip may drop."""
    text = text.rstrip("\ufffd")
    held = max((k for s in stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
    return text[: len(text) - held].strip()


def _token_feed(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[list[int] | None]) -> tuple[Any, Any]:
    """A streamer that hands each token `generate` makes to `queue` on `loop` (the prompt it puts first only
    counted, as `tokens_in`), and a stopping criterion that ends `generate` once its `halt` event is set.
    Built here, so transformers and torch are imported when a stream starts, not with this module."""
    import torch
    from transformers import StoppingCriteria
    from transformers.generation.streamers import BaseStreamer

    class Feed(BaseStreamer):
        tokens_in: int | None = None

        def put(self, value: Any) -> None:
            ids = value.reshape(-1).tolist()
            if self.tokens_in is None:
                self.tokens_in = len(ids)
            else:
                loop.call_soon_threadsafe(queue.put_nowait, ids)

        def end(self) -> None:
            """Nothing to do: the queue ends when the worker returns, which it also does when `generate` fails."""

    class Halt(StoppingCriteria):
        def __init__(self) -> None:
            self.halt = threading.Event()

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), self.halt.is_set(), dtype=torch.bool, device=input_ids.device)

    return Feed(), Halt()


class HFModel:
    """A transformers causal LM behind the Model protocol, optionally with a LoRA adapter on top.

    The adapter's content hash is part of `id`, so answers cached for one adapter never serve another.
    """

    def __init__(
        self,
        source: str,
        spec: ModelSpec,
        *,
        model_id: str | None = None,
        adapter: Path | None = None,
        merge: bool = True,
    ):
        import torch
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # tunewise draws its own progress; a bar per load is noise
        self.tokenizer, self.model = load_pretrained(source)
        if adapter is not None:
            from peft import PeftModel

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # a deprecation inside transformers, not ours
                self.model = PeftModel.from_pretrained(self.model, adapter)
            if merge:
                self.model = self.model.merge_and_unload()
        device = spec.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model.to(device).eval()
        self.device = device
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.id = model_id or hf_model_id(source)
        if adapter is not None:
            self.id += f"+lora:{local_model_id(adapter)}"
        self._torch = torch
        self._greedy = MicroBatcher(self._generate, spec.batch_size)

    def render(self, request: ChatRequest) -> str:
        """The prompt text (see chat_text)."""
        return chat_text(self.tokenizer, request.message_dicts(), add_generation_prompt=True)

    async def complete(self, request: ChatRequest, n: int = 1, *, first: int = 0) -> list[Completion]:
        if request.temperature > 0:
            return await asyncio.to_thread(self._sample, request, n, first)
        completion = await self._greedy.submit(request)
        # Greedy decoding has one answer; extra samples are that answer again and cost nothing more.
        return [completion] + [Completion(completion.text, 0, 0, 0.0, completion.finish_reason)] * (n - 1)

    async def stream(self, request: ChatRequest, *, sample: int = 0) -> AsyncIterator[Piece]:
        """Sample number `sample`, the one `complete(request, first=sample)` gives, a piece per token as the worker
        generates it. Closing the stream, or a stop string, halts `generate` at its next token, and the stream
        ends only once `generate` has returned, so nothing goes on generating behind it."""
        from transformers import StoppingCriteriaList

        queue: asyncio.Queue[list[int] | None] = asyncio.Queue()
        feed, halt = _token_feed(asyncio.get_running_loop(), queue)
        worker = asyncio.ensure_future(asyncio.to_thread(
            self._greedy.exclusive, self._run, [self.render(request)], request.max_tokens,
            streamer=feed, stopping_criteria=StoppingCriteriaList([halt]), **self._sampling(request, sample),
        ))
        worker.add_done_callback(lambda _: queue.put_nowait(None))
        ids: list[int] = []
        text, shown = "", ""
        try:
            while (new := await queue.get()) is not None:
                ids += new
                text, stopped = _cut_at_stop(self.tokenizer.decode(ids, skip_special_tokens=True), request.stop)
                now = text.strip() if stopped else _settled(text, request.stop)
                yield Piece(now[len(shown):], len(new), feed.tokens_in if len(ids) == len(new) else 0)
                shown = now
                if stopped:
                    return
            await worker  # what generate raised, before the rest of the text is taken as the answer
            rest = text.strip()[len(shown):]
            if rest or not ids:
                yield Piece(rest, 0, 0 if ids else feed.tokens_in)
        finally:
            halt.halt.set()
            await worker

    def _sampling(self, request: ChatRequest, sample: int) -> dict[str, Any]:
        """`generate`'s options for sample number `sample`: none (greedy) at temperature 0, else sampling seeded by
        the request and the number, so a sample asked for again is the same and samples asked for later are new."""
        if request.temperature <= 0:
            return {}
        seed = int(request.cache_key(self.id)[:8], 16) + sample
        return {"seed": seed, "do_sample": True, "temperature": request.temperature, "top_k": 0}

    def _run(self, prompts: list[str], max_new: int, seed: int | None = None, **options: Any) -> tuple[Any, Any]:
        """The encoded, left-padded prompts and what `generate` makes of them, seeded first when `seed` is given:
        the one place batches, samples and streams call the model, so they generate alike."""
        torch = self._torch
        with torch.inference_mode():
            if seed is not None:
                torch.manual_seed(seed)
            enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            out = self.model.generate(
                **enc,
                max_new_tokens=max_new,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
                **({"do_sample": False} | options),
            )
        return enc, out

    def _generate(self, requests: list[ChatRequest], seed: int | None = None, **options: Any) -> list[Completion]:
        start = time.perf_counter()
        enc, out = self._run([self.render(r) for r in requests], max(r.max_tokens for r in requests), seed, **options)
        latency_ms = (time.perf_counter() - start) * 1000
        per_prompt = out.shape[0] // len(requests)
        prompt_len = enc["input_ids"].shape[1]
        tokens_in = enc["attention_mask"].sum(dim=1).tolist()
        results = []
        for row in range(out.shape[0]):
            i = row // per_prompt
            results.append(self._decode(out[row, prompt_len:].tolist(), requests[i], tokens_in[i], latency_ms))
        return results

    def _decode(self, ids: list[int], request: ChatRequest, tokens_in: int, latency_ms: float) -> Completion:
        eos = self.tokenizer.eos_token_id
        finish = "length"
        if eos in ids:
            ids = ids[: ids.index(eos) + 1]
            finish = "stop"
        ids = ids[: request.max_tokens]
        text, stopped = _cut_at_stop(self.tokenizer.decode(ids, skip_special_tokens=True), request.stop)
        return Completion(text.strip(), int(tokens_in), len(ids), latency_ms, "stop" if stopped else finish)

    def _sample(self, request: ChatRequest, n: int, first: int = 0) -> list[Completion]:
        # Seeded by the request and the first sample's number: the same samples again, new ones after them.
        completions = self._greedy.exclusive(
            self._generate, [request], **self._sampling(request, first), num_return_sequences=n
        )
        return [completions[0]] + [
            Completion(c.text, 0, c.tokens_out, c.latency_ms, c.finish_reason) for c in completions[1:]
        ]

    async def aclose(self) -> None:
        await self._greedy.aclose()
