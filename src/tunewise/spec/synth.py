"""`synth:` in a task file: how synthetic training examples are generated and which checks stop a bad one."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tunewise.spec.endpoints import ModelSpec, uri_shorthand
from tunewise.spec.metric import python_ref

BUILTIN_VALIDATORS = ("well_posed", "duplicate", "hedging", "markers", "arithmetic", "parses", "grounded")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ValidatorSpec(_Strict):
    """One check: a built-in by name with its options, or `python:module:function`."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        """`hedging`, `{duplicate: {max_rouge_l: 0.6}}` or `{name: ..., options: ...}`."""
        if isinstance(v, str):
            return {"name": v}
        if isinstance(v, dict) and len(v) == 1 and "name" not in v:
            (name, options), = v.items()
            return {"name": name, "options": options if options is not None else {}}
        return v

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v.startswith("python:"):
            python_ref(v)
        elif v not in BUILTIN_VALIDATORS:
            raise ValueError(f"unknown validator '{v}' (known: {', '.join(BUILTIN_VALIDATORS)}, python:module:function)")
        return v


class SynthSpec(_Strict):
    """The generator, its prompt's seeds, the stages' budgets, the validators and the utility threshold."""

    generator: ModelSpec = Field(description="the model that writes examples: openai:<model> (streamed), hf:, lab:")
    seeds: int = Field(3, ge=0, le=20, description="train examples shown to the generator per sample (never dev or test)")
    guidance: str = Field("", description="more to tell the generator, after the task's instructions")
    temperature: float = Field(0.9, ge=0, le=2)
    max_tokens: int = Field(256, ge=8, description="tokens a sample may take in all")
    s2_fraction: float = Field(0.5, gt=0, lt=1, description="S2 ends this share of the expected answer length in")
    answer_tokens: int | None = Field(None, ge=1, description="expected answer length in tokens; default: from train")
    threshold: float = Field(0.5, gt=0, le=1, description="a sample whose utility (product of scores) falls below is stopped")
    validators: list[ValidatorSpec] = Field(default_factory=lambda: [ValidatorSpec(name=n) for n in BUILTIN_VALIDATORS])
    max_attempts: float = Field(4.0, ge=1, description="attempts allowed per wanted example before giving up")
    concurrency: int = Field(8, ge=1, le=256, description="samples generated at once (a wave)")

    @field_validator("generator", mode="before")
    @classmethod
    def _generator_shorthand(cls, v: Any) -> Any:
        return uri_shorthand(v)

    @field_validator("validators")
    @classmethod
    def _unique(cls, v: list[ValidatorSpec]) -> list[ValidatorSpec]:
        names = [spec.name for spec in v]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"validator '{twice[0]}' is listed twice")
        return v
