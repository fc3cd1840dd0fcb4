"""A user's own code, named in a task as `python:module:name` (metrics, checks, arms).

The module is looked for next to the task file first, loaded under a name unique to its path (two tasks
may each have their own `scorer.py`), then among the installed modules.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunewise.spec.metric import python_ref


def _import_module(module_name: str, base_dir: Path | None) -> Any:
    """A module next to the task file wins, loaded under a name unique to its path (two tasks may
    each have their own `scorer.py`); otherwise an installed module."""
    local = base_dir / f"{module_name.replace('.', '/')}.py" if base_dir is not None else None
    if local is None or not local.is_file():
        return importlib.import_module(module_name)
    unique = f"_tunewise_user_{hashlib.sha256(str(local.resolve()).encode()).hexdigest()[:12]}_{module_name}"
    if unique in sys.modules:
        return sys.modules[unique]
    spec = importlib.util.spec_from_file_location(unique, local)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[unique]
        raise
    return module


def import_object(ref: str, base_dir: Path | None, *, role: str = "metric", kind: str = "function") -> Any:
    """What `python:module:name` names: the module next to the task file (`base_dir`) first, else an
    installed one. ValueError with a one-line reason when it cannot be had (`role` says what the module is
    for, `kind` what the name should be, in that reason)."""
    try:
        module_name, name = python_ref(ref)
    except ValueError:
        raise ValueError(f"a custom {role} is python:module:{kind}, got '{ref}'") from None
    try:
        module = _import_module(module_name, base_dir)
    except Exception as e:  # noqa: BLE001 - any failure to import is the user's to see
        raise ValueError(f"cannot import {role} module '{module_name}': {e}") from None
    found = getattr(module, name, None)
    if found is None:
        raise ValueError(f"module '{module_name}' has no {kind} '{name}'")
    return found


def import_function(ref: str, base_dir: Path | None, *, role: str = "metric") -> Callable[..., Any]:
    """The function `python:module:function` names (see import_object)."""
    func = import_object(ref, base_dir, role=role)
    if not callable(func):
        raise ValueError(f"'{ref}' is not a function")
    return func
