"""One synthetic sample, generated in stages with in-flight rejection (MSIFR), or in full and then filtered.

MSIFR streams the sample and scores it at each checkpoint: S1 when the input ends (the answer marker is
written), S2 when the answer has run `budget` tokens, S3 at its end. A sample whose utility falls below the
threshold is stopped there: its stream is closed, so the tokens it would have gone on to write are never
generated. Generate-then-filter writes every sample in full and applies the same validators once at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tunewise.models.base import ChatRequest, StreamingModel
from tunewise.synth.format import parse
from tunewise.synth.validators import Draft, Validator

METHODS = ("msifr", "filter")


@dataclass
class Verdict:
    """The validators' scores at one checkpoint and the utility they make."""

    stage: int
    scores: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)

    @property
    def utility(self) -> float:
        return math.prod(self.scores.values())


@dataclass
class Outcome:
    """What generating one sample gave: its text, tokens, the stage it ended at, whether it was kept, and why not."""

    attempt: int
    method: str
    text: str
    input: str
    answer: str
    tokens_in: int
    tokens_out: int
    stage: int
    accepted: bool
    scores: dict[str, float]
    reasons: dict[str, str]
    chunk: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        return cls(**data)


def judge(validators: list[Validator], draft: Draft) -> Verdict:
    """Every validator that applies at the draft's stage (it starts there or earlier), scored."""
    verdict = Verdict(draft.stage)
    for v in validators:
        if v.stage > draft.stage:
            continue
        score = v.check(draft)
        if score is None:
            continue
        verdict.scores[v.name] = score.value
        if score.value < 1:
            verdict.reasons[v.name] = score.reason
    return verdict


def _draft(stage: int, text: str, chunk: str | None, truncated: bool = False) -> Draft:
    parsed = parse(text)
    return Draft(stage, parsed.input, parsed.answer or "", chunk, truncated)


def _outcome(attempt: int, method: str, text: str, tokens: tuple[int, int], verdict: Verdict, threshold: float,
             chunk: str | None) -> Outcome:
    parsed = parse(text)
    return Outcome(
        attempt=attempt, method=method, text=text, input=parsed.input, answer=parsed.answer or "", tokens_in=tokens[0],
        tokens_out=tokens[1], stage=verdict.stage, accepted=verdict.stage == 3 and verdict.utility >= threshold,
        scores=verdict.scores, reasons=verdict.reasons, chunk=chunk,
    )


async def in_flight(
    model: StreamingModel, request: ChatRequest, *, attempt: int, validators: list[Validator], threshold: float,
    budget: int, chunk: str | None,
) -> Outcome:
    """MSIFR: stream the sample and stop it at the first checkpoint where its utility falls below `threshold`."""
    text, tokens_in, tokens_out, stage, answer_from, ended = "", 0, 0, 1, 0, False
    stream = model.stream(request, sample=attempt)
    try:
        async for piece in stream:
            tokens_in += piece.tokens_in
            tokens_out += piece.tokens_out
            if ended:
                if piece.text.strip():
                    break  # writing on past its end marker: nothing more of it is wanted
                continue
            text += piece.text
            parsed = parse(text)
            if parsed.ended:
                ended = True
                continue
            checkpoint = None
            if stage == 1 and parsed.answer is not None:
                checkpoint, answer_from = 1, tokens_out
            elif stage == 2 and tokens_out - answer_from >= budget:
                checkpoint = 2
            if checkpoint is not None:
                verdict = judge(validators, _draft(checkpoint, text, chunk))
                if verdict.utility < threshold:
                    return _outcome(attempt, "msifr", text, (tokens_in, tokens_out), verdict, threshold, chunk)
                stage = checkpoint + 1
    finally:
        await stream.aclose()
    verdict = _final(validators, text, chunk, tokens_out >= request.max_tokens)
    return _outcome(attempt, "msifr", text, (tokens_in, tokens_out), verdict, threshold, chunk)


def _final(validators: list[Validator], text: str, chunk: str | None, truncated: bool) -> Verdict:
    """The S3 verdict on a whole sample; one that never wrote its answer marker is judged at S1."""
    parsed = parse(text)
    truncated = truncated and not parsed.ended
    if parsed.answer is None:
        verdict = judge(validators, Draft(1, parsed.input, "", chunk, truncated))
        verdict.scores["markers"], verdict.reasons["markers"] = 0.0, "no answer marker"
        return verdict
    return judge(validators, Draft(3, parsed.input, parsed.answer, chunk, truncated))


async def generate_then_filter(
    model: StreamingModel, request: ChatRequest, *, attempt: int, validators: list[Validator], threshold: float,
    chunk: str | None,
) -> Outcome:
    """The baseline: the whole sample, then the same validators once."""
    completion = (await model.complete(request, 1, first=attempt))[0]
    verdict = _final(validators, completion.text, chunk, completion.finish_reason == "length")
    verdict.stage = 3  # judged once, in full, whatever failed
    return _outcome(attempt, "filter", completion.text, (completion.tokens_in, completion.tokens_out), verdict,
                    threshold, chunk)
