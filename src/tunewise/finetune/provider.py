"""Provider fine-tuning through the OpenAI API: upload train/dev as chat JSONL, create one job, poll it.

A job costs money and time, so the run never starts a second one for the same training: the job's
state (file ids, job id, outcome) is written to a small JSON file in the run folder after each step,
and the job carries the training fingerprint in its metadata, so a crash between the server creating
the job and the state file recording it is caught by looking the job up before creating one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunewise.errors import ModelCallError
from tunewise.finetune.export import Conversation, to_jsonl
from tunewise.files import write_atomic
from tunewise.models.openai_client import OpenAIEndpoint
from tunewise.spec.finetune import ProviderSettings

if TYPE_CHECKING:
    import openai

    from tunewise.spec import ModelSpec

METADATA_KEY = "tunewise_training"
DONE = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class FinishedJob:
    """A succeeded job: the model it made and the tokens it was billed for."""

    job_id: str
    model: str
    trained_tokens: int


class JobState:
    """The job's record in the run folder, rewritten atomically at every step."""

    def __init__(self, path: Path, fingerprint: str):
        self.path = path
        self.data: dict[str, Any] = {"fingerprint": fingerprint}
        if path.is_file():
            saved = json.loads(path.read_text(encoding="utf-8"))
            if saved.get("fingerprint") == fingerprint:
                self.data = saved

    def update(self, **changes: Any) -> None:
        self.data.update(changes)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(self.data, indent=2) + "\n")


async def run_job(
    spec: ModelSpec,
    train: Sequence[Conversation],
    dev: Sequence[Conversation],
    settings: ProviderSettings,
    *,
    state_path: Path,
    fingerprint: str,
    epochs: int | None = None,
    seed: int = 0,
) -> FinishedJob:
    """Fine-tune `spec`'s model on `train` (validated on `dev`) and wait for it, resuming a recorded job."""
    state = JobState(state_path, fingerprint)
    endpoint = OpenAIEndpoint(spec)
    try:
        if "job_id" not in state.data:
            await _upload(endpoint, state, train, dev)
            job = await endpoint.call(lambda c: _find_or_create(c, spec.name, state.data, epochs, seed))
            state.update(job_id=job.id, status=job.status)
        return await _wait(endpoint, state, settings)
    finally:
        await endpoint.aclose()


async def _upload(endpoint: OpenAIEndpoint, state: JobState, train: Sequence[Conversation], dev: Sequence[Conversation]) -> None:
    """Upload what is not uploaded yet; each file id is recorded as soon as the server returns it."""
    for key, convs in (("training_file", train), ("validation_file", dev)):
        if key in state.data or not convs:
            continue
        payload = (f"{key}.jsonl", to_jsonl(convs).encode())
        uploaded = await endpoint.call(lambda c, p=payload: c.files.create(file=p, purpose="fine-tune"))
        state.update(**{key: uploaded.id})


async def _find_or_create(
    client: openai.AsyncOpenAI, model: str, data: dict[str, Any], epochs: int | None, seed: int
) -> Any:
    """The job already made for this training (a crash lost its id), else a new one."""
    tag = data["fingerprint"][:64]
    async for job in client.fine_tuning.jobs.list(metadata={METADATA_KEY: tag}):
        if (job.metadata or {}).get(METADATA_KEY) == tag and job.status not in ("failed", "cancelled"):
            return job
    extra: dict[str, Any] = {}
    if "validation_file" in data:
        extra["validation_file"] = data["validation_file"]
    if epochs is not None:
        extra["method"] = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": epochs}}}
    return await client.fine_tuning.jobs.create(
        model=model, training_file=data["training_file"], metadata={METADATA_KEY: tag}, seed=seed, **extra
    )


async def _wait(endpoint: OpenAIEndpoint, state: JobState, settings: ProviderSettings) -> FinishedJob:
    """Poll until the job ends, waiting longer each time; a failed or cancelled job is an error."""
    wait = settings.poll_s
    job_id = state.data["job_id"]
    while state.data.get("status") not in DONE:
        job = await endpoint.call(lambda c: c.fine_tuning.jobs.retrieve(job_id))
        state.update(status=job.status, fine_tuned_model=job.fine_tuned_model, trained_tokens=job.trained_tokens)
        if job.status == "failed":
            state.update(error=job.error.message if job.error else None)
        if job.status not in DONE:
            await asyncio.sleep(wait)
            wait = min(settings.max_poll_s, wait * 1.5)
    if state.data["status"] != "succeeded":
        said = f": {state.data['error']}" if state.data.get("error") else ""
        raise ModelCallError(f"fine-tuning job {job_id} {state.data['status']}{said} (see {state.path})")
    return FinishedJob(job_id, state.data["fine_tuned_model"], state.data.get("trained_tokens") or 0)
