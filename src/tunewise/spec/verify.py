"""`verify:` on an arm: the grounded-continuation verifier and what it does with an answer that rests on a stale
premise."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tunewise.spec.metric import python_ref


class VerifySpec(BaseModel):
    """`verify: grounded`, or `verify: {method: grounded, on_stale: abstain, labeller: python:mod:fn}`."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["grounded"] = "grounded"
    on_stale: Literal["reanswer", "abstain"] = Field(
        "reanswer", description="an answer resting on a stale premise: re-asked with the live premises, or declined")
    labeller: str = Field(
        "model", description="who labels each turn's update: the task's model (a short cached prompt), or "
                             "python:module:function")
    min_overlap: float = Field(0.8, gt=0, le=1, description="share of a premise's value an answer must contain to "
                                                            "rest on it")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"method": v} if isinstance(v, str) else v

    @field_validator("labeller")
    @classmethod
    def _labeller(cls, v: str) -> str:
        if v != "model":
            if not v.startswith("python:"):
                raise ValueError("labeller must be 'model' or python:module:function")
            python_ref(v)
        return v
