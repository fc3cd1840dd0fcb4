"""The lab: an offline world with known truth and a tiny model built from it, tunewise's embedded default.

The world says which rung each task needs (facts -> retrieval, format -> few-shot, skill -> fine-tuning,
mixed -> some of each); the model is pretrained on the world's known half only. Heavy imports stay inside
the functions, so importing tunewise.lab is cheap.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunewise.lab.model import Verification

__all__ = ["build_model", "build_world", "default_world_dir", "find_world", "resolve_model", "verify_model"]

DEFAULT_SEED = 0


def build_world(seed: int, out: Path) -> Path:
    """Writes the world for `seed` to `out` (docs/, tasks/, world.json) and returns it; same seed, same bytes."""
    from tunewise.lab.worlddir import write_world

    return write_world(seed, Path(out))


def build_model(
    world: Path, *, quick: bool = False, progress: Callable[[int, int, float], None] | None = None
) -> Path:
    """The HF model dir of `world`'s lab model, trained and cached on first use; progress(step, total, loss)."""
    from tunewise.lab.model import build_model as build

    return build(Path(world), quick=quick, progress=progress)


def verify_model(
    model: Path | None = None, *, progress: Callable[[int, int, float], None] | None = None
) -> Verification:
    """Rebuilds a lab model (by default the one shipped in the package) from its recipe and compares the two
    file by file; ValueError when this builder cannot make it, FileNotFoundError when it is not a lab model."""
    from tunewise.lab.model import PREBUILT
    from tunewise.lab.model import verify_model as verify

    return verify(PREBUILT if model is None else Path(model), progress)


def default_world_dir() -> Path:
    """The default world (seed 0) under the cache root, generated on first use."""
    from tunewise.lab.cache import lab_dir
    from tunewise.lab.world import GENERATOR_VERSION
    from tunewise.lab.worlddir import WORLD_FILE, write_world

    target = lab_dir() / f"world-seed{DEFAULT_SEED}-v{GENERATOR_VERSION}"
    if not (target / WORLD_FILE).is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="world-", dir=target.parent))
        try:
            write_world(DEFAULT_SEED, staging)
            try:
                staging.rename(target)
            except OSError:
                if not (target / WORLD_FILE).is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def find_world(spec: str, base_dir: Path) -> Path | None:
    """The world dir `lab:<spec>` names (absolute or relative to base_dir), None for the default world ('default'
    or ''); FileNotFoundError, saying how to make one, when there is no lab world there."""
    if spec.strip() in ("", "default"):
        return None
    from tunewise.lab.worlddir import WORLD_FILE

    path = Path(spec).expanduser()
    world = (path if path.is_absolute() else Path(base_dir) / path).resolve()
    if not (world / WORLD_FILE).is_file():
        what = "no such folder" if not world.exists() else f"not a lab world (no {WORLD_FILE})"
        raise FileNotFoundError(f"{world}: {what}; make one with `tunewise lab world --out {spec}`")
    return world


def resolve_model(spec: str, base_dir: Path) -> Path:
    """Model dir for the URI `lab:<spec>`: a world dir (absolute or relative to base_dir), or 'default'/''."""
    return build_model(find_world(spec, base_dir) or default_world_dir())
