"""The two BM25 engines behind :class:`research_env.retrieval.bm25.BM25Retriever`.

Each engine builds an index from token lists, saves it as arrays or JSON (never a pickle), loads
it back and answers a batch of tokenised queries with the top-k document numbers and scores
(:data:`TopK`): ``bm25s`` (eager sparse scores, top-k by the numba MaxScore kernel of
:mod:`research_env.retrieval._maxscore` or by bm25s's numpy scoring) and ``rank_bm25`` (the
reference ``BM25Okapi``). Both rank ties the same way (:func:`_topk_row`). Which corpus text is
indexed, where the index lives and when a stored one may be used is the retriever's job, in
:mod:`research_env.retrieval.bm25`.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from research_env.cache import atomic_write_bytes

if TYPE_CHECKING:
    from research_env.retrieval.bm25 import Backend, BM25Config


TopK = list[tuple[list[int], list[float]]]
"""Per query: document numbers and scores, best first, only documents with a positive score."""


class Engine(Protocol):
    """What :class:`~research_env.retrieval.bm25.BM25Retriever` asks of an engine once built."""

    def topk(self, queries: list[list[str]], k: int) -> TopK:
        """The top-``k`` documents of each tokenised query."""
        ...

    def save(self, directory: Path) -> None:
        """Write the index's files into ``directory``."""
        ...


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


ENGINES: dict[Backend, Any] = {"bm25s": _Bm25sEngine, "rank_bm25": _RankBm25Engine}
"""The engine class of each backend (``build``, ``saved``, ``load``, then ``topk`` and ``save``)."""
