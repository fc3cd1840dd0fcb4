"""The model a task names, found and opened: `openai:<model>`, `hf:<id-or-path>`, `lab:<world>` (built on first use),
or `lab:teacher` (the lab's scripted generator of synthetic examples, for `tunewise synth`).

`check_model` is the cheap half, run before anything is started: it says at the task's `model:` line when a lab
world or an `hf:` folder is not there, and fails in a second, not minutes, when an `hf:` hub model is neither in
the local cache nor reachable. `local_source` and `open_model` do the work (build a lab model, load weights).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from tunewise.errors import ModelCallError

if TYPE_CHECKING:
    from tunewise.models.base import Model
    from tunewise.spec import ModelSpec, Task

HUB_TIMEOUT_S = 3.0  # how long the hub may take to answer whether it is there at all
# A hub id as the hub spells them: `name` or `owner/name`, letters, digits, `-`, `_` and `.`, not starting with
# `-` or `.`. Anything else in `hf:` can only be a folder.
_HUB_ID = re.compile(r"(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*")


def _looks_like_path(name: str, base_dir: Path) -> bool:
    """Whether `hf:<name>` names a folder rather than a hub model: it starts like a path (`.`, `/`, `~`), is
    not a hub id's shape, or its first part is a folder next to the task (`models/mine` with `models/` there)."""
    if name.startswith((".", "/", "~", "\\")) or not _HUB_ID.fullmatch(name) or ".." in name or "--" in name:
        return True
    owner, sep, _ = name.partition("/")
    return bool(sep) and (base_dir / owner).is_dir()


def _hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT.rstrip("/")


def _in_hub_cache(repo_id: str) -> bool:
    """Whether the local Hugging Face cache holds the model's config (then it loads without the network)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def _check_hub(task: Task) -> None:
    """An `hf:` hub model not in the local cache: the hub must answer, and know it (one quick request, no retries)."""
    import httpx
    from huggingface_hub import constants, get_token

    spec = task.model
    endpoint = _hub_endpoint()
    missing = f"{spec.uri} is not in the local Hugging Face cache"
    if constants.HF_HUB_OFFLINE:
        raise ModelCallError(f"{missing}, and HF_HUB_OFFLINE is set: download it while online, or give its folder")
    token = get_token()
    try:
        reply = httpx.get(f"{endpoint}/api/models/{spec.name}", timeout=HUB_TIMEOUT_S, follow_redirects=True,
                          headers={"Authorization": f"Bearer {token}"} if token else None)
    except httpx.HTTPError as e:
        said = str(e) or type(e).__name__
        raise ModelCallError(
            f"{missing}, and the hub {endpoint} cannot be reached ({said}): connect, or download it where you can "
            "and give its folder"
        ) from None
    if reply.status_code in (401, 404):
        raise task.error(
            f"no model '{spec.name}' on the hub {endpoint} (or it is private or gated: log in with `hf auth login` "
            "or set HF_TOKEN)", "model", "uri",
        )
    if reply.status_code >= 400:
        raise ModelCallError(f"{missing}, and the hub {endpoint} answered HTTP {reply.status_code}")


def check_model(task: Task) -> None:
    """Whether the task's model is there to be opened, found before a run starts: a lab world, an `hf:` folder,
    an `hf:` hub model in the local cache or on a hub that answers. Nothing is loaded or built.

    InputError at the `model:` line when it is not there; ModelCallError when the hub cannot be reached (the task
    is right, the network is not)."""
    spec = task.model
    if spec.scheme == "lab":
        from tunewise.lab import find_world

        try:
            find_world(spec.name, task.base_dir)
        except FileNotFoundError as e:
            raise task.error(f"model {spec.uri}: {e}", "model", "uri") from None
    elif spec.scheme == "hf":
        folder = (task.base_dir / Path(spec.name).expanduser()).resolve()
        if folder.is_dir():
            return
        if _looks_like_path(spec.name, task.base_dir):
            what = "is not a folder" if folder.exists() else "does not exist"
            raise task.error(f"no such model folder: {folder} {what}", "model", "uri")
        if not _in_hub_cache(spec.name):
            _check_hub(task)


def _is_teacher(spec: ModelSpec) -> bool:
    from tunewise.lab.teacher import NAME

    return spec.scheme == "lab" and spec.name == NAME


def local_source(spec: ModelSpec, base_dir: Path) -> str | None:
    """Where transformers loads an `hf:` or `lab:` model from (a folder, or a hub id); None for `openai:` and
    the lab's teacher."""
    if spec.scheme == "openai" or _is_teacher(spec):
        return None
    if spec.scheme == "lab":
        from tunewise.lab import resolve_model

        return str(resolve_model(spec.name, base_dir))
    local = base_dir / Path(spec.name).expanduser()
    return str(local) if local.is_dir() else spec.name


def open_model(spec: ModelSpec, source: str | None) -> Model:
    """The backend for `spec`; `source` is what `local_source` said (a local model loads from there).

    A model that fails to load for a reason that is not the task's (out of memory, a device error) is a
    ModelCallError: bad input is InputError, raised by the backend."""
    if _is_teacher(spec):
        from tunewise.lab.teacher import Teacher

        return Teacher()
    if source is None:
        from tunewise.models.openai_backend import OpenAIModel

        return OpenAIModel(spec)
    from tunewise.models.hf_backend import HFModel

    try:
        return HFModel(source, spec)
    except (RuntimeError, MemoryError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelCallError(f"cannot load {spec.uri}: {first}") from None
