"""BM25 retrieval with two interchangeable backends.

* ``bm25s`` (default): the `bm25s <https://github.com/xhluca/bm25s>`_ library — eager sparse
  scoring, persisted as arrays that are memory-mapped on load.
* ``rank_bm25``: the `rank-bm25 <https://github.com/dorianbrown/rank_bm25>`_ ``BM25Okapi``, the
  reference implementation most search-RL code uses. Pure Python; slow on large corpora.

Both index the same token lists (see :mod:`research_env.retrieval.tokenize`) with the same
``k1``/``b``. The index is built once per (corpus, config) and stored under the cache directory;
later constructions load it.
"""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from research_env.cache import atomic_write_bytes, cache_dir, fingerprint
from research_env.data.types import Passage
from research_env.retrieval.base import check_k
from research_env.retrieval.tokenize import tokenize

Backend = Literal["bm25s", "rank_bm25"]
BACKENDS: tuple[Backend, ...] = ("bm25s", "rank_bm25")
_INDEX_VERSION = "1"


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

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"expected backend in {BACKENDS}, got {self.backend!r}")
        if not self.k1 > 0:
            raise ValueError(f"expected k1 > 0, got {self.k1!r}")
        if not 0.0 <= self.b <= 1.0:
            raise ValueError(f"expected 0 <= b <= 1, got {self.b!r}")
        if isinstance(self.title_weight, bool) or not (
            isinstance(self.title_weight, int) and self.title_weight >= 0
        ):
            raise ValueError(f"expected title_weight >= 0 (int), got {self.title_weight!r}")


FACTBOOK_BM25 = BM25Config(k1=1.2, b=0.5, title_weight=3)
"""The settings for the embedded Factbook world, chosen by answer recall@5 (docs/retrieval.md).

Factbook passages are short fields whose title ("Peru — Economy — Exchange rates") carries the
country and the topic; with the title indexed once, one-line fields of the same country
("42 (2025)") outrank the passage that answers the question.
"""


class _Engine(Protocol):
    def topk(
        self, queries: list[list[str]], k: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...

    def save(self, directory: Path) -> None: ...


class _Bm25sEngine:
    def __init__(self, model: Any) -> None:
        self.model = model
        self.num_docs = int(model.scores["num_docs"])

    @classmethod
    def build(cls, corpus_tokens: list[list[str]], config: BM25Config) -> _Bm25sEngine:
        import bm25s

        # Lucene's variant (as in Pyserini / FlashRAG): its idf is never negative, so terms in
        # over half of a small corpus still count. rank_bm25's Okapi floors them instead.
        model = bm25s.BM25(k1=config.k1, b=config.b, method="lucene")
        model.index(corpus_tokens, show_progress=False)
        return cls(model)

    @classmethod
    def load(cls, directory: Path) -> _Bm25sEngine:
        import bm25s

        return cls(bm25s.BM25.load(str(directory), mmap=True))

    def save(self, directory: Path) -> None:
        self.model.save(str(directory))

    def scores(self, query: list[str]) -> npt.NDArray[np.float32]:
        vocab = self.model.vocab_dict
        ids = [vocab[t] for t in query if t in vocab]
        if not ids:  # no query term is indexed: nothing matches
            return np.zeros(self.num_docs, dtype=np.float32)
        return np.asarray(self.model.get_scores_from_ids(ids), dtype=np.float32)

    def topk(
        self, queries: list[list[str]], k: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        return _topk_rows([self.scores(q) for q in queries], k)


class _RankBm25Engine:
    def __init__(self, model: Any) -> None:
        self.model = model

    @classmethod
    def build(cls, corpus_tokens: list[list[str]], config: BM25Config) -> _RankBm25Engine:
        from rank_bm25 import BM25Okapi

        return cls(BM25Okapi(corpus_tokens, k1=config.k1, b=config.b))

    @classmethod
    def load(cls, directory: Path) -> _RankBm25Engine:
        with open(directory / "rank_bm25.pkl", "rb") as f:
            return cls(pickle.load(f))

    def save(self, directory: Path) -> None:
        atomic_write_bytes(directory / "rank_bm25.pkl", pickle.dumps(self.model, protocol=5))

    def topk(
        self, queries: list[list[str]], k: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        rows = [np.asarray(self.model.get_scores(q), dtype=np.float32) for q in queries]
        return _topk_rows(rows, k)


def _topk_rows(
    rows: list[npt.NDArray[np.float32]], k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Top-``k`` document numbers and scores of each score row, best first.

    Ties are broken by document order, so rankings are deterministic and identical across backends.
    """
    k = min(k, len(rows[0]))
    docs = np.zeros((len(rows), k), dtype=np.int64)
    scores = np.zeros((len(rows), k), dtype=np.float32)
    for i, row in enumerate(rows):
        top = np.argpartition(-row, k - 1)[:k]
        top = top[np.lexsort((top, -row[top]))]
        docs[i], scores[i] = top, row[top]
    return docs, scores


_ENGINES: dict[Backend, Any] = {"bm25s": _Bm25sEngine, "rank_bm25": _RankBm25Engine}


def corpus_fingerprint(corpus: Sequence[Passage]) -> str:
    """Return a fingerprint of the corpus content (ids, titles and texts, in order)."""
    return fingerprint(p for passage in corpus for p in (passage.id, passage.title, passage.text))


class BM25Retriever:
    """Lexical retrieval over an in-memory corpus.

    Args:
        corpus: The passages to index. Their order defines the document numbers.
        config: Backend and BM25 parameters.
        index_dir: Where to persist the index. ``None`` (default) uses
            ``cache_dir()/bm25/<fingerprint>``; the fingerprint covers the corpus content and
            the config, so a changed corpus gets a fresh index.
        persist: Set ``False`` to build in memory and never touch the disk.

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
        self.fingerprint = fingerprint(
            [corpus_fingerprint(corpus), json.dumps(asdict(self.config)), _INDEX_VERSION]
        )
        self.build_seconds = 0.0
        self.load_seconds = 0.0
        engine_cls = _ENGINES[self.config.backend]
        directory = index_dir or cache_dir() / "bm25" / f"{self.config.backend}-{self.fingerprint}"
        done_marker = directory / "COMPLETE"
        self.index_dir: Path | None = directory if persist else None
        """Where the index is stored (``None`` when ``persist=False``)."""
        if persist and done_marker.exists():
            start = time.perf_counter()
            self._engine: _Engine = engine_cls.load(directory)
            self.load_seconds = time.perf_counter() - start
            return
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
        docs, scores = self._engine.topk([tokenize(q) for q in queries], k)
        results: list[list[Passage]] = []
        for row_docs, row_scores in zip(docs, scores):
            hits = []
            for doc, score in zip(row_docs.tolist(), row_scores.tolist()):
                if score <= 0.0:  # no query term matched this document
                    break
                p = self.corpus[doc]
                hits.append(Passage(p.id, p.title, p.text, float(score)))
            results.append(hits)
        return results
