"""BM25 retrieval with two interchangeable backends.

* ``bm25s`` (default): the index of `bm25s <https://github.com/xhluca/bm25s>`_ (eager sparse
  scoring: every (term, passage) BM25 contribution precomputed), persisted as arrays that are
  memory-mapped on load. Queries are answered by an exact MaxScore top-k compiled with numba
  (:mod:`research_env.retrieval._maxscore`) when numba is importable, else by bm25s's numpy
  scoring of every passage; both give the same passages and scores.
* ``rank_bm25``: the `rank-bm25 <https://github.com/dorianbrown/rank_bm25>`_ ``BM25Okapi``, the
  reference implementation most search-RL code uses. Pure Python; slow on large corpora.

Both index the same token lists (see :mod:`research_env.retrieval.tokenize`) with the same
``k1``/``b``. The index is built once per (corpus, config) and stored under the cache directory;
later constructions load it. A stored index is used only when the fingerprint in its
``COMPLETE`` marker is that of the corpus and config at hand (else :class:`StaleIndexError`),
and it is stored as arrays and JSON, never as a pickle: an index directory can come from
anywhere, and loading one runs no code.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from research_env.cache import atomic_write_bytes, cache_dir, fingerprint
from research_env.data.types import Passage
from research_env.retrieval.base import check_bm25_params, check_k
from research_env.retrieval.tokenize import tokenize

Backend = Literal["bm25s", "rank_bm25"]
BACKENDS: tuple[Backend, ...] = ("bm25s", "rank_bm25")
Accelerator = Literal["auto", "numba", "numpy"]
ACCELERATORS: tuple[Accelerator, ...] = ("auto", "numba", "numpy")
_INDEX_VERSION = "1"
_INDEX_FIELDS = ("backend", "k1", "b", "title_weight")  # what the persisted index depends on


@dataclass(frozen=True)
class BM25Config:
    """Settings of a BM25 index."""

    backend: Backend = "bm25s"
    """Which engine scores queries: ``"bm25s"`` (fast, default) or ``"rank_bm25"`` (reference)."""

    k1: float = 1.2
    """Term-frequency saturation; 0.9–2.0 is usual."""

    b: float = 0.75
    """Length normalisation strength in [0, 1]."""

    title_weight: int = 1
    """How many times a passage's title is indexed (a BM25F-style boost of title matches)."""

    accelerator: Accelerator = "auto"
    """How the ``bm25s`` backend answers queries: ``"numba"`` (exact MaxScore top-k, compiled),
    ``"numpy"`` (bm25s scores every passage), or ``"auto"`` (numba when it can be imported).
    Both return the same passages and scores; the index on disk is the same."""

    n_threads: int = 1
    """Threads for one ``search_batch`` call with the numba accelerator (its queries are split
    between them); 0 means one per CPU core. On 2 shared cores a second thread helped little
    or hurt (docs/benchmarks.md)."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"expected backend in {BACKENDS}, got {self.backend!r}")
        if self.accelerator not in ACCELERATORS:
            raise ValueError(f"expected accelerator in {ACCELERATORS}, got {self.accelerator!r}")
        if isinstance(self.n_threads, bool) or not (
            isinstance(self.n_threads, int) and self.n_threads >= 0
        ):
            raise ValueError(f"expected n_threads >= 0 (int), got {self.n_threads!r}")
        check_bm25_params(self.k1, self.b, self.title_weight)


FACTBOOK_BM25 = BM25Config(k1=1.2, b=0.5, title_weight=3)
"""The settings for the embedded Factbook world, chosen by answer recall@5 (docs/retrieval.md).

Factbook passages are short fields whose title ("Peru — Economy — Exchange rates") carries the
country and the topic; with the title indexed once, one-line fields of the same country
("42 (2025)") outrank the passage that answers the question.
"""


TopK = list[tuple[list[int], list[float]]]
"""Per query: document numbers and scores, best first, only documents with a positive score."""


class _Engine(Protocol):
    def topk(self, queries: list[list[str]], k: int) -> TopK: ...

    def save(self, directory: Path) -> None: ...


class StaleIndexError(ValueError):
    """An index directory holds the index of another corpus or configuration.

    Args:
        directory: The index directory.
        found: The fingerprint its ``COMPLETE`` marker names.
        expected: The fingerprint of the corpus and config at hand.
    """

    def __init__(self, directory: Path, found: str, expected: str) -> None:
        super().__init__(
            f"{directory} holds a BM25 index of another corpus or configuration (fingerprint "
            f"{found!r}; this corpus and config give {expected!r}): delete it or choose "
            "another index_dir"
        )
        self.directory, self.found, self.expected = directory, found, expected


def _readonly(array: npt.NDArray[Any], dtype: type) -> npt.NDArray[Any]:
    # One dtype and one (read-only) flag for built and memory-mapped arrays alike, so the numba
    # kernel is compiled for one signature. No copy unless the dtype differs.
    view: npt.NDArray[Any] = np.asarray(array, dtype=dtype).view()
    view.flags.writeable = False
    return view


def numba_available() -> bool:
    """Whether the numba accelerator of the ``bm25s`` backend can be used here."""
    try:
        import research_env.retrieval._maxscore  # noqa: F401
    except ImportError:
        return False
    return True


class _Bm25sEngine:
    """bm25s's index; top-k by the numba MaxScore kernel, or by bm25s's numpy scoring."""

    _TERM_MAX = "term_max.npy"

    def __init__(self, model: Any, config: BM25Config, term_max: npt.NDArray[Any] | None) -> None:
        self.model = model
        self.num_docs = int(model.scores["num_docs"])
        self.n_threads = config.n_threads
        # The kernel needs positive contributions and no "non-occurrence" scores: bm25s's
        # "lucene" method, the one this module builds.
        lucene = model.method == "lucene" and model.nonoccurrence_array is None
        if config.accelerator == "numba" and not (lucene and numba_available()):
            raise ValueError(
                "BM25Config(accelerator='numba') needs numba (pip install numba) and an index "
                f"built with bm25s method 'lucene' (this one: {model.method!r})"
            )
        use_numba = config.accelerator == "numba" or (
            config.accelerator == "auto" and lucene and numba_available()
        )
        self.accelerator: Literal["numba", "numpy"] = "numba" if use_numba else "numpy"
        scores = model.scores
        self.data = _readonly(scores["data"], np.float32)
        self.indices = _readonly(scores["indices"], np.int32)
        self.indptr = _readonly(scores["indptr"], np.int64)
        if term_max is None:
            term_max = self._column_max()
        self.term_max = _readonly(term_max, np.float32)
        self._pool: dict[int, list[tuple[npt.NDArray[Any], ...]]] = {}
        self._lock = threading.Lock()

    def _column_max(self) -> npt.NDArray[np.float32]:
        """Each term's largest contribution (MaxScore's upper bound)."""
        if self.accelerator == "numba":
            from research_env.retrieval import _maxscore

            return np.asarray(_maxscore.column_max(self.data, self.indptr), dtype=np.float32)
        out = np.zeros(len(self.indptr) - 1, dtype=np.float32)
        nonempty = np.flatnonzero(np.diff(self.indptr) > 0)
        if len(nonempty):
            out[nonempty] = np.maximum.reduceat(self.data, self.indptr[nonempty])
        return out

    @classmethod
    def build(cls, corpus_tokens: list[list[str]], config: BM25Config) -> _Bm25sEngine:
        import bm25s

        # Lucene's variant (as in Pyserini / FlashRAG): its idf is never negative, so terms in
        # over half of a small corpus still count. rank_bm25's Okapi floors them instead.
        model = bm25s.BM25(k1=config.k1, b=config.b, method="lucene")
        model.index(corpus_tokens, show_progress=False)
        return cls(model, config, None)

    @classmethod
    def saved(cls, directory: Path) -> bool:
        return (directory / "params.index.json").is_file()

    @classmethod
    def load(cls, directory: Path, config: BM25Config) -> _Bm25sEngine:
        import bm25s

        # backend="numpy": bm25s's own numba path (JIT-compiled anew in every process) is not used.
        model = bm25s.BM25.load(str(directory), mmap=True, backend="numpy")
        path = directory / cls._TERM_MAX
        term_max = np.load(path, mmap_mode="r") if path.exists() else None
        return cls(model, config, term_max)

    def save(self, directory: Path) -> None:
        self.model.save(str(directory))
        path = directory / self._TERM_MAX
        with open(path.with_suffix(".tmp"), "wb") as f:
            np.save(f, np.asarray(self.term_max))
        path.with_suffix(".tmp").replace(path)

    def topk(self, queries: list[list[str]], k: int) -> TopK:
        vocab = self.model.vocab_dict
        ids = [[vocab[t] for t in q if t in vocab] for q in queries]
        if self.accelerator == "numpy":
            rows = [
                np.asarray(self.model.get_scores_from_ids(q), dtype=np.float32)
                if q
                else np.zeros(self.num_docs, dtype=np.float32)
                for q in ids
            ]
            return [_topk_row(row, k) for row in rows]
        return self._topk_numba(ids, k)

    def _topk_numba(self, ids: list[list[int]], k: int) -> TopK:
        from research_env.retrieval import _maxscore

        k = min(k, self.num_docs)
        pointers = np.fromiter(
            itertools.accumulate((len(q) for q in ids), initial=0), np.int64, len(ids) + 1
        )
        flat = np.array([t for q in ids for t in q], dtype=np.int64)
        docs = np.empty((len(ids), k), dtype=np.int64)
        scores = np.empty((len(ids), k), dtype=np.float32)
        counts = np.empty(len(ids), dtype=np.int64)
        threads = self.n_threads or (os.cpu_count() or 1)
        chunks = max(1, min(threads, len(ids)))
        kernel: Any = _maxscore.batch_serial if chunks == 1 else _maxscore.batch_parallel
        buffers = self._take_buffers(chunks)
        try:
            kernel(
                self.data,
                self.indices,
                self.indptr,
                self.term_max,
                flat,
                pointers,
                k,
                *buffers,
                docs,
                scores,
                counts,
            )
        finally:
            self._give_back(chunks, buffers)
        return [(d[:n], s[:n]) for d, s, n in zip(docs.tolist(), scores.tolist(), counts.tolist())]

    # Work buffers (num_docs-long, one row per chunk of queries) are reused across calls: a
    # fresh zeroed array per call would cost page faults on every page a query touches. The
    # kernel leaves the accumulator zero. A call takes a set for itself, so concurrent calls
    # from several threads never share one.
    def _take_buffers(self, chunks: int) -> tuple[npt.NDArray[Any], ...]:
        with self._lock:
            free = self._pool.get(chunks)
            if free:
                return free.pop()
        n = self.num_docs
        return (
            np.zeros((chunks, n), dtype=np.float32),  # score accumulator
            np.empty((chunks, n), dtype=np.int32),  # documents seen
            np.empty((chunks, n), dtype=np.int32),  # candidates
        )

    def _give_back(self, chunks: int, buffers: tuple[npt.NDArray[Any], ...]) -> None:
        with self._lock:
            self._pool.setdefault(chunks, []).append(buffers)


class _RankBm25Engine:
    """rank_bm25's ``BM25Okapi``, stored as JSON (its counts, idf and lengths; no pickle)."""

    FILE = "rank_bm25.json"
    _FORMAT = "research-env/rank_bm25"
    _FLOATS = ("k1", "b", "epsilon", "avgdl", "average_idf")

    def __init__(self, model: Any) -> None:
        self.model = model

    @classmethod
    def build(cls, corpus_tokens: list[list[str]], config: BM25Config) -> _RankBm25Engine:
        from rank_bm25 import BM25Okapi

        return cls(BM25Okapi(corpus_tokens, k1=config.k1, b=config.b))

    @classmethod
    def saved(cls, directory: Path) -> bool:
        return (directory / cls.FILE).is_file()

    @classmethod
    def load(cls, directory: Path, config: BM25Config) -> _RankBm25Engine:
        from rank_bm25 import BM25Okapi

        path = directory / cls.FILE
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        problem = cls._check_state(state)
        if problem:
            raise ValueError(f"{path}: not a rank_bm25 index saved by research-env ({problem})")
        model = BM25Okapi.__new__(BM25Okapi)  # filled from the file, not recomputed
        for name in cls._FLOATS:
            setattr(model, name, float(state[name]))
        model.corpus_size = len(state["doc_len"])
        model.doc_len = state["doc_len"]
        model.doc_freqs = state["doc_freqs"]
        model.idf = state["idf"]
        model.tokenizer = None
        return cls(model)

    @classmethod
    def _check_state(cls, state: Any) -> str:
        if not isinstance(state, dict) or state.get("format") != cls._FORMAT:
            return f"expected format {cls._FORMAT!r}"
        if state.get("version") != 1:
            return f"expected version 1, got {state.get('version')!r}"
        for name in cls._FLOATS:
            value = state.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"{name} must be a number, got {value!r}"
        doc_len, doc_freqs, idf = state.get("doc_len"), state.get("doc_freqs"), state.get("idf")
        if not (isinstance(doc_len, list) and isinstance(doc_freqs, list) and doc_len):
            return "doc_len and doc_freqs must be non-empty lists"
        if len(doc_len) != len(doc_freqs):
            return f"{len(doc_len)} document lengths for {len(doc_freqs)} documents"
        if not all(isinstance(n, int) for n in doc_len):
            return "doc_len must hold integers"
        if not all(isinstance(d, dict) for d in doc_freqs) or not isinstance(idf, dict):
            return "doc_freqs must hold objects and idf must be an object"
        return ""

    def save(self, directory: Path) -> None:
        m = self.model
        state = {"format": self._FORMAT, "version": 1}
        state.update({name: float(getattr(m, name)) for name in self._FLOATS})
        state.update(doc_len=list(m.doc_len), doc_freqs=m.doc_freqs, idf=m.idf)
        data = json.dumps(state, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        atomic_write_bytes(directory / self.FILE, data)

    def topk(self, queries: list[list[str]], k: int) -> TopK:
        return [
            _topk_row(np.asarray(self.model.get_scores(q), dtype=np.float32), k) for q in queries
        ]


def _topk_row(row: npt.NDArray[np.float32], k: int) -> tuple[list[int], list[float]]:
    """The top-``k`` document numbers and scores of one score row, best first.

    Only documents with a positive score count. Ties are broken by document number (lowest
    first), also at the k-th place, so rankings are deterministic and the same for every engine.

    >>> _topk_row(np.array([0.5, 2.0, 0.5, 0.0, 0.5], dtype=np.float32), 3)
    ([1, 0, 2], [2.0, 0.5, 0.5])
    """
    positive = np.flatnonzero(row > 0)
    if len(positive) > k:
        kth = np.partition(row[positive], len(positive) - k)[len(positive) - k]
        positive = positive[row[positive] >= kth]
    docs = positive[np.lexsort((positive, -row[positive]))[:k]]
    return docs.tolist(), row[docs].tolist()


_ENGINES: dict[Backend, Any] = {"bm25s": _Bm25sEngine, "rank_bm25": _RankBm25Engine}


def corpus_fingerprint(corpus: Sequence[Passage]) -> str:
    """Return a fingerprint of the corpus content (ids, titles and texts, in order)."""
    return fingerprint(p for passage in corpus for p in (passage.id, passage.title, passage.text))


class BM25Retriever:
    """Lexical retrieval over an in-memory corpus.

    With the default ``bm25s`` backend and numba installed, a query costs about 0.1 ms on
    100,000 passages (``benchmarks/retrieval.py``, docs/benchmarks.md). The first query of a
    process pays a one-off cost: numba compiles the kernel (about 10–30 s, once per machine)
    or loads it from its on-disk cache (well under a second); :meth:`warmup` pays it up front.

    Args:
        corpus: The passages to index. Their order defines the document numbers.
        config: Backend and BM25 parameters.
        index_dir: Where to persist the index. ``None`` (default) uses
            ``cache_dir()/bm25/<backend>-<fingerprint>``; the fingerprint covers the corpus
            content and the settings the index depends on, so a changed corpus gets a fresh
            index. A directory whose ``COMPLETE`` marker names another fingerprint (the corpus
            was edited, or other settings) is refused, never used silently. The ``bm25s``
            index is memory-mapped when loaded.
        persist: Set ``False`` to build in memory and never touch the disk.

    Raises:
        StaleIndexError: If ``index_dir`` holds the index of another corpus or configuration.
        ValueError: If ``index_dir`` holds index files that cannot be read (the message names
            the directory and the fault), or the corpus is empty.

    Example:
        >>> from research_env.data.types import Passage
        >>> docs = [Passage("a", "Peru — Capital", "name: Lima"),
        ...         Passage("b", "Chile — Capital", "name: Santiago")]
        >>> r = BM25Retriever(docs, persist=False)
        >>> [p.id for p in r.search("capital of Chile", k=1)]
        ['b']
    """

    def __init__(
        self,
        corpus: Sequence[Passage],
        config: BM25Config | None = None,
        *,
        index_dir: Path | None = None,
        persist: bool = True,
    ) -> None:
        if len(corpus) == 0:
            raise ValueError("expected a non-empty corpus, got 0 passages")
        self.corpus = corpus
        self.config = config or BM25Config()
        index_fields = {key: getattr(self.config, key) for key in _INDEX_FIELDS}
        self.fingerprint = fingerprint(
            [corpus_fingerprint(corpus), json.dumps(index_fields), _INDEX_VERSION]
        )
        """Identifies the index: corpus content, the settings the index depends on, version."""
        self.build_seconds = 0.0
        self.load_seconds = 0.0
        engine_cls = _ENGINES[self.config.backend]
        directory = index_dir or cache_dir() / "bm25" / f"{self.config.backend}-{self.fingerprint}"
        done_marker = directory / "COMPLETE"
        self.index_dir: Path | None = directory if persist else None
        """Where the index is stored (``None`` when ``persist=False``)."""
        if persist and done_marker.exists():
            found = done_marker.read_bytes().decode("utf-8", errors="replace").strip()
            if found != self.fingerprint:  # checked before any index file is opened
                raise StaleIndexError(directory, found[:40], self.fingerprint)
            if engine_cls.saved(directory):
                start = time.perf_counter()
                try:
                    self._engine: _Engine = engine_cls.load(directory, self.config)
                except (OSError, ValueError, KeyError, TypeError) as e:
                    raise ValueError(
                        f"{directory}: cannot load the {self.config.backend} index "
                        f"({type(e).__name__}: {e}); delete the directory to rebuild it"
                    ) from e
                self.load_seconds = time.perf_counter() - start
                return
            # Same fingerprint, but no file this version reads (e.g. an old rank_bm25.pkl,
            # which is never unpickled): rebuild below.
        start = time.perf_counter()
        tokens = [
            tokenize(" ".join([p.title] * self.config.title_weight + [p.text])) for p in corpus
        ]
        self._engine = engine_cls.build(tokens, self.config)
        self.build_seconds = time.perf_counter() - start
        if persist:
            directory.mkdir(parents=True, exist_ok=True)
            self._engine.save(directory)
            atomic_write_bytes(done_marker, self.fingerprint.encode())

    def search(self, query: str, k: int) -> list[Passage]:
        """Return the top-``k`` passages for ``query`` (empty if no query token is indexed)."""
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        """Return the top-``k`` passages for each query, scored in one batched call."""
        check_k(k)
        if not queries:
            return []
        results: list[list[Passage]] = []
        for docs, scores in self._engine.topk([tokenize(q) for q in queries], k):
            hits = []
            for doc, score in zip(docs, scores):
                p = self.corpus[doc]
                hits.append(Passage(p.id, p.title, p.text, score))
            results.append(hits)
        return results

    @property
    def accelerator(self) -> str:
        """How queries are answered: ``"numba"`` or ``"numpy"`` (bm25s), ``"rank_bm25"``."""
        return str(getattr(self._engine, "accelerator", self.config.backend))

    def warmup(self) -> float:
        """Answer one query so that a one-off cost (numba JIT or its cache load) is paid now.

        Returns:
            The seconds it took.
        """
        start = time.perf_counter()
        self.search_batch([self.corpus[0].title + " " + self.corpus[0].text[:200]], 1)
        return time.perf_counter() - start
