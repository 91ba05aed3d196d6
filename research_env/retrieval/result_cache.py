"""A query-result cache around any retriever, and record / replay of retrieval results.

RL rollouts repeat queries: G rollouts of one question often search for the same words, and
later epochs revisit the same questions. :class:`CachedRetriever` answers a repeated
``(query, k)`` from memory, and can keep the results in a file:

* ``mode="cache"`` (default): look up, else ask the wrapped retriever. Results live in an
  in-memory LRU, or, with ``path``, in a JSONL file that later runs start from.
* ``mode="record"``: the same, and every result is written to ``path``.
* ``mode="replay"``: answer only from ``path``; the wrapped retriever is not needed
  (``inner=None``). A query that was not recorded raises :class:`RetrievalError`, which the env
  reports in ``info["retrieval_error"]``. A recorded run can so be replayed exactly, with no
  index at all (a laptop replaying a run made against a large index, a test, a bug report).

Entries are keyed by ``(query, k, index fingerprint)``. The fingerprint identifies the index
the results came from: the wrapped retriever's ``fingerprint`` attribute
(:class:`~research_env.retrieval.bm25.BM25Retriever` has one), else the ``fingerprint``
argument. A file records the fingerprint in its first line and is refused by a retriever whose
fingerprint differs, so results of one index are never served for another.

The file is JSON lines: a header ``{"format": "research-env/retrieval-results", "version": 1,
"fingerprint": ...}``, then one ``{"query", "k", "passages": [{"id", "title", "text",
"score"}, ...]}`` per result. Lines are appended whole (one ``write`` each, flushed), so an
interrupted run loses at most the line being written; a truncated last line is skipped on
load. With a file, every entry is held in memory (about 3 KB per result of 5 passages).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from research_env.data.types import Passage
from research_env.retrieval.base import RetrievalError, Retriever, check_k

CacheMode = Literal["cache", "record", "replay"]
MODES: tuple[CacheMode, ...] = ("cache", "record", "replay")
FILE_FORMAT = "research-env/retrieval-results"
FILE_VERSION = 1

Key = tuple[str, int, str]  # (fingerprint, k, query)


@dataclass
class CacheStats:
    """How a :class:`CachedRetriever` answered its queries."""

    hits: int = 0
    """Queries answered from the cache (memory or file)."""

    misses: int = 0
    """Queries sent to the wrapped retriever (or, when replaying, not found)."""

    inner_calls: int = 0
    """``search_batch`` calls made to the wrapped retriever (one per batch with misses)."""

    @property
    def hit_rate(self) -> float:
        """``hits / (hits + misses)``; 0 before any query."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class CachedRetriever:
    """Answer repeated queries from a cache; record results to a file or replay them.

    Args:
        inner: The retriever to wrap; ``None`` only with ``mode="replay"``.
        mode: ``"cache"``, ``"record"`` or ``"replay"`` (see the module docstring).
        path: The JSONL results file. Required by ``record`` and ``replay``; optional for
            ``cache`` (without it, results stay in memory only). ``record`` appends to an
            existing file of the same fingerprint.
        fingerprint: Identifies the index, when ``inner`` has no ``fingerprint`` attribute.
            With ``replay`` it is optional: when given (or when ``inner`` has one), it must
            match the file's.
        max_entries: Size of the in-memory LRU when there is no ``path``.
        max_bytes: Approximate bytes the in-memory LRU may hold (queries and passage texts),
            when there is no ``path``: queries can come from clients, up to kilobytes each.

    Raises:
        ValueError: On an unknown mode, a missing ``path`` or ``inner``, a file written for
            another index, or a file that is not a results file.
        TypeError: If ``inner`` is not a retriever, or is a per-question one
            (:class:`~research_env.retrieval.closed.ClosedCorpusRetriever`).
        FileNotFoundError: When replaying a file that does not exist.

    Example:
        >>> from research_env.retrieval.bm25 import BM25Retriever
        >>> docs = [Passage("a", "Peru", "capital Lima"), Passage("b", "Chile", "capital Santiago")]
        >>> cached = CachedRetriever(BM25Retriever(docs, persist=False))
        >>> [p.id for p in cached.search("Lima", 1)], [p.id for p in cached.search("Lima", 1)]
        (['a'], ['a'])
        >>> cached.stats.hits, cached.stats.misses
        (1, 1)
    """

    def __init__(
        self,
        inner: Retriever | None,
        *,
        mode: CacheMode = "cache",
        path: str | Path | None = None,
        fingerprint: str | None = None,
        max_entries: int = 100_000,
        max_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"expected mode in {MODES}, got {mode!r}")
        if inner is None and mode != "replay":
            raise ValueError(f"mode={mode!r} needs a retriever to wrap (inner=None given)")
        if inner is not None and not isinstance(inner, Retriever):
            raise TypeError(f"expected a Retriever as inner, got {type(inner).__name__}")
        if hasattr(inner, "for_example"):
            raise TypeError(
                f"CachedRetriever cannot wrap {type(inner).__name__}: it answers per question "
                "(for_example), and the cache has no per-question keys"
            )
        if path is None and mode != "cache":
            raise ValueError(f"mode={mode!r} needs path= (the JSONL results file)")
        for name, value in (("max_entries", max_entries), ("max_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"expected {name} >= 1, got {value!r}")
        own = getattr(inner, "fingerprint", None)
        if own is not None and fingerprint is not None and str(own) != fingerprint:
            raise ValueError(
                f"fingerprint={fingerprint!r} contradicts the wrapped retriever's own "
                f"fingerprint {own!r}; pass neither or the same"
            )
        known = str(own) if own is not None else fingerprint
        if path is not None and mode != "replay" and known is None:
            raise ValueError(
                f"{type(inner).__name__} has no 'fingerprint' attribute: pass fingerprint= "
                "(a string naming the index) so that the file is never used with another index"
            )
        self.inner = inner
        self.mode: CacheMode = mode
        self.path = Path(path) if path is not None else None
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._bytes = 0  # approximate size of the in-memory LRU's entries
        self.stats = CacheStats()
        self._lock = threading.Lock()
        self._entries: OrderedDict[Key, list[Passage]] = OrderedDict()
        self._file: Any = None
        self.fingerprint: str = known or ""
        """The index fingerprint of every entry (from the file when replaying without one)."""
        if self.path is not None:
            self._open_file(known)

    # ---------------------------------------------------------------- the file
    def _open_file(self, known: str | None) -> None:
        assert self.path is not None
        if self.mode == "replay" and not self.path.exists():
            raise FileNotFoundError(f"replay: no results file at {self.path}")
        if self.path.exists() and self.path.stat().st_size > 0:
            recorded = self._load(self.path)
            if known is not None and recorded != known:
                raise ValueError(
                    f"{self.path} holds results of the index with fingerprint {recorded!r}, "
                    f"not {known!r}: use another path (or delete the file)"
                )
            self.fingerprint = recorded
        if self.mode == "replay":
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        self._file = self.path.open("a", encoding="utf-8")
        if fresh:
            header = {"format": FILE_FORMAT, "version": FILE_VERSION, "fingerprint": known}
            self._write_line(header)

    def _load(self, path: Path) -> str:
        """Read ``path`` into memory; return the fingerprint its header names."""
        with path.open(encoding="utf-8") as f:
            lines = f.read().split("\n")
        try:
            header = json.loads(lines[0])
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:1: not a results file (invalid JSON: {e.msg})") from e
        if not isinstance(header, dict) or header.get("format") != FILE_FORMAT:
            raise ValueError(f"{path}:1: not a results file (expected format {FILE_FORMAT!r})")
        if header.get("version") != FILE_VERSION:
            raise ValueError(
                f"{path}:1: expected version {FILE_VERSION}, got {header.get('version')!r}"
            )
        fp = str(header.get("fingerprint"))
        for lineno, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key = (fp, int(record["k"]), str(record["query"]))
                passages = [Passage(**p) for p in record["passages"]]
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                if lineno == len(lines):  # a last line cut short by an interrupted run
                    break
                raise ValueError(f"{path}:{lineno}: malformed result line ({e})") from e
            self._entries[key] = passages
        return fp

    def _write_line(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the results file (if one is open for writing)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> CachedRetriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --------------------------------------------------------------- retrieval
    def search(self, query: str, k: int) -> list[Passage]:
        """Return the top-``k`` passages for ``query``, from the cache when possible."""
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        """Return the top-``k`` passages of each query.

        Cached queries are answered from the cache; all the others go to the wrapped
        retriever in ONE ``search_batch`` call (each distinct query once).

        Raises:
            RetrievalError: When replaying and a query was not recorded (the message names
                it), or when the wrapped retriever fails.
        """
        check_k(k)
        keys = [(self.fingerprint, k, q) for q in queries]
        found: dict[Key, list[Passage]] = {}
        with self._lock:
            for key in keys:
                hit = self._entries.get(key)
                if hit is not None:
                    found[key] = hit
                    if self.path is None:
                        self._entries.move_to_end(key)
            n_missing = sum(key not in found for key in keys)
            self.stats.hits += len(keys) - n_missing
            self.stats.misses += n_missing
        missing = list(dict.fromkeys(key for key in keys if key not in found))
        if missing:
            if self.mode == "replay":
                more = f" ({len(missing) - 1} more in this batch)" if len(missing) > 1 else ""
                raise RetrievalError(
                    f"replay: no recorded result for query {missing[0][2]!r} (k={k}) "
                    f"in {self.path}{more}",
                    kind="not_recorded",
                )
            assert self.inner is not None
            with self._lock:
                self.stats.inner_calls += 1
            results = self.inner.search_batch([key[2] for key in missing], k)
            if len(results) != len(missing):
                raise RetrievalError(
                    f"{type(self.inner).__name__}.search_batch returned {len(results)} results "
                    f"for {len(missing)} queries",
                    kind="bad_response",
                )
            with self._lock:
                for key, passages in zip(missing, results):
                    found[key] = passages
                    self._store(key, passages)
        return [list(found[key]) for key in keys]

    def _store(self, key: Key, passages: list[Passage]) -> None:
        previous = self._entries.pop(key, None)
        if previous is not None and self.path is None:
            self._bytes -= _entry_bytes(key, previous)
        self._entries[key] = passages
        if self._file is not None:
            self._write_line(
                {
                    "query": key[2],
                    "k": key[1],
                    "passages": [
                        {"id": p.id, "title": p.title, "text": p.text, "score": p.score}
                        for p in passages
                    ],
                }
            )
        elif self.path is None:
            self._bytes += _entry_bytes(key, passages)
            while len(self._entries) > 1 and (
                len(self._entries) > self.max_entries or self._bytes > self.max_bytes
            ):
                old_key, old = self._entries.popitem(last=False)
                self._bytes -= _entry_bytes(old_key, old)

    def __len__(self) -> int:
        """Number of cached results."""
        return len(self._entries)


def _entry_bytes(key: Key, passages: list[Passage]) -> int:
    """Approximate memory of one cached result: its query, its passages' strings, overhead."""
    strings = sum(len(p.id) + len(p.title) + len(p.text) for p in passages)
    return len(key[2]) + strings + 120 * (1 + len(passages))
