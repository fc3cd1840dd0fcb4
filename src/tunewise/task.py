"""The task spec: what a user writes in task.yaml, validated with pydantic.

Errors name the file and the line of the offending key, so `tunewise run` can print one line.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar

import jinja2
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from tunewise.arms import ARM_NAMES, AnyArmParams
from tunewise.errors import InputError
from tunewise.metrics import MetricSpec
from tunewise.yaml_lines import LocatedYaml, load_yaml


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
            from tunewise.data import compile_template

            try:
                compile_template(v)
            except jinja2.TemplateSyntaxError as e:
                raise ValueError(f"invalid Jinja2 template: {e.message}") from None
        return v

    @property
    def input_fields(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


def _uri_shorthand(v: Any) -> Any:
    """`model: openai:gpt-4o-mini` for `model: {uri: openai:gpt-4o-mini}` (and so for `embedder:`)."""
    return {"uri": v} if isinstance(v, str) else v


class EndpointSpec(_Strict):
    """A model named `<scheme>:<name>`, and how to reach it when an OpenAI-compatible server serves it.

    `model:` and `knowledge.embedder:` share these fields and their conventions: the API key is read
    from the environment variable `api_key_env`, which may be unset when `base_url` names a server.
    """

    schemes: ClassVar[tuple[str, ...]] = ("openai",)
    uri_forms: ClassVar[str] = "uri must be openai:<model>"

    uri: str
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = Field(8, ge=1, le=1024)
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(6, ge=0, le=20)

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        scheme, sep, rest = v.partition(":")
        if not sep or scheme not in cls.schemes or not rest:
            raise ValueError(f"{cls.uri_forms}, got '{v}'")
        return v

    @property
    def scheme(self) -> str:
        return self.uri.partition(":")[0]

    @property
    def name(self) -> str:
        return self.uri.partition(":")[2]


class ModelSpec(EndpointSpec):
    """Which model answers, how to reach it, and what it costs."""

    schemes = ("openai", "hf", "lab")
    uri_forms = "model uri must be openai:<model>, hf:<id-or-path> or lab:<world>"

    uri: str = Field(description="openai:<model> | hf:<id-or-path> | lab:<world>")
    price_in_per_1m: float = Field(0.0, ge=0, description="US$ per 1M input tokens")
    price_out_per_1m: float = Field(0.0, ge=0, description="US$ per 1M output tokens")
    price_train_per_1m: float = Field(0.0, ge=0, description="US$ per 1M tokens trained by a provider fine-tuning job")
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(256, ge=1)
    batch_size: int = Field(8, ge=1, description="hf/lab: prompts generated together")
    device: str = "cpu"


PACKAGED_EMBEDDER = "st:all-MiniLM-L6-v2"


class EmbedderSpec(EndpointSpec):
    """What embeds chunks and queries: a sentence-transformers model on this machine (the packaged
    all-MiniLM-L6-v2 by default, or `st:<folder>`), or `openai:<model>` from an OpenAI-compatible
    `/v1/embeddings` endpoint. Every field but `uri` applies to `openai:` only."""

    schemes = ("st", "openai")
    uri_forms = f"embedder must be openai:<model> or st:<folder> (default {PACKAGED_EMBEDDER})"

    uri: str = Field(PACKAGED_EMBEDDER, description="st:all-MiniLM-L6-v2 (packaged) | st:<folder> | openai:<model>")
    dimensions: int | None = Field(None, ge=1, description="openai: vector length to ask for (text-embedding-3-*)")
    max_input_tokens: int = Field(8191, ge=16, description="openai: tokens the model reads per text")
    batch_size: int = Field(64, ge=1, le=2048, description="openai: texts per request")

    @model_validator(mode="after")
    def _endpoint_fields_for_openai_only(self) -> EmbedderSpec:
        if self.scheme != "openai":
            misplaced = sorted(self.model_fields_set - {"uri"})
            if misplaced:
                raise ValueError(f"{', '.join(misplaced)}: only for openai:<model> embedders, not {self.uri}")
        return self


class KnowledgeSpec(_Strict):
    """Documents the retrieval arms search: files or folders, and how they are chunked."""

    paths: list[Path] = Field(min_length=1, description="files or folders, relative to the task file")
    chunk_size: int = Field(200, ge=16, le=8192, description="word pieces per chunk (MiniLM reads 256)")
    chunk_overlap: int = Field(32, ge=0, description="word pieces of whole sentences repeated between chunks")
    skip_bad: bool = Field(False, description="skip unreadable documents (listed in the report) instead of failing")
    max_file_mb: float = Field(20, gt=0)
    embedder: EmbedderSpec = Field(default_factory=EmbedderSpec, description="openai:<model> | st:<folder>")

    @field_validator("embedder", mode="before")
    @classmethod
    def _embedder_shorthand(cls, v: Any) -> Any:
        return _uri_shorthand(v)

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
    monthly_queries: int | None = Field(
        None, ge=0, description="expected volume: arms are then ranked by monthly cost, one-off costs included"
    )
    amortize_months: float = Field(
        12, gt=0, description="months over which a one-off (training) cost is spread when comparing monthly costs"
    )


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


class Task(_Strict):
    """A task: examples, a metric, a model, the arms to try and the requirements to meet."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    data: DataSpec
    instructions: str = ""
    metric: MetricSpec
    model: ModelSpec
    knowledge: KnowledgeSpec | None = None
    arms: list[AnyArmParams] = Field(min_length=1)
    requirements: Requirements = Requirements()
    seed: int = 0

    _path: Path | None = PrivateAttr(None)
    _located: LocatedYaml | None = PrivateAttr(None)

    @field_validator("model", mode="before")
    @classmethod
    def _model_shorthand(cls, v: Any) -> Any:
        return _uri_shorthand(v)

    @field_validator("arms", mode="before")
    @classmethod
    def _arm_shorthand(cls, v: Any) -> Any:
        return arm_entries(v)

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
        """An InputError pointing at the task file and, when it was read from one, the line of `loc`."""
        line = self._located.line_of(loc) if self._located else None
        return InputError(message, file=self._path, line=line)

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in the task are resolved against."""
        return self.path.parent if self.path else Path.cwd()

    @property
    def data_path(self) -> Path:
        return (self.base_dir / self.data.path).resolve()

    def fingerprint(self) -> str:
        """sha256 of the validated spec and the data file's bytes: a resumed run must match it."""
        h = hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode())
        try:
            h.update(self.data_path.read_bytes())
        except OSError:
            pass
        return h.hexdigest()


def _pretty_loc(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif p not in ARM_NAMES:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts)


def load_task(path: str | Path) -> Task:
    """Read and validate a task file; raises InputError naming the file and line."""
    path = Path(path)
    located = load_yaml(path)
    if not isinstance(located.data, dict):
        raise InputError("a task file must be a mapping of keys (name, data, metric, model, arms, ...)", file=path, line=1)
    try:
        task = Task.model_validate(located.data, context={"base_dir": path.parent})
    except ValidationError as e:
        # The first error in file order; a missing field (no line of its own) only when nothing else is wrong.
        err = min(
            e.errors(),
            key=lambda er: (er["type"] == "missing", located.line_of(tuple(er["loc"])) or 0),
        )
        loc = tuple(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "duplicate_arm":
            loc = (*loc, err["ctx"]["index"])
        elif err["type"] == "missing":
            msg = f"missing required field '{loc[-1]}'"
            loc = loc[:-1]
        elif err["type"] == "extra_forbidden":
            msg = f"unknown field '{loc[-1]}'"
        elif err["type"] == "union_tag_invalid":
            msg = f"unknown arm '{err['input'].get('arm') if isinstance(err['input'], dict) else err['input']}' (known: {', '.join(ARM_NAMES)})"
        elif loc:
            msg = f"{_pretty_loc(loc)}: {msg}"
        raise InputError(msg, file=path, line=located.line_of(loc)) from None
    task._path = path
    task._located = located
    return task
