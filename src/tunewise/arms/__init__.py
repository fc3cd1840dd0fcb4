"""The arms (the ladder): one module per arm, all on the contract in `tunewise.arms.base`; the registry says
which class a task's arm name stands for."""

from tunewise.arms.base import (
    Answer, AnswerMeta, Arm, ArmContext, ArmExtras, ArmRecord, Evaluated, PoolScores, Result, RetrievalScore, Retrieved,
)
from tunewise.arms.registry import ARM_NAMES, BUILTIN, arm_class, build_arm, validate_arm
from tunewise.data import Query
from tunewise.spec import ArmParams

__all__ = [
    "ARM_NAMES", "BUILTIN", "Answer", "AnswerMeta", "Arm", "ArmContext", "ArmExtras", "ArmParams", "ArmRecord",
    "Evaluated", "PoolScores", "Query", "Result", "RetrievalScore", "Retrieved", "arm_class", "build_arm",
    "validate_arm",
]
