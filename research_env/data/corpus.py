r"""Read passage corpora in the layouts the field already uses (FlashRAG / Search-R1 jsonl).

Two line layouts are accepted, one JSON object per line:

* ``{"id": ..., "contents": "\"Title\"\ntext"}`` — FlashRAG and Search-R1 (``wiki-18.jsonl``).
  The first line of ``contents`` is the title; the quotes around it are removed. A ``contents``
  without a newline has no title: all of it is the text.
* ``{"id": ..., "title": ..., "text": ...}`` — the layout research-env writes (``title`` may be
  left out).

Three ways to read a file:

* :func:`iter_corpus_jsonl` streams passages one at a time (plain or ``.gz`` files);
* :func:`load_corpus` reads them all into a list;
* :class:`JsonlCorpus` keeps only the byte offset of each line (8 bytes per passage) and reads a
  passage from disk when it is asked for. This is how a 21M-passage wiki-18 is served without
  holding its 13 GB of text in memory. The offsets are computed by one scan of the file, which
  also checks every line and that ids are unique, and cached under ``cache_dir()/corpus/``,
  keyed by the file's path, size and modification time.

Every reader checks lines with :mod:`research_env.data.validation`, the rules the QA loaders
use too: ``file:line`` and the field in every error.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from research_env.cache import atomic_write_bytes, cache_dir, fingerprint
from research_env.data.files import iter_jsonl_lines
from research_env.data.types import Passage
from research_env.data.validation import (
    DataFormatError,
    UniqueIds,
    duplicate,
    parse_json,
    passage_from_record,
    split_contents,
)

__all__ = [
    "JsonlCorpus",
    "iter_corpus_jsonl",
    "load_corpus",
    "passage_from_record",
    "split_contents",
]

_OFFSETS_VERSION = "2"  # 2: the scan validates every line and rejects duplicate ids


def iter_corpus_jsonl(path: str | Path) -> Iterator[Passage]:
    """Stream the passages of a corpus jsonl file (plain or ``.gz``), in file order.

    Blank lines are skipped. Only one line is held in memory at a time.

    Args:
        path: The corpus file.

    Yields:
        One :class:`Passage` per non-blank line (``score`` is ``None``).

    Raises:
        DataFormatError: On a malformed line, naming ``file:line`` and the field.
        FileNotFoundError: If ``path`` does not exist.
    """
    for _, passage in _iter_numbered(Path(path)):
        yield passage


def _iter_numbered(path: Path) -> Iterator[tuple[int, Passage]]:
    for lineno, record in iter_jsonl_lines(path):
        yield lineno, passage_from_record(record, f"{path}:{lineno}")


def load_corpus(path: str | Path) -> list[Passage]:
    """Read a whole corpus jsonl file (plain or ``.gz``) into a list.

    Use :class:`JsonlCorpus` instead for corpora that do not fit comfortably in memory.

    Args:
        path: The corpus file.

    Returns:
        The passages in file order.

    Raises:
        DataFormatError: On a malformed line or a duplicate id (naming ``file:line``), or an
            empty file.
        FileNotFoundError: If ``path`` does not exist.
    """
    passages: list[Passage] = []
    seen = UniqueIds()
    for lineno, passage in _iter_numbered(Path(path)):
        seen.add(passage.id, f"{path}:{lineno}")
        passages.append(passage)
    if not passages:
        raise DataFormatError(f"{path}: no passages found")
    return passages


class JsonlCorpus(Sequence[Passage]):
    r"""A corpus jsonl file served from disk: passages are read by offset when asked for.

    Memory use is 8 bytes per passage (the offsets, memory-mapped from the cache) whatever the
    size of the text. ``len``, indexing, slicing and iteration behave like a list of
    :class:`Passage`; iteration streams the file sequentially. The file must not change while a
    ``JsonlCorpus`` reads it (a changed file gets a fresh offsets index on the next
    construction).

    Args:
        path: A plain (uncompressed) corpus jsonl file; see the module docstring for the layouts.
        cache: Keep the offsets index under ``cache_dir()/corpus/`` so the next construction
            skips the scan. ``False`` scans every time and writes nothing.
        progress: Show a progress bar (bytes scanned) while building the offsets index.

    Raises:
        ValueError: If ``path`` is gzip-compressed (compressed files cannot be read by offset:
            decompress it, or use :func:`load_corpus`).
        DataFormatError: If the file holds no passage.
        FileNotFoundError: If ``path`` does not exist.

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "corpus.jsonl"
        >>> _ = f.write_text('{"id": "0", "contents": "\\"Aaron\\"\\nAaron is a prophet."}\n')
        >>> corpus = JsonlCorpus(f, cache=False)
        >>> len(corpus), corpus[0].title, corpus[0].text
        (1, 'Aaron', 'Aaron is a prophet.')
    """

    def __init__(self, path: str | Path, *, cache: bool = True, progress: bool = False) -> None:
        self.path = Path(path)
        if self.path.suffix == ".gz":
            raise ValueError(
                f"{self.path}: a gzip-compressed corpus cannot be read by offset; decompress it "
                "(gunzip -k) or load it into memory with research_env.data.corpus.load_corpus"
            )
        stat = self.path.stat()
        self._size = stat.st_size
        key = fingerprint(
            [str(self.path.resolve()), str(stat.st_size), str(stat.st_mtime_ns), _OFFSETS_VERSION]
        )
        directory = cache_dir() / "corpus" / key
        self.scan_seconds = 0.0
        """Seconds spent scanning the file for line offsets (0 when loaded from the cache)."""
        if cache and (directory / "meta.json").exists():
            meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
            offsets: npt.NDArray[np.int64] = np.load(directory / "offsets.npy", mmap_mode="r")
            self.fingerprint: str = meta["sha256"]
        else:
            start = time.perf_counter()
            offsets, self.fingerprint = self._scan(progress)
            self.scan_seconds = time.perf_counter() - start
            if cache:
                directory.mkdir(parents=True, exist_ok=True)
                tmp = directory / f".offsets.{os.getpid()}.npy"
                np.save(tmp, offsets)
                os.replace(tmp, directory / "offsets.npy")
                meta = {"path": str(self.path.resolve()), "passages": len(offsets) - 1}
                meta["sha256"] = self.fingerprint
                atomic_write_bytes(directory / "meta.json", json.dumps(meta, indent=2).encode())
        if len(offsets) < 2:
            raise DataFormatError(f"{self.path}: no passages found")
        self._offsets = offsets
        """Start of each non-blank line, then the file size (``len(corpus) + 1`` values)."""
        self._fd: int | None = None
        self._fd_pid = 0

    def _scan(self, progress: bool) -> tuple[npt.NDArray[np.int64], str]:
        """Return the offsets of the non-blank lines (+ the file size) and a content hash.

        Every line is parsed and checked as :func:`load_corpus` checks it, and ids must be
        unique (64-bit hashes of them are kept during the scan: 8 bytes per passage). That
        costs tens of microseconds per passage, once per file (``benchmarks/corpus_scan.py``).

        Raises:
            DataFormatError: On the first malformed line or duplicate id (``file:line``).
        """
        from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]

        starts = array("q")
        hashes = array("q")
        digest = hashlib.sha256()
        position = 0
        bar = tqdm(
            total=self._size,
            unit="B",
            unit_scale=True,
            desc=f"checking and indexing lines of {self.path.name}",
            disable=not progress,
        )
        prefix = f"{self.path}:"
        with self.path.open("rb") as f, bar:
            for lineno, line in enumerate(f, start=1):
                if line and not line.isspace():
                    where = prefix + str(lineno)
                    passage = passage_from_record(parse_json(line, where, first=lineno == 1), where)
                    starts.append(position)
                    hashes.append(hash(passage.id))
                digest.update(line)
                position += len(line)
                if len(starts) % 65536 == 0:
                    bar.update(position - bar.n)
            bar.update(position - bar.n)
        starts.append(position)
        offsets = np.frombuffer(starts, dtype=np.int64).copy()
        self._check_unique(offsets, np.frombuffer(hashes, dtype=np.int64))
        return offsets, digest.hexdigest()[:16]

    def _check_unique(self, offsets: npt.NDArray[np.int64], hashes: npt.NDArray[np.int64]) -> None:
        """Raise on the first (in file order) passage whose id an earlier passage has."""
        order = np.argsort(hashes, kind="stable")
        same = np.nonzero(hashes[order][1:] == hashes[order][:-1])[0]
        if not len(same):
            return
        later = {int(order[k + 1]) for k in same}  # has an earlier passage of equal hash
        with self.path.open("rb") as f:

            def read_id(i: int) -> str:
                f.seek(int(offsets[i]))
                line = f.read(int(offsets[i + 1] - offsets[i]))
                where = f"{self.path}:passage {i}"
                return passage_from_record(parse_json(line, where, first=i == 0), where).id

            for i in sorted(later):
                same_hash = np.nonzero(hashes[:i] == hashes[i])[0]
                first = next((int(j) for j in same_hash if read_id(int(j)) == read_id(i)), None)
                if first is not None:
                    at = f"{self.path}:{self._line_of(int(offsets[i]))}"
                    raise duplicate(
                        read_id(i), at, f"{self.path}:{self._line_of(int(offsets[first]))}"
                    )

    def __len__(self) -> int:
        return len(self._offsets) - 1

    @overload
    def __getitem__(self, index: int) -> Passage: ...

    @overload
    def __getitem__(self, index: slice) -> list[Passage]: ...

    def __getitem__(self, index: int | slice) -> Passage | list[Passage]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise TypeError(f"expected an int or a slice as index, got {type(index).__name__}")
        i = int(index) + n if index < 0 else int(index)
        if not 0 <= i < n:
            raise IndexError(f"passage index {index} out of range for a corpus of {n}")
        start, end = int(self._offsets[i]), int(self._offsets[i + 1])
        data = os.pread(self._file(), end - start, start)
        try:
            where = f"{self.path}:passage {i}"
            return passage_from_record(parse_json(data, where, first=start == 0), where)
        except DataFormatError as e:
            where = f"{self.path}:{self._line_of(start)}"
            raise DataFormatError(str(e).replace(f"{self.path}:passage {i}", where, 1)) from e

    def __iter__(self) -> Iterator[Passage]:
        return iter_corpus_jsonl(self.path)

    def _file(self) -> int:
        if self._fd is None or self._fd_pid != os.getpid():  # a forked worker opens its own
            self._fd = os.open(self.path, os.O_RDONLY)
            self._fd_pid = os.getpid()
        return self._fd

    def _line_of(self, offset: int) -> int:
        """1-based line number of the line starting at ``offset`` (error path: reads the file)."""
        newlines = 0
        with self.path.open("rb") as f:
            remaining = offset
            while remaining > 0:
                chunk = f.read(min(remaining, 1 << 24))
                if not chunk:
                    break
                newlines += chunk.count(b"\n")
                remaining -= len(chunk)
        return newlines + 1

    def close(self) -> None:
        """Close the file descriptor (it is reopened if the corpus is read again)."""
        if self._fd is not None and self._fd_pid == os.getpid():
            os.close(self._fd)
        self._fd = None

    def __enter__(self) -> JsonlCorpus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:  # noqa: SIM105 (contextlib may already be gone at interpreter shutdown)
            self.close()
        except Exception:
            pass

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_fd"], state["_fd_pid"] = None, 0
        state["_offsets"] = np.asarray(self._offsets)
        return state

    def __repr__(self) -> str:
        return f"JsonlCorpus({str(self.path)!r}, passages={len(self)})"
