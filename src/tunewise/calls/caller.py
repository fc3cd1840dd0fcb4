"""The one door every arm calls the model through: cache, prices, de-duplication, usage.

An arm gets an `ExampleCaller` for each example it answers; whatever it calls (one prompt, k
samples, critics, judges) is priced and counted there, and the runner records the total.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from tunewise.calls.cache import ResponseCache, Stored
from tunewise.calls.log import Call, CallLog, CallSink
from tunewise.errors import ModelCallError
from tunewise.models.base import ChatRequest, Completion, Model
from tunewise.prompt import Message


@dataclass(frozen=True)
class Sample:
    """A completion as an arm sees it: the text plus its price and whether it came from the cache."""

    text: str
    tokens_in: int
    tokens_out: int
    latency_ms: float
    cost: float
    cached: bool
    finish_reason: str = "stop"


@dataclass
class Usage:
    """What answering one example took, summed over its calls."""

    calls: int = 0
    cached_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    fresh_cost: float = 0.0
    latency_ms: float = 0.0

    def add(self, sample: Sample) -> None:
        self.calls += 1
        self.cached_calls += sample.cached
        self.tokens_in += sample.tokens_in
        self.tokens_out += sample.tokens_out
        self.cost += sample.cost
        self.fresh_cost += 0.0 if sample.cached else sample.cost

    def absorb(self, other: Usage) -> None:
        """Add what another example's calls took (e.g. an arm's calls on train examples, summed)."""
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(frozen=True)
class Prices:
    """US dollars per 1M input and output tokens."""

    input_per_1m: float = 0.0
    output_per_1m: float = 0.0

    def cost(self, completion: Completion) -> float:
        return self.of(completion.tokens_in, completion.tokens_out)

    def of(self, tokens_in: float, tokens_out: float) -> float:
        """US$ for these tokens."""
        return (tokens_in * self.input_per_1m + tokens_out * self.output_per_1m) / 1e6


class ModelCaller:
    """A model behind the response cache and the call log, with the run's prices and de-duplication of identical
    calls in flight. Every answer is priced here from its tokens, a cached one too: what an arm costs is what its
    calls cost at this run's prices; `fresh_cost` is what this run paid for the calls it sent. `log` defaults to
    the call log of the cache's database."""

    def __init__(
        self,
        model: Model,
        cache: ResponseCache,
        *,
        prices: Prices,
        run_id: str,
        temperature: float,
        max_tokens: int,
        read_cache: bool = True,
        log: CallSink | None = None,
    ):
        self.model = model
        self.cache = cache
        self.log = log if log is not None else CallLog(cache.db)
        self.prices = prices
        self.run_id = run_id
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.read_cache = read_cache
        self._inflight: dict[tuple[str, tuple[int, ...]], asyncio.Future[list[Stored]]] = {}

    def with_model(self, model: Model, prices: Prices) -> ModelCaller:
        """The same cache, run and generation settings in front of another model (a fine-tuned one)."""
        return ModelCaller(
            model, self.cache, prices=prices, run_id=self.run_id, temperature=self.temperature,
            max_tokens=self.max_tokens, read_cache=self.read_cache, log=self.log,
        )

    def for_example(self, arm: str, example_id: str, *, generation: Generation | None = None, first: int = 0
                    ) -> ExampleCaller:
        return ExampleCaller(self, arm, example_id, generation=generation or Generation(), first=first)

    async def complete(self, request: ChatRequest, n: int, *, arm: str, example_id: str, first: int = 0
                       ) -> list[Sample]:
        """Samples first..first+n-1 of `request`: cached ones reused, only the missing ones sent; each logged."""
        key = request.cache_key(self.model.id)
        numbers = range(first, first + n)
        calls = {i: Call(self.run_id, arm, example_id, key, i) for i in numbers}
        found = self.cache.get(key, first + n) if self.read_cache else {}
        missing = tuple(i for i in numbers if i not in found)
        sent: set[int] = set()
        if missing:
            try:
                fetched, fresh = await self._fetch(key, request, missing)
            except ModelCallError as e:
                for i in missing:
                    self.log.failed(calls[i], str(e))
                raise
            found.update(zip(missing, fetched))
            sent = set(missing) if fresh else set()
        samples = []
        for i in numbers:
            stored = found[i]
            cost = self.prices.cost(stored.completion)
            samples.append(self._sample(stored.completion, cost, cached=i not in sent))
            self.log.answered(calls[i], stored.completion, cost=cost, cached=i not in sent, response_id=stored.id)
        return samples

    async def _fetch(self, key: str, request: ChatRequest, indices: tuple[int, ...]) -> tuple[list[Stored], bool]:
        """The samples `indices` of `request`, sent and stored; False with them when an identical call in flight
        fetched them (this call paid nothing)."""
        inflight_key = (key, indices)
        if inflight_key in self._inflight:
            return await asyncio.shield(self._inflight[inflight_key]), False
        future: asyncio.Future[list[Stored]] = asyncio.get_running_loop().create_future()
        self._inflight[inflight_key] = future
        try:
            completions = await self.model.complete(request, len(indices), first=indices[0])
            stored = [Stored(self.cache.put(key, i, self.model.id, request, c), c) for i, c in zip(indices, completions)]
            future.set_result(stored)
            return stored, True
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # mark retrieved: nobody else may be waiting
            raise
        finally:
            del self._inflight[inflight_key]

    @staticmethod
    def _sample(completion: Completion, cost: float, *, cached: bool) -> Sample:
        return Sample(
            completion.text,
            completion.tokens_in,
            completion.tokens_out,
            completion.latency_ms,
            cost,
            cached,
            completion.finish_reason,
        )


@dataclass(frozen=True)
class Generation:
    """Generation settings asked for from outside an arm (a served request's `temperature`, `max_tokens`, `stop`):
    they apply where the arm leaves a setting to the task, never where it sets its own (a vote's temperature)."""

    temperature: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()


@dataclass
class ExampleCaller:
    """What an arm holds while answering one example; every call is added to `usage`. Its calls draw samples
    from number `first` on (a served request's second choice draws the second sample)."""

    caller: ModelCaller
    arm: str
    example_id: str
    usage: Usage = field(default_factory=Usage)
    generation: Generation = field(default_factory=Generation)
    first: int = 0

    def request(self, messages: list[Message], *, temperature: float | None = None, max_tokens: int | None = None) -> ChatRequest:
        """A request with the task's generation settings unless the arm, or else the caller's `generation`, says
        otherwise."""
        g = self.generation
        if temperature is None:
            temperature = self.caller.temperature if g.temperature is None else g.temperature
        return ChatRequest.from_messages(
            messages, temperature=temperature, max_tokens=max_tokens or g.max_tokens or self.caller.max_tokens,
            stop=g.stop,
        )

    async def complete(self, request: ChatRequest, n: int = 1) -> list[Sample]:
        samples = await self.caller.complete(request, n, arm=self.arm, example_id=self.example_id, first=self.first)
        for s in samples:
            self.usage.add(s)
        # One request bills its prompt once. Its samples may have been drawn in two calls (the first ones
        # cached, e.g. by another arm asking for fewer): count the prompt once, as asking for n at once would.
        repeated = sum(s.tokens_in for s in samples) - max(s.tokens_in for s in samples)
        if repeated:
            self.usage.tokens_in -= repeated
            self.usage.cost -= repeated * self.caller.prices.input_per_1m / 1e6
        # Samples of one request arrive together: the example waited once, not n times.
        self.usage.latency_ms += max(s.latency_ms for s in samples)
        return samples

    async def chat(self, messages: list[Message], **params: float | int | None) -> str:
        """One answer to `messages`: the common case."""
        (sample,) = await self.complete(self.request(messages, **params))  # type: ignore[arg-type]
        return sample.text
