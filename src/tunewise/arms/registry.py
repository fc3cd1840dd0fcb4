"""Which arm class a name in a task's `arms:` stands for: a built-in one, or `python:module:Class`.

Adding a built-in arm is one module and one line in BUILTIN. A user's arm is a subclass of `tunewise.Arm` in
their own module, named in the task as `- {arm: "python:my_arms:EchoArm", k: 3}`; its module is found next
to the task file first, then on sys.path (as `python:` metrics are), and its entry is validated by its own
`Params` model, so an unknown key is an error at its line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunewise.arms.adaptive_rag import AdaptiveRagArm
from tunewise.arms.base import Arm, ArmContext
from tunewise.arms.committee import CommitteeArm
from tunewise.arms.few_shot import FewShotArm
from tunewise.arms.finetune import FinetuneArm, FinetuneRagArm
from tunewise.arms.rag import FewShotRagArm, RagArm
from tunewise.arms.self_consistency import SelfConsistencyArm
from tunewise.arms.verified import verified
from tunewise.arms.zero_shot import ZeroShotArm
from tunewise.spec import ArmParams
from tunewise.user_code import import_object

BUILTIN: dict[str, type[Arm]] = {
    "zero_shot": ZeroShotArm,
    "few_shot": FewShotArm,
    "rag": RagArm,
    "few_shot_rag": FewShotRagArm,
    "finetune": FinetuneArm,
    "finetune_rag": FinetuneRagArm,
    "self_consistency": SelfConsistencyArm,
    "committee": CommitteeArm,
    "adaptive_rag": AdaptiveRagArm,
}
ARM_NAMES = tuple(BUILTIN)


def arm_class(name: str, base_dir: Path | None = None, *, verify: bool = False) -> type[Arm]:
    """The class `name` stands for (its answers checked by the verifier when `verify`, see arms.verified);
    ValueError with a one-line reason when there is none."""
    found = _named_class(name, base_dir)
    return verified(found) if verify else found


def _named_class(name: str, base_dir: Path | None) -> type[Arm]:
    if name in BUILTIN:
        return BUILTIN[name]
    if not name.startswith("python:"):
        raise ValueError(f"unknown arm '{name}' (known: {', '.join(ARM_NAMES)}, or python:module:Class)")
    found = import_object(name, base_dir, role="arm", kind="class")
    if not (isinstance(found, type) and issubclass(found, Arm)):
        raise ValueError(f"'{name}' is not a subclass of tunewise.Arm")
    if not (isinstance(found.Params, type) and issubclass(found.Params, ArmParams)):
        raise ValueError(f"'{name}'.Params is not a subclass of tunewise.ArmParams")
    return found


def validate_arm(entry: dict[str, Any], base_dir: Path | None = None) -> ArmParams:
    """An `arms:` entry (shorthands spelled out) as its arm's params; pydantic's ValidationError when it is
    not valid, ValueError when its arm cannot be found."""
    return arm_class(str(entry.get("arm")), base_dir).Params.model_validate(entry)


def build_arm(params: ArmParams, context: ArmContext) -> Arm:
    """The arm object for validated parameters."""
    return arm_class(params.arm, context.task.base_dir, verify=params.verify is not None)(params, context)
