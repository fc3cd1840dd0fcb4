"""Writes a world to disk (docs, tasks, world.json) and fingerprints its content."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from tunewise.lab.documents import world_documents
from tunewise.lab.tasks import SPECS, build_tasks, task_yaml
from tunewise.lab.world import COUNTS, GENERATOR_VERSION, generate_world

WORLD_FILE = "world.json"


def content_hash(world_dir: Path) -> str:
    """sha256 over every file's relative path and bytes except world.json, so any edit changes it."""
    digest = hashlib.sha256()
    for path in sorted(p for p in world_dir.rglob("*") if p.is_file() and p.name != WORLD_FILE):
        digest.update(path.relative_to(world_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def write_world(seed: int, out: Path) -> Path:
    """Generates the world for `seed` into `out` (docs/, tasks/<task>/, world.json); byte-identical per seed.

    An existing lab world in `out` is replaced; any other non-empty directory is refused.
    """
    if (out / WORLD_FILE).is_file():
        for part in ("docs", "tasks"):
            shutil.rmtree(out / part, ignore_errors=True)
    elif out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists, is not empty and is not a lab world; choose another directory")
    world = generate_world(seed)
    docs = world_documents(world)
    tasks = build_tasks(world)
    (out / "docs").mkdir(parents=True, exist_ok=True)
    for doc in docs:
        (out / "docs" / doc.filename).write_text(doc.render(), encoding="utf-8", newline="\n")
    for name, examples in tasks.items():
        task_dir = out / "tasks" / name
        task_dir.mkdir(parents=True, exist_ok=True)
        (task_dir / "task.yaml").write_text(task_yaml(SPECS[name]), encoding="utf-8", newline="\n")
        lines = "".join(ex.to_json() + "\n" for ex in examples)
        (task_dir / "data.jsonl").write_text(lines, encoding="utf-8", newline="\n")
    meta = {
        "seed": seed,
        "generator_version": GENERATOR_VERSION,
        "entities": COUNTS,
        "known_facts": sum(f.known for f in world.facts()),
        "unknown_facts": sum(not f.known for f in world.facts()),
        "documents": len(docs),
        "content_hash": content_hash(out),
    }
    (out / WORLD_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8", newline="\n")
    return out


def read_world_meta(world_dir: Path) -> dict:
    """world.json of a world dir; FileNotFoundError with a clear message when it is not a lab world."""
    path = world_dir / WORLD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{world_dir} is not a lab world (no {WORLD_FILE}); create one with build_world")
    return json.loads(path.read_text(encoding="utf-8"))
