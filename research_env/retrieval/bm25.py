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

The two engines (building, saving, loading and querying each backend's index) are in
:mod:`research_env.retrieval.bm25_engines`; this module is the retriever around them: its
settings, the index's fingerprint and directory, and turning document numbers into passages.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from research_env.cache import atomic_write_bytes, cache_dir, fingerprint
from research_env.data.types import Passage
from research_env.retrieval.base import check_bm25_params, check_k
from research_env.retrieval.bm25_engines import ENGINES, Engine
from research_env.retrieval.bm25_engines import TopK as TopK
from research_env.retrieval.bm25_engines import _topk_row as _topk_row
from research_env.retrieval.bm25_engines import numba_available as numba_available
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
        engine_cls = ENGINES[self.config.backend]
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
                    self._engine: Engine = engine_cls.load(directory, self.config)
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
