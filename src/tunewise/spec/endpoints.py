"""Where a model or an embedder is: a URI `<scheme>:<name>`, and how to reach an OpenAI-compatible server."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def uri_shorthand(v: Any) -> Any:
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
    cache_scope: Literal["endpoint", "model"] = Field(
        "endpoint", description="endpoint: cached answers are the server's (base_url) and model's; model: shared by "
        "every server under the model's name",
    )


PACKAGED_EMBEDDER = "st:all-MiniLM-L6-v2"


class EmbedderSpec(EndpointSpec):
    """What embeds chunks and queries: a sentence-transformers model on this machine (the packaged
    all-MiniLM-L6-v2 by default, or `st:<folder>`), a static model (`static:all-MiniLM-L6-v2`, distilled here
    from the packaged one: ~100x faster for some recall, or `static:<folder>` of a model2vec model), or
    `openai:<model>` from an OpenAI-compatible `/v1/embeddings` endpoint. Every field but `uri` applies to
    `openai:` only."""

    schemes = ("st", "static", "openai")
    uri_forms = (f"embedder must be openai:<model> or st:<folder> (default {PACKAGED_EMBEDDER}), or a fast static "
                 "model: static:all-MiniLM-L6-v2 or static:<folder>")

    uri: str = Field(PACKAGED_EMBEDDER, description="st:all-MiniLM-L6-v2 (packaged) | st:<folder> | "
                     "static:all-MiniLM-L6-v2 (distilled from the packaged one) | static:<folder> | openai:<model>")
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
