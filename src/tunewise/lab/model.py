"""Trains the lab's tiny GPT-2-style model on the world's pretraining stream and caches it as an HF model dir."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunewise.lab.cache import lab_dir
from tunewise.lab.corpus import WRAP_WORDS, Corpus
from tunewise.lab.curriculum import Curriculum, copy_probe, exact_match
from tunewise.lab.encoding import encode, weighted_loss
from tunewise.lab.recipe import FULL, QUICK, Recipe
from tunewise.lab.tokenizer import train_tokenizer, render
from tunewise.lab.world import GENERATOR_VERSION, World, generate_world, numbers
from tunewise.lab.worlddir import content_hash, read_world_meta

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerFast

BUILDER_VERSION = "5"
# The full model of the default world, built by this builder and shipped as package data (tunewise lab model
# --verify rebuilds it and compares): a first demo copies it instead of training for minutes.
PREBUILT = Path(__file__).with_name("prebuilt")
WEIGHTS = "model.safetensors"
THREADS = 2
VOCABULARY_REPEATS = 40
Progress = Callable[[int, int, float], None]


def model_cache_dir(world_dir: Path, quick: bool) -> Path:
    """Cache location keyed by what the model is trained from: the world's seed and generator version, the
    builder version and the recipe (not the task files, which a model never reads)."""
    recipe = QUICK if quick else FULL
    meta = read_world_meta(world_dir)
    key = json.dumps([meta.get("seed"), meta.get("generator_version"), BUILDER_VERSION, asdict(recipe)], sort_keys=True)
    return lab_dir() / hashlib.sha256(key.encode()).hexdigest()[:20] / "model"


def world_truth(world_dir: Path) -> World:
    """Regenerates the world behind a world dir from its seed, refusing a dir the generator would not produce."""
    meta = read_world_meta(world_dir)
    if meta.get("generator_version") != GENERATOR_VERSION or meta.get("content_hash") != content_hash(world_dir):
        raise ValueError(
            f"{world_dir} does not match lab generator version {GENERATOR_VERSION} for seed {meta.get('seed')} "
            "(edited or from another version); regenerate it with build_world"
        )
    return generate_world(int(meta["seed"]))


def batches(curriculum: Curriculum, tokenizer: PreTrainedTokenizerFast, recipe: Recipe) -> Iterator[
    tuple[torch.Tensor, torch.Tensor, torch.Tensor]
]:
    """Endless encoded batches of the curriculum's current lesson.

    Items are drawn 8 batches at a time and grouped by length to spare padding; when the lesson changes, the
    rest of the pool is dropped, so every batch is of the lesson of its step.
    """
    import random

    rng = random.Random(0)
    step = 0
    while True:
        make = curriculum.lesson(step)
        pool = sorted((make() for _ in range(8 * recipe.batch)), key=lambda c: len(render(c)))
        groups = [pool[i : i + recipe.batch] for i in range(0, len(pool), recipe.batch)]
        rng.shuffle(groups)
        for group in groups:
            if curriculum.lesson(step) != make:
                break
            yield encode(tokenizer, group, recipe.max_len)
            step += 1


def tokenizer_texts(sample: Corpus, items: int) -> list[str]:
    """What the tokenizer is fitted on: a sample of the stream, plus every year and price the world can state
    and the format words in each case, often enough that each becomes one token (a year split in two is
    easily copied half right, and a word spelled letter by letter hardly at all)."""
    words = [case(w) for w in WRAP_WORDS for case in (str.lower, str.upper, str.capitalize)]
    vocabulary = " " + " ".join(numbers() + words) + " " + " ".join(f"({w})" for w in words)
    return [render(sample.item()) for _ in range(items)] + [vocabulary] * VOCABULARY_REPEATS


def train(world: World, recipe: Recipe, out: Path, progress: Progress | None) -> dict[str, Any]:
    """Fits tokenizer and model on the world's stream, saves both to `out`, returns what the training did."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)  # a fixed count: the same bits on any machine
    try:
        return fit(world, recipe, out, progress)
    finally:
        torch.set_num_threads(threads)


def fit(world: World, recipe: Recipe, out: Path, progress: Progress | None) -> dict[str, Any]:
    """The training run proper (see train)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the caller draws the training's progress; a bar per save is noise
    torch.manual_seed(world.seed)
    sample = Corpus(world, seed=world.seed + 1)
    tokenizer = train_tokenizer(tokenizer_texts(sample, recipe.tokenizer_items), recipe.vocab)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=recipe.max_len,
        n_embd=recipe.width,
        n_layer=recipe.layers,
        n_head=recipe.heads,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = GPT2LMHeadModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=(0.9, 0.98), weight_decay=0.01)
    curriculum = Curriculum(Corpus(world, seed=world.seed), recipe)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, curriculum.lr_factor)
    probe = copy_probe(Corpus(world, seed=world.seed + 2))
    model.train()
    loss_value = float("nan")
    stream = batches(curriculum, tokenizer, recipe)
    step = 0
    while step < curriculum.total:
        input_ids, attention, weight = next(stream)
        loss = weighted_loss(model(input_ids=input_ids, attention_mask=attention).logits, input_ids, weight)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        if curriculum.wants_probe(step):
            curriculum.probed(step, exact_match(model, tokenizer, probe))
        scheduler.step()
        loss_value = loss.item()
        if progress is not None:
            progress(step, curriculum.total, loss_value)
    model.eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {
        "steps": step, "copy_phase_steps": curriculum.copy_done, "copy_probe": curriculum.probes,
        "final_copy_probe": exact_match(model, tokenizer, probe), "final_loss": loss_value,
    }


def build_model(world_dir: Path, *, quick: bool = False, progress: Progress | None = None) -> Path:
    """The cached model dir for this world, first copied from the package's prebuilt model when it was built
    for this world's seed and generator with this builder and recipe, else trained (atomic: a half-built dir
    is never used)."""
    world_dir = Path(world_dir).resolve()
    read_world_meta(world_dir)
    target = model_cache_dir(world_dir, quick)
    if (target / "lab.json").is_file():
        return target
    world = world_truth(world_dir)
    recipe = QUICK if quick else FULL
    prebuilt = PREBUILT if is_build_of(PREBUILT, world.seed, recipe, quick) else None
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="building-", dir=target.parent))
    try:
        started = time.perf_counter()
        if prebuilt is not None:
            for f in model_files(prebuilt):
                shutil.copyfile(f, staging / f.name)
        else:
            build_into(staging, world, recipe, quick, progress)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "lab.json").is_file():
                raise
        # How this build went goes beside the model folder, not in it (it is not part of what the model is).
        build = {"seconds": round(time.perf_counter() - started, 1), "world": str(world_dir),
                 "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 **({"copied_from": str(prebuilt)} if prebuilt is not None else {"threads": THREADS})}
        (target.parent / "build.json").write_text(json.dumps(build, indent=2) + "\n", encoding="utf-8")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def build_into(out: Path, world: World, recipe: Recipe, quick: bool, progress: Progress | None) -> None:
    """Trains the model into `out` and writes lab.json beside its weights: what the model is and how it was
    made, the same for every build of it (it is part of the model's content hash)."""
    stats = train(world, recipe, out, progress)
    info = {"builder_version": BUILDER_VERSION, "generator_version": GENERATOR_VERSION, "seed": world.seed,
            "quick": quick, "recipe": asdict(recipe), **stats}
    (out / "lab.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def model_files(model_dir: Path) -> list[Path]:
    """The files of a model folder, in name order."""
    return sorted(p for p in model_dir.iterdir() if p.is_file())


def lab_info(model_dir: Path) -> dict[str, Any]:
    """A lab model's lab.json; FileNotFoundError, saying so, for a folder that is not a lab model."""
    path = model_dir / "lab.json"
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir} is not a lab model (no lab.json)")
    return json.loads(path.read_text(encoding="utf-8"))


def is_build_of(model_dir: Path, seed: int, recipe: Recipe, quick: bool) -> bool:
    """Whether `model_dir` holds what this builder makes for `seed`'s world with `recipe`."""
    try:
        info = lab_info(model_dir)
    except FileNotFoundError:
        return False
    made = (info.get("builder_version"), info.get("generator_version"), info.get("seed"), info.get("quick"),
            info.get("recipe"))
    return made == (BUILDER_VERSION, GENERATOR_VERSION, seed, quick, asdict(recipe))


def weights_sha256(model_dir: Path) -> str:
    """sha256 of a model folder's weights file."""
    return hashlib.sha256((model_dir / WEIGHTS).read_bytes()).hexdigest()


@dataclass(frozen=True)
class Verification:
    """A lab model against a rebuild from its recipe: the weights' sha256 of each, and the files that differ."""

    model: Path
    expected: str
    rebuilt: str
    differing: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Whether the rebuild is the model, file for file."""
        return not self.differing


def verify_model(model_dir: Path, progress: Progress | None = None) -> Verification:
    """Rebuilds a lab model from the seed, builder and recipe its lab.json names,
    in a temporary folder, and compares the two file by file; ValueError when this builder cannot make it."""
    model_dir = Path(model_dir)
    info = lab_info(model_dir)
    made = (info.get("builder_version"), info.get("generator_version"))
    if made != (BUILDER_VERSION, GENERATOR_VERSION):
        raise ValueError(
            f"{model_dir} was built by lab builder {made[0]} for world generator {made[1]}; this tunewise builds "
            f"with builder {BUILDER_VERSION} for generator {GENERATOR_VERSION}, so it cannot rebuild it"
        )
    with tempfile.TemporaryDirectory(prefix="verify-") as tmp:
        out = Path(tmp)
        build_into(out, generate_world(int(info["seed"])), Recipe(**info["recipe"]), bool(info["quick"]), progress)
        names = sorted({f.name for f in model_files(model_dir)} | {f.name for f in model_files(out)})
        differing = tuple(n for n in names if not same_file(model_dir / n, out / n))
        rebuilt = weights_sha256(out) if (out / WEIGHTS).is_file() else ""
    expected = weights_sha256(model_dir) if (model_dir / WEIGHTS).is_file() else ""
    return Verification(model_dir, expected, rebuilt, differing)


def same_file(a: Path, b: Path) -> bool:
    """Whether two files both exist and hold the same bytes."""
    return a.is_file() and b.is_file() and a.read_bytes() == b.read_bytes()
