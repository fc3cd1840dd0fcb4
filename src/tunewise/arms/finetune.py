"""`finetune` and `finetune_rag`: the task's model fine-tuned on the train split, then asked like `zero_shot`
(or like `rag`, with retrieved passages).

Method `lora` trains a LoRA adapter on an `hf:`/`lab:` model on this machine; `provider` runs a
fine-tuning job for an `openai:` model. Only train examples (plus an optional `extra:` chat JSONL,
e.g. synthetic data, and with `documents: true` the knowledge documents) are trained on; dev decides
when to stop; test answers are never seen. Training happens once per run, off the event loop: the adapter or
the job is kept in the run folder and reused on `--resume`, and an identical training for another arm of the same run (`finetune` and `finetune_rag`) is reused too.

The fine-tuned model's prompt has no demonstrations, so its per-query cost is that of the short
prompt, at the fine-tuned model's prices; training is the arm's one-off `fixed_cost`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from tunewise.arms.base import Arm, ArmExtras, ArmParams, ArmRecord, Result
from tunewise.arms.rag import RagArm, RagParams
from tunewise.arms.zero_shot import ZeroShotArm
from tunewise.calls.caller import Prices
from tunewise.errors import InputError
from tunewise.finetune.export import Conversation, conversations, document_conversations, read_jsonl
from tunewise.finetune.synthetic import load_synthetic, synthetic_fields
from tunewise.spec import LoraSettings, ProviderSettings

if TYPE_CHECKING:
    from tunewise.calls.caller import ModelCaller
    from tunewise.models.base import Model
    from tunewise.spec import ModelSpec, Task

Method = Literal["auto", "lora", "provider"]


class FinetuneParams(ArmParams, LoraSettings, ProviderSettings):
    needs_train = True
    trains = True

    arm: Literal["finetune"] = "finetune"
    method: Method = Field("auto", description="auto: lora for hf:/lab: models, provider for openai: models")
    extra: Path | None = Field(None, description="chat JSONL of more training conversations, relative to the task file")
    documents: bool = Field(
        False, description="also train on the task's knowledge documents (knowledge injection, Ovadia et al. 2023)"
    )
    synthetic: Path | None = Field(
        None, description="a `tunewise synth` set to train on too, relative to the task file (near-copies of dev or "
        "test inputs are dropped)",
    )
    merge: bool = Field(True, description="lora: merge the adapter into the weights for inference")
    hardware_per_hour: float = Field(0.0, ge=0, description="lora: US$ per hour of the machine that trains")
    price_in_per_1m: float | None = Field(None, ge=0, description="the fine-tuned model's; default the task model's")
    price_out_per_1m: float | None = Field(None, ge=0, description="the fine-tuned model's; default the task model's")

    @property
    def needs_knowledge(self) -> bool:  # type: ignore[override]
        return self.documents

    def resolved_method(self, task: Task) -> str:
        if self.method != "auto":
            return self.method
        return "provider" if task.model.scheme == "openai" else "lora"


class FinetuneRagParams(FinetuneParams, RagParams):
    arm: Literal["finetune_rag"] = "finetune_rag"  # type: ignore[assignment]

    @property
    def needs_knowledge(self) -> bool:  # type: ignore[override]
        return True


class TrainingRecord(ArmRecord):
    """How the model was fine-tuned: `lora` (adapter, steps, seconds, best dev loss, reused from an identical
    training) or `provider` (job, model, tokens trained on)."""

    circumstances = frozenset({"fixed_cost", "usage", "reused"})

    method: Literal["lora", "provider"]
    train_examples: int
    adapter: str | None = None
    steps: int | None = None
    seconds: float | None = None
    best_dev_loss: float | None = None
    reused: bool = False
    job_id: str | None = None
    model: str | None = None
    trained_tokens: int | None = None
    synthetic: dict[str, Any] | None = None

    def priced(self, prices: Prices, model: ModelSpec) -> float:
        """A provider job at the model's training price now; LoRA's machine time keeps its cost."""
        if self.method == "provider" and self.trained_tokens is not None:
            return self.trained_tokens * model.price_train_per_1m / 1e6
        return self.fixed_cost


class FinetuneExtras(ArmExtras):
    """What the training was: the arm's one-off cost is in `fixed_cost`."""

    section = "Fine-tuning"
    caption = ("LoRA: steps and wall time on this machine, the best loss on dev (early stopping keeps that adapter); "
               "provider: the job and the tokens it trained on.")

    method: str = Field(title="method")
    train_examples: int = Field(title="train conversations")
    steps: int | None = Field(title="steps")
    seconds: float | None = Field(title="seconds")
    best_dev_loss: float | None = Field(title="best dev loss")
    reused: bool = Field(title="reused")
    trained_tokens: int | None = Field(title="tokens trained")
    job_id: str | None = Field(title="job")
    synthetic: str | None = Field(None, title="synthetic set")
    synthetic_examples: int | None = Field(None, title="synthetic trained on")
    synthetic_dropped: int | None = Field(None, title="dropped as near-copies of dev/test")
    synthetic_generator: str | None = Field(None, title="synthetic generator")
    synthetic_tokens_saved_pct: float | None = Field(None, title="synth tokens saved %")


@dataclass
class Tuned:
    """A fine-tuned model ready to answer, its prices, and what the manifest keeps about its training."""

    model: Model
    prices: Prices
    record: TrainingRecord


class FinetunedArm(Arm):
    """Trains (or reuses) the fine-tuned model in `prepare` and answers through it."""

    Record = TrainingRecord
    params: FinetuneParams
    tuned: Tuned | None = None

    @classmethod
    def check(cls, params: ArmParams, task: Task, index: int) -> None:
        assert isinstance(params, FinetuneParams)
        method, scheme = params.resolved_method(task), task.model.scheme
        if method == "lora" and scheme == "openai":
            raise task.error(f"arm '{params.label}': method lora trains hf: or lab: models; for {task.model.uri} use method provider", "arms", index)
        if method == "provider" and scheme != "openai":
            raise task.error(f"arm '{params.label}': method provider needs an openai: model, not {task.model.uri}", "arms", index)
        for path in (params.extra, params.synthetic):
            if path is not None:
                read_jsonl(task.base_dir / path)  # an unreadable line is an error at its line of that file

    async def prepare(self) -> ArmRecord | None:
        await super().prepare()
        task = self.context.task
        train = conversations(task, self.context.train)
        if self.params.extra is not None:
            train += read_jsonl(task.base_dir / self.params.extra)
        if self.params.documents:
            assert self.context.knowledge is not None, "the experiment builds the index for arms that need one"
            train += document_conversations(self.context.knowledge.chunks())
        synthetic = None
        if self.params.synthetic is not None:
            synthetic = load_synthetic(task.base_dir / self.params.synthetic, self.context.evaluation_inputs())
            train += synthetic.conversations
        dev = conversations(task, self.context.dev)
        if self.params.resolved_method(task) == "lora":
            self.tuned = await asyncio.to_thread(self._lora, train, dev)
        else:
            self.tuned = await self._provider(train, dev)
        if synthetic is not None:
            self.tuned.record.synthetic = synthetic.describe()
        return self.tuned.record

    def model_caller(self, default: ModelCaller) -> ModelCaller:
        assert self.tuned is not None, "prepare() makes the fine-tuned model"
        return default.with_model(self.tuned.model, self.tuned.prices)

    async def aclose(self) -> None:
        if self.tuned is not None:
            await self.tuned.model.aclose()

    @classmethod
    def summarize(cls, params: ArmParams, results: Sequence[Result], record: ArmRecord | None,
                  peers: Mapping[str, Sequence[Result]]) -> ArmExtras | None:
        if not isinstance(record, TrainingRecord):
            return None
        return FinetuneExtras(method=record.method, train_examples=record.train_examples, steps=record.steps,
                              seconds=record.seconds, best_dev_loss=record.best_dev_loss, reused=record.reused,
                              trained_tokens=record.trained_tokens, job_id=record.job_id,
                              **synthetic_fields(record.synthetic))

    @property
    def seed(self) -> int:
        return self.context.task.seed if self.params.seed is None else self.params.seed

    @property
    def run_dir(self) -> Path:
        assert self.context.run_dir is not None, "fine-tuning keeps what it trains in the run folder"
        return self.context.run_dir

    @classmethod
    def prices(cls, params: ArmParams, model: ModelSpec) -> Prices:
        """The fine-tuned model's prices: the arm's own, else the task model's."""
        assert isinstance(params, FinetuneParams)
        return Prices(
            model.price_in_per_1m if params.price_in_per_1m is None else params.price_in_per_1m,
            model.price_out_per_1m if params.price_out_per_1m is None else params.price_out_per_1m,
        )

    def _prices(self) -> Prices:
        return self.prices(self.params, self.context.task.model)

    def _lora(self, train: list[Conversation], dev: list[Conversation]) -> Tuned:
        """Train (or find) the adapter and load the tuned model: blocking, so run in a worker thread."""
        from tunewise.finetune.lora import TrainedAdapter, fingerprint, train_adapter
        from tunewise.models.hf_backend import HFModel, hf_model_id

        task = self.context.task
        source = self.context.model_source
        assert source is not None, "the experiment says where an hf:/lab: model loads from"
        settings = LoraSettings.model_validate(self.params.model_dump(include=set(LoraSettings.model_fields)))
        key = fingerprint(hf_model_id(source), settings, self.seed, train, dev)
        adapters = self.run_dir / "adapters"
        found = [a for d in sorted(adapters.glob("[!.]*")) if (a := TrainedAdapter.load(d)) and a.fingerprint == key]
        if not found and self.context.serving:
            raise InputError(f"arm '{self.name}': the adapter this run trained is not in {adapters} any more, so"
                             " what was measured cannot be served; run the task again")
        adapter = found[0] if found else train_adapter(
            source, train, dev, settings, seed=self.seed, out=adapters / self.name, fingerprint=key,
            progress=self._progress,
        )
        record = TrainingRecord(
            method="lora", adapter=str(adapter.path.relative_to(self.run_dir)), steps=adapter.steps,
            seconds=round(adapter.seconds, 3), train_examples=adapter.train_examples,
            best_dev_loss=adapter.best_dev_loss, reused=bool(found),
            fixed_cost=adapter.seconds / 3600 * self.params.hardware_per_hour,
        )
        model = HFModel(source, task.model, adapter=adapter.path, merge=self.params.merge)
        return Tuned(model, self._prices(), record)

    def _progress(self, step: int, total: int, loss: float) -> None:
        if self.context.on_training is not None:
            self.context.on_training(self.name, step, total, loss)

    async def _provider(self, train: list[Conversation], dev: list[Conversation]) -> Tuned:
        from tunewise.finetune.provider import run_job
        from tunewise.models.openai_backend import OpenAIModel

        spec = self.context.task.model
        epochs = round(self.params.epochs) if "epochs" in self.params.model_fields_set else None
        payload = json.dumps([spec.uri, epochs, self.seed, train, dev], sort_keys=True)
        key = hashlib.sha256(payload.encode()).hexdigest()
        state = self.run_dir / "jobs" / f"{key[:16]}.json"
        if self.context.serving and not state.is_file():
            raise InputError(f"arm '{self.name}': the fine-tuning job this run made is not recorded in {state} any"
                             " more, so what was measured cannot be served; run the task again")
        job = await run_job(
            spec, train, dev, self.params, state_path=state,
            fingerprint=key, epochs=epochs, seed=self.seed,
        )
        record = TrainingRecord(
            method="provider", job_id=job.job_id, model=job.model, trained_tokens=job.trained_tokens,
            train_examples=len(train), fixed_cost=job.trained_tokens * spec.price_train_per_1m / 1e6,
        )
        tuned_spec = spec.model_copy(update={"uri": f"openai:{job.model}"})
        return Tuned(OpenAIModel(tuned_spec), self._prices(), record)


class FinetuneArm(FinetunedArm, ZeroShotArm):
    """The fine-tuned model, asked with the zero-shot prompt it was trained on."""

    Params = FinetuneParams


class FinetuneRagArm(FinetunedArm, RagArm):
    """The fine-tuned model, asked with retrieved passages (published studies find the gains add up)."""

    Params = FinetuneRagParams
    params: FinetuneRagParams
