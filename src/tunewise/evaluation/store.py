"""The run store: `runs/<run_id>/` with a manifest and append-only per-example results.

Results are one JSON line per answered example, written and flushed as each finishes, so a run killed at any
moment loses at most the line being written. Such a torn last line (no newline after it) is left out when the
results are read, and cut on resume, its bytes kept aside in `results.jsonl.torn`. Anything else that is not
what tunewise wrote (a manifest that does not read, a full line that is not a result) is an InputError naming
the file and line and what to do, raised before anything is changed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tunewise.arms.base import AnswerMeta, Result
from tunewise.arms.registry import arm_class
from tunewise.errors import InputError
from tunewise.evaluation.manifest import ManifestShape
from tunewise.files import write_atomic

RESULTS = "results.jsonl"
MANIFEST = "manifest.json"
TORN = "results.jsonl.torn"
_FIX_MANIFEST = "restore the file from a copy, or start a new run"
_FIX_RESULT = "fix or delete the line (a deleted example is answered again on --resume), or start a new run"


def _problem(e: ValidationError) -> str:
    """A pydantic error's first complaint, short: `field.sub: what is wrong`."""
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", file=path) from None


class RunStore:
    """One run's folder."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.run_id = directory.name
        self._results = None

    @classmethod
    def create(cls, runs_dir: Path, task_name: str, manifest: dict[str, Any]) -> RunStore:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        base = f"{stamp}-{task_name}"
        runs_dir.mkdir(parents=True, exist_ok=True)
        n = 1
        while True:
            run_id = base if n == 1 else f"{base}-{n}"
            try:
                (runs_dir / run_id).mkdir()
                break
            except FileExistsError:
                n += 1
        store = cls(runs_dir / run_id)
        store.write_manifest({"run_id": run_id, **manifest})
        (store.dir / RESULTS).touch()
        return store

    @classmethod
    def open(cls, runs_dir: Path, run_id: str) -> RunStore:
        directory = runs_dir / run_id
        if not (directory / MANIFEST).is_file():
            raise InputError(f"no run '{run_id}' (looked in {runs_dir})")
        return cls(directory)

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest as written, once it is known to hold what its readers rely on (ManifestShape)."""
        path = self.dir / MANIFEST
        try:
            data = json.loads(_read(path).decode("utf-8"))
        except UnicodeDecodeError as e:
            raise InputError(f"not valid UTF-8 (byte {e.start}): {_FIX_MANIFEST}", file=path) from None
        except json.JSONDecodeError as e:
            raise InputError(f"not valid JSON ({e.msg}): {_FIX_MANIFEST}", file=path, line=e.lineno) from None
        except (ValueError, RecursionError):
            raise InputError(f"not valid JSON: {_FIX_MANIFEST}", file=path) from None
        if not isinstance(data, dict):
            raise InputError(f"not a run's manifest (a JSON {type(data).__name__}): {_FIX_MANIFEST}", file=path)
        try:  # text, not halves of surrogate pairs (a `\ud800` escape alone): what it holds is written as UTF-8
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"not a run's manifest (a \\u escape that is half of a surrogate pair): {_FIX_MANIFEST}",
                             file=path) from None
        try:
            ManifestShape.model_validate(data, strict=True)
        except ValidationError as e:
            raise InputError(f"not a run's manifest ({_problem(e)}): {_FIX_MANIFEST}", file=path) from None
        return data

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_atomic(self.dir / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    def update_manifest(self, **changes: Any) -> None:
        self.write_manifest({**self.manifest, **changes})

    def write_json(self, name: str, obj: Any) -> Path:
        path = self.dir / name
        write_atomic(path, json.dumps(obj, indent=2) + "\n")
        return path

    def write_text(self, name: str, text: str) -> Path:
        path = self.dir / name
        write_atomic(path, text)
        return path

    def repair(self) -> int:
        """Cut a torn last line (a kill mid-write) so appends start on a clean line, keeping its bytes at the end
        of `results.jsonl.torn`; returns the bytes cut."""
        path = self.dir / RESULTS
        if not path.exists():
            return 0
        data = _read(path)
        if not data or data.endswith(b"\n"):
            return 0
        keep = data.rfind(b"\n") + 1
        with (self.dir / TORN).open("ab") as aside:
            aside.write(data[keep:] + b"\n")
            aside.flush()
        with path.open("r+b") as f:
            f.truncate(keep)
        return len(data) - keep

    def append(self, result: Result) -> None:
        if self._results is None:
            self._results = (self.dir / RESULTS).open("a", encoding="utf-8")
        self._results.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
        self._results.flush()

    def close(self) -> None:
        if self._results is not None:
            self._results.close()
            self._results = None

    def results(self) -> list[Result]:
        """Every complete line, oldest first (a torn last line is left out; a missing file holds none).

        A full line that is not a result (not UTF-8, not JSON, not the fields of a Result, or a `meta` its arm
        does not read) is an InputError at its line."""
        path = self.dir / RESULTS
        if not path.exists():
            return []
        lines = _read(path).split(b"\n")[:-1]  # what follows the last newline is torn (or nothing)
        metas = self._meta_classes()
        out = []
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                result = Result.from_json(json.loads(raw.decode("utf-8")))
                meta = metas.get(result.arm)
                if meta is not None and result.meta:
                    meta.model_validate(result.meta)
            except UnicodeDecodeError as e:
                raise InputError(f"not valid UTF-8 (byte {e.start}): {_FIX_RESULT}", file=path, line=number) from None
            except json.JSONDecodeError as e:
                raise InputError(f"not valid JSON ({e.msg}): {_FIX_RESULT}", file=path, line=number) from None
            except ValidationError as e:
                raise InputError(f"not a result ({_problem(e)}): {_FIX_RESULT}", file=path, line=number) from None
            except (ValueError, TypeError, RecursionError) as e:
                said = "nested too deeply" if isinstance(e, RecursionError) else str(e)
                raise InputError(f"not a result ({said}): {_FIX_RESULT}", file=path, line=number) from None
            out.append(result)
        return out

    def _meta_classes(self) -> dict[str, type[AnswerMeta]]:
        """What each arm of the run records with an answer (its Meta), by arm name, for the arms whose class loads."""
        manifest = self.manifest
        base = manifest.get("base_dir")
        out: dict[str, type[AnswerMeta]] = {}
        for entry in manifest["arms"]:
            try:
                cls = arm_class(entry["arm"], Path(base) if base else None, verify=bool(entry.get("verify")))
                out[entry.get("name") or entry["arm"]] = cls.Meta
            except ValueError:
                continue  # a user's arm whose module is gone: its results are read without its statistics
        return out

    def latest(self) -> dict[tuple[str, str], Result]:
        """The newest result per (arm, example): a retried error replaces the earlier one."""
        return {(r.arm, r.example_id): r for r in self.results()}


def list_runs(runs_dir: Path) -> list[dict[str, Any]]:
    """Manifests of the runs under `runs_dir`, newest first; a run whose manifest does not read is listed last, by
    its id, with status `damaged manifest` (`tunewise show` says what is wrong with it)."""
    if not runs_dir.is_dir():
        return []
    manifests = []
    for d in runs_dir.iterdir():
        if (d / MANIFEST).is_file():
            try:
                manifests.append(RunStore(d).manifest)
            except InputError:
                manifests.append({"run_id": d.name, "status": "damaged manifest"})
    return sorted(manifests, key=lambda m: m.get("created_at") or "", reverse=True)
