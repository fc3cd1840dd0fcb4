"""What every arm's parameters have, and the shorthands an `arms:` list may use.

Each arm declares its own parameters as a subclass (next to its code, in `tunewise.arms`); a user's arm
does the same in its own module. Parameters are data: whatever an arm must check against the task or
the file system it checks in its `Arm.check`, before a run starts.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from tunewise.spec.verify import VerifySpec


class ArmParams(BaseModel):
    """Parameters common to every arm; each arm adds its own (built-in ones also a literal `arm` tag)."""

    model_config = ConfigDict(extra="forbid")

    needs_train: ClassVar[bool] = False
    needs_knowledge: ClassVar[bool] = False
    trains: ClassVar[bool] = False  # fine-tuned arms: a one-off training cost, weighed by break-even
    # The field saying how many train examples each prompt shows (few_shot: k); a run refuses more than train has.
    demos_field: ClassVar[str | None] = None

    arm: str
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    history: Literal["all", "none"] = Field(
        "all", description="conversation tasks: the turns before the question in the prompt, or the question alone")
    verify: VerifySpec | None = Field(None, description="check each answer's premises in the conversation (grounded)")

    @property
    def label(self) -> str:
        """How the arm is named in results: `name` if given, else the arm type."""
        return self.name or self.arm


def arm_entries(v: Any) -> Any:
    """An `arms:` list with its shorthands spelled out: `- zero_shot` and `- few_shot: {k: 4}` become
    `{arm: zero_shot}` and `{arm: few_shot, k: 4}`; anything else is left for validation to judge."""
    if not isinstance(v, list):
        return v
    out = []
    for item in v:
        if isinstance(item, str):
            item = {"arm": item}
        elif isinstance(item, dict) and len(item) == 1 and "arm" not in item:
            (arm, params), = item.items()
            item = {"arm": arm, **(params or {})} if isinstance(params, dict) or params is None else item
        out.append(item)
    return out
