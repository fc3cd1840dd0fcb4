"""Settings of a fine-tuning run: LoRA on this machine, or polling a provider's job."""

from __future__ import annotations

from pydantic import BaseModel, Field


class LoraSettings(BaseModel):
    """What shapes a LoRA training run; every field has a default that works on small models."""

    r: int = Field(16, ge=1, le=1024, description="LoRA rank")
    alpha: float = Field(32, gt=0, description="LoRA scaling numerator (scale = alpha / r)")
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | None = Field(None, description="default: GPT-2 c_attn/c_proj/c_fc or q/k/v/o_proj")
    epochs: float = Field(3, gt=0)
    max_steps: int | None = Field(None, ge=1, description="stop after this many steps (overrides epochs)")
    lr: float = Field(2e-4, gt=0)
    batch_size: int = Field(8, ge=1, le=1024)
    patience: int = Field(2, ge=1, description="evaluations on dev without improvement before stopping")
    seed: int | None = Field(None, description="default: the task's seed")


class ProviderSettings(BaseModel):
    """How often to ask the provider how the job is going."""

    poll_s: float = Field(5.0, gt=0, description="provider: first wait between status checks")
    max_poll_s: float = Field(60.0, gt=0, description="provider: the wait grows by half each time up to this")
