"""The task: what a user writes in task.yaml, as pydantic models (`tunewise.taskfile` reads the file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import jinja2
from pydantic import (
    BaseModel, ConfigDict, Field, PrivateAttr, SerializeAsAny, field_validator, model_validator,
)
from pydantic_core import PydanticCustomError

from tunewise.errors import InputError
from tunewise.spec.arm import ArmParams
from tunewise.spec.endpoints import EmbedderSpec, ModelSpec, uri_shorthand
from tunewise.spec.metric import MetricSpec
from tunewise.spec.synth import SynthSpec
from tunewise.yaml_lines import LocatedYaml


def compile_template(source: str) -> jinja2.Template:
    """The input template; undefined fields are errors, not silently empty."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    return env.from_string(source)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitSpec(_Strict):
    """Fractions for the deterministic hash split (used when there is no split column)."""

    train: float = Field(0.5, ge=0, le=1)
    dev: float = Field(0.1, ge=0, le=1)
    test: float = Field(0.4, gt=0, le=1)
    seed: int = 0

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitSpec:
        if abs(self.train + self.dev + self.test - 1.0) > 1e-6:
            raise ValueError(f"train + dev + test must sum to 1, got {self.train + self.dev + self.test:g}")
        return self


class DataSpec(_Strict):
    """Where the examples are and which fields are input and output."""

    path: Path
    input: str | list[str]
    output: str
    template: str | None = Field(None, description="Jinja2 template rendering the input fields")
    id: str | None = Field(None, description="field holding a stable example id")
    split_field: str | None = None
    split: SplitSpec = SplitSpec()
    max_test: int | None = Field(None, ge=1, description="evaluate on at most this many test examples")

    @field_validator("input")
    @classmethod
    def _non_empty_input(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and not v:
            raise ValueError("needs at least one field")
        return v

    @field_validator("template")
    @classmethod
    def _template_compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                compile_template(v)
            except jinja2.TemplateSyntaxError as e:
                raise ValueError(f"invalid Jinja2 template: {e.message}") from None
        return v

    @property
    def input_fields(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class KnowledgeSpec(_Strict):
    """Documents the retrieval arms search: files or folders, and how they are chunked."""

    paths: list[Path] = Field(min_length=1, description="files or folders, relative to the task file")
    chunk_size: int = Field(200, ge=16, le=8192, description="word pieces per chunk (MiniLM reads 256)")
    chunk_overlap: int = Field(32, ge=0, description="word pieces of whole sentences repeated between chunks")
    skip_bad: bool = Field(False, description="skip unreadable documents (listed in the report) instead of failing")
    max_file_mb: float = Field(20, gt=0)
    embedder: EmbedderSpec = Field(
        default_factory=EmbedderSpec,
        description="openai:<model> | st:<folder> | static:all-MiniLM-L6-v2 | static:<folder>",
    )
    store: str = Field(
        "lancedb", description="where chunks and vectors are kept: lancedb (on local disk) | postgresql://user@host/db"
        " (pgvector; the password from PGPASSWORD, never the task file)",
    )
    min_recall: float = Field(
        0.95, gt=0, le=1, description="recall@10 against exact search an ANN index must reach, measured after each"
        " build; below it the index is tuned, or exact search is used",
    )

    @field_validator("store")
    @classmethod
    def _known_store(cls, v: str) -> str:
        if v != "lancedb" and not v.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"store must be lancedb or a postgresql:// URL, not '{v}'")
        if urlsplit(v).password is not None:
            raise ValueError("the store URL holds a password: leave it out and set PGPASSWORD (or ~/.pgpass) instead")
        return v

    @field_validator("embedder", mode="before")
    @classmethod
    def _embedder_shorthand(cls, v: Any) -> Any:
        return uri_shorthand(v)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> KnowledgeSpec:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size ({self.chunk_size})")
        return self


class Requirements(_Strict):
    """What the builder needs from the chosen arm."""

    min_score: float | None = Field(None, ge=0, le=1, description="the mean score the chosen arm must reach")
    max_p95_latency_ms: float | None = Field(None, gt=0)
    max_cost_per_1k: float | None = Field(None, ge=0, description="US$ per 1,000 queries, one-off costs excluded")
    max_stale_rate: float | None = Field(
        None, ge=0, le=1, description="the share of answers resting on a superseded or retracted premise the chosen"
        " arm may give (its point estimate, over the test examples with `stale_answers`)",
    )
    monthly_queries: int | None = Field(
        None, ge=0, description="expected volume: arms are then ranked by monthly cost, one-off costs included"
    )
    amortize_months: float = Field(
        12, gt=0, description="months over which a one-off (training) cost is spread when comparing monthly costs"
    )
    equivalence_margin: float = Field(
        0.02, ge=0, lt=1, description="how much worse a fine-tuned arm may score and still replace a prompting arm"
        " (break-even: a paired non-inferiority test at this margin)",
    )


class ExecutorSpec(_Strict):
    """Where test examples are answered: in this process (`local`), or fanned out over a Ray cluster."""

    kind: Literal["local", "ray"] = "local"
    address: str | None = Field(None, description="ray: auto | ray://host:port (default: start a local Ray)")
    workers: int | None = Field(None, ge=1, description="ray: workers per arm (default: the cluster's CPUs)")


class RacingSpec(_Strict):
    """Racing: arms evaluated in rounds on growing, nested shares of the test split (the same examples for every arm),
    an arm dropped after a round once an anytime-valid test at level `alpha` rules it out as the recommendation."""

    rounds: list[float] = Field(
        default_factory=lambda: [i / 10 for i in range(1, 11)],
        description="shares of the test split each round reaches, increasing; the last is 1 (added when left out)",
    )
    alpha: float = Field(0.05, gt=0, lt=1, description="the chance of ever dropping an arm the evidence does not rule out")

    @field_validator("rounds")
    @classmethod
    def _growing_shares(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < s <= 1 for s in v) or any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError("rounds must be increasing shares of the test split, each in (0, 1]")
        return v if v[-1] == 1 else [*v, 1.0]


class Task(_Strict):
    """A task: examples, a metric, a model, the arms to try and the requirements to meet."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    data: DataSpec
    instructions: str = ""
    metric: MetricSpec
    model: ModelSpec
    knowledge: KnowledgeSpec | None = None
    arms: list[SerializeAsAny[ArmParams]] = Field(min_length=1)
    requirements: Requirements = Requirements()
    synth: SynthSpec | None = None
    executor: ExecutorSpec = ExecutorSpec()
    racing: RacingSpec | None = None
    seed: int = 0

    _path: Path | None = PrivateAttr(None)
    _root: Path | None = PrivateAttr(None)
    _located: LocatedYaml | None = PrivateAttr(None)

    @field_validator("model", mode="before")
    @classmethod
    def _model_shorthand(cls, v: Any) -> Any:
        return uri_shorthand(v)

    @field_validator("executor", mode="before")
    @classmethod
    def _executor_shorthand(cls, v: Any) -> Any:
        return {"kind": v} if isinstance(v, str) else v

    @field_validator("racing", mode="before")
    @classmethod
    def _racing_shorthand(cls, v: Any) -> Any:
        """`racing: true` is racing with its defaults; `racing: false`, none."""
        if isinstance(v, bool):
            return {} if v else None
        return v

    @field_validator("arms", mode="before")
    @classmethod
    def _arms_are_typed(cls, v: Any) -> Any:
        """Arms arrive as their own params objects: which class a name stands for (a built-in arm or
        `python:module:Class`) is the arm registry's to say, so entries written as data are validated by
        `tunewise.parse_task` / `load_task`, which ask it."""
        for item in v if isinstance(v, list) else []:
            if not isinstance(item, ArmParams):
                raise ValueError("arm entries must be ArmParams objects; read task data with tunewise.parse_task or load_task")
        return v

    @field_validator("arms")
    @classmethod
    def _unique_arm_names(cls, arms: list[Any]) -> list[Any]:
        seen: set[str] = set()
        for i, arm in enumerate(arms):
            if arm.label in seen:
                raise PydanticCustomError(
                    "duplicate_arm", "two arms are named '{name}': give one a distinct `name:`", {"name": arm.label, "index": i}
                )
            seen.add(arm.label)
        return arms

    @property
    def path(self) -> Path | None:
        """The task file this spec was read from (None when built in code)."""
        return self._path

    def error(self, message: str, *loc: str | int) -> InputError:
        """An InputError pointing at the task file and, when it was read from one, the line of `loc`
        (`"arms", i, "k"` finds `k` also in an arm written `- few_shot: {k: 8}`, under the arm's name)."""
        if self._located is None:
            return InputError(message, file=self._path)
        if len(loc) > 2 and loc[0] == "arms" and isinstance(loc[1], int):
            written = self._located.data.get("arms")
            entry = written[loc[1]] if isinstance(written, list) and 0 <= loc[1] < len(written) else None
            if isinstance(entry, dict) and len(entry) == 1 and "arm" not in entry:
                loc = (*loc[:2], next(iter(entry)), *loc[2:])
        return InputError(message, file=self._path, line=self._located.line_of(loc))

    @property
    def base_dir(self) -> Path:
        """The folder relative paths (and `python:` modules) in the task are resolved against: the task file's."""
        if self._root is not None:
            return self._root
        return self.path.parent if self.path else Path.cwd()

    @property
    def data_path(self) -> Path:
        return (self.base_dir / self.data.path).resolve()
