"""The task spec: what a user writes in task.yaml, as pydantic models. Pure data: no I/O, no behaviour.

    Task            examples, a metric, a model, the arms to try and the requirements to meet
    DataSpec        where the examples are and which fields are input and output
    ModelSpec       which model answers, how to reach it, and what it costs (EndpointSpec, EmbedderSpec)
    KnowledgeSpec   the documents retrieval arms search, and where their chunks are stored
    ExecutorSpec    where test examples are answered (this process, or a Ray cluster)
    RacingSpec      rounds on growing shares of the test split, arms dropped once ruled out
    MetricSpec      how an answer is scored
    ArmParams       what every arm's parameters have (each arm adds its own)
    Requirements    what the chosen arm must meet
    SynthSpec       how synthetic training examples are generated and checked
    VerifySpec      an arm's grounded-continuation verifier
"""

from tunewise.spec.arm import ArmParams, arm_entries
from tunewise.spec.check import CheckSpec
from tunewise.spec.endpoints import PACKAGED_EMBEDDER, EmbedderSpec, EndpointSpec, ModelSpec
from tunewise.spec.finetune import LoraSettings, ProviderSettings
from tunewise.spec.metric import BUILTIN, MetricSpec, python_ref
from tunewise.spec.synth import SynthSpec, ValidatorSpec
from tunewise.spec.task import (
    DataSpec, ExecutorSpec, KnowledgeSpec, RacingSpec, Requirements, SplitSpec, Task, compile_template,
)
from tunewise.spec.verify import VerifySpec

__all__ = [
    "BUILTIN", "PACKAGED_EMBEDDER", "ArmParams", "CheckSpec", "DataSpec", "EmbedderSpec", "EndpointSpec",
    "ExecutorSpec", "KnowledgeSpec", "LoraSettings", "MetricSpec", "ModelSpec", "ProviderSettings", "RacingSpec",
    "Requirements",
    "SplitSpec", "SynthSpec", "Task", "ValidatorSpec", "VerifySpec", "arm_entries", "compile_template", "python_ref",
]
