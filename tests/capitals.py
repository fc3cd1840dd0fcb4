"""A task over the scripted server's countries, for tests and benchmarks."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from openai_server import CAPITALS


def write_capitals_task(
    directory: Path, base_url: str, *, arms: list | None = None, model: dict | None = None, **extra: object
) -> Path:
    """A task over the scripted server's countries: 80 examples, explicit split (48 train, 32 test)."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "data.jsonl").open("w") as f:
        for i, (country, capital) in enumerate(CAPITALS.items()):
            split = "test" if i % 5 in (0, 3) else "train"
            f.write(json.dumps({"id": f"c{i}", "question": f"What is the capital of {country}?", "answer": capital, "split": split}) + "\n")
    task = {
        "name": "capitals",
        "data": {"path": "data.jsonl", "input": "question", "output": "answer", "id": "id", "split_field": "split"},
        "instructions": "Answer with the name of the capital only.",
        "metric": "exact",
        "model": {
            "uri": "openai:scripted",
            "base_url": base_url,
            "max_concurrency": 4,
            "price_in_per_1m": 0.5,
            "price_out_per_1m": 1.5,
            "max_retries": 8,
            **(model or {}),
        },
        "arms": arms or ["zero_shot", {"few_shot": {"k": 2}}],
        "requirements": {"min_score": 0.7},
        **extra,
    }
    path = directory / "task.yaml"
    path.write_text(yaml.safe_dump(task, sort_keys=False))
    return path
