"""The run store: `runs/<run_id>/` with a manifest and append-only per-example results.

Results are one JSON line per answered example, written and flushed as each finishes, so a run
killed at any moment loses at most the line being written; a torn last line is dropped on resume.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tunewise.arms.base import Result
from tunewise.errors import InputError
from tunewise.files import write_atomic

RESULTS = "results.jsonl"
MANIFEST = "manifest.json"


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
        return json.loads((self.dir / MANIFEST).read_text(encoding="utf-8"))

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
        """Cut a torn last line (a kill mid-write) so appends start on a clean line; returns bytes cut."""
        path = self.dir / RESULTS
        data = path.read_bytes()
        if not data or data.endswith(b"\n"):
            return 0
        keep = data.rfind(b"\n") + 1
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
        """Every complete line, oldest first (a torn last line is skipped)."""
        out = []
        with (self.dir / RESULTS).open(encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    break
                out.append(Result.from_json(json.loads(line)))
        return out

    def latest(self) -> dict[tuple[str, str], Result]:
        """The newest result per (arm, example): a retried error replaces the earlier one."""
        return {(r.arm, r.example_id): r for r in self.results()}


def list_runs(runs_dir: Path) -> list[dict[str, Any]]:
    """Manifests of the runs under `runs_dir`, newest first."""
    if not runs_dir.is_dir():
        return []
    manifests = []
    for d in runs_dir.iterdir():
        if (d / MANIFEST).is_file():
            try:
                manifests.append(json.loads((d / MANIFEST).read_text(encoding="utf-8")))
            except json.JSONDecodeError:
                continue
    return sorted(manifests, key=lambda m: m.get("created_at", ""), reverse=True)
