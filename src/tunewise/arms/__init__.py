"""The arms (the ladder): one module per arm, all with the same small interface."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from tunewise.arms.adaptive_rag import AdaptiveRagArm, AdaptiveRagParams
from tunewise.arms.base import Answer, Arm, ArmContext, ArmParams, Retrieved
from tunewise.arms.committee import CommitteeArm, CommitteeParams
from tunewise.arms.few_shot import FewShotArm, FewShotParams
from tunewise.arms.finetune import FinetuneArm, FinetuneParams, FinetuneRagArm, FinetuneRagParams
from tunewise.arms.rag import FewShotRagArm, FewShotRagParams, RagArm, RagParams
from tunewise.arms.self_consistency import SelfConsistencyArm, SelfConsistencyParams
from tunewise.arms.zero_shot import ZeroShotArm, ZeroShotParams

ARMS: dict[str, tuple[type[ArmParams], type[Arm]]] = {
    "zero_shot": (ZeroShotParams, ZeroShotArm),
    "few_shot": (FewShotParams, FewShotArm),
    "rag": (RagParams, RagArm),
    "few_shot_rag": (FewShotRagParams, FewShotRagArm),
    "finetune": (FinetuneParams, FinetuneArm),
    "finetune_rag": (FinetuneRagParams, FinetuneRagArm),
    "self_consistency": (SelfConsistencyParams, SelfConsistencyArm),
    "committee": (CommitteeParams, CommitteeArm),
    "adaptive_rag": (AdaptiveRagParams, AdaptiveRagArm),
}
ARM_NAMES = tuple(ARMS)

AnyArmParams = Annotated[
    Union[
        ZeroShotParams, FewShotParams, RagParams, FewShotRagParams, FinetuneParams, FinetuneRagParams,
        SelfConsistencyParams, CommitteeParams, AdaptiveRagParams,
    ],
    Field(discriminator="arm"),
]


def build_arm(params: ArmParams, context: ArmContext) -> Arm:
    """The arm object for validated parameters."""
    return ARMS[params.arm][1](params, context)


__all__ = [
    "ARMS",
    "ARM_NAMES",
    "AnyArmParams",
    "Answer",
    "Arm",
    "ArmContext",
    "ArmParams",
    "Retrieved",
    "build_arm",
]
