"""The model a task names, opened: `openai:<model>`, `hf:<id-or-path>`, or `lab:<world>` (built on first use)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunewise.models.base import Model
    from tunewise.spec import ModelSpec


def local_source(spec: ModelSpec, base_dir: Path) -> str | None:
    """Where transformers loads an `hf:` or `lab:` model from (a folder, or a hub id); None for `openai:`."""
    if spec.scheme == "openai":
        return None
    if spec.scheme == "lab":
        from tunewise.lab import resolve_model

        return str(resolve_model(spec.name, base_dir))
    local = base_dir / spec.name
    return str(local) if local.is_dir() else spec.name


def open_model(spec: ModelSpec, source: str | None) -> Model:
    """The backend for `spec`; `source` is what `local_source` said (a local model loads from there)."""
    if source is None:
        from tunewise.models.openai_backend import OpenAIModel

        return OpenAIModel(spec)
    from tunewise.models.hf_backend import HFModel

    return HFModel(source, spec)
