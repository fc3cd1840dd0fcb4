"""Model backends behind one async protocol, opened from a task's model URI."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tunewise.models.base import ChatRequest, Completion, Model

if TYPE_CHECKING:
    from tunewise.task import ModelSpec

__all__ = ["ChatRequest", "Completion", "Model", "local_source", "open_model"]


def local_source(spec: ModelSpec, base_dir: Path) -> str:
    """Where transformers loads an `hf:` or `lab:` model from: a folder, or a hub id."""
    if spec.scheme == "lab":
        from tunewise.lab import resolve_model

        return str(resolve_model(spec.name, base_dir))
    local = base_dir / spec.name
    return str(local) if local.is_dir() else spec.name


def open_model(spec: ModelSpec, base_dir: Path) -> Model:
    """The backend a URI names: `openai:<model>`, `hf:<id-or-path>` or `lab:<world>`."""
    if spec.scheme == "openai":
        from tunewise.models.openai_backend import OpenAIModel

        return OpenAIModel(spec)
    from tunewise.models.hf_backend import HFModel

    return HFModel(local_source(spec, base_dir), spec)
