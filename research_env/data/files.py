"""Read the record files datasets and corpora come in, each record with its ``file:line``.

``.jsonl`` (one JSON value a line, read as bytes one line at a time), ``.json`` (one JSON list
of records), ``.tsv`` (a header row, then one record a row); any of them gzip-compressed
(``.jsonl.gz``). Every reader applies :mod:`research_env.data.validation`'s rules: UTF-8, a BOM
accepted at the start of a file only, blank lines skipped, errors naming ``file:line``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

from research_env.data.validation import DataFormatError, decode_text, parse_json

Located = tuple[Any, str]
"""A parsed record and where it starts (``file:line``)."""

_WS = re.compile(r"\s*")


def open_binary(path: Path) -> IO[bytes]:
    """``path`` opened for reading bytes, decompressed when it ends in ``.gz``."""
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def _read_bytes(path: Path) -> bytes:
    with open_binary(path) as f:
        return f.read()


def iter_jsonl_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed value)`` of each non-blank line of a (gzipped) jsonl file."""
    with open_binary(path) as f:
        for lineno, line in enumerate(f, start=1):
            if line.isspace() or not line:
                continue
            yield lineno, parse_json(line, f"{path}:{lineno}", first=lineno == 1)


def iter_jsonl(path: Path) -> Iterator[Located]:
    """The records of a jsonl file with their ``file:line``."""
    for lineno, value in iter_jsonl_lines(path):
        yield value, f"{path}:{lineno}"


def iter_json_list(path: Path) -> Iterator[Located]:
    """The elements of a JSON list file, each with ``file:line (record n)`` of where it starts."""
    text = decode_text(_read_bytes(path), str(path))
    decoder = json.JSONDecoder()
    i = _WS.match(text, 0).end()  # type: ignore[union-attr]
    if not text.startswith("[", i):
        line = text.count("\n", 0, i) + 1
        raise DataFormatError(f"{path}:{line}: expected a JSON list of records")
    i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
    line, counted, n = 1, 0, 0
    if text.startswith("]", i):
        return
    while True:
        line += text.count("\n", counted, i)
        counted = i
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as e:
            raise DataFormatError(
                f"{path}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})"
            ) from None
        except RecursionError:
            raise DataFormatError(f"{path}:{line}: invalid JSON (nested too deeply)") from None
        yield value, f"{path}:{line} (record {n})"
        n += 1
        i = _WS.match(text, end).end()  # type: ignore[union-attr]
        if text.startswith(",", i):
            i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
        elif text.startswith("]", i):
            return
        else:
            at = text.count("\n", 0, i) + 1
            raise DataFormatError(f"{path}:{at}: invalid JSON (expected ',' or ']' after a record)")


def iter_tsv(path: Path) -> Iterator[Located]:
    """The rows of a TSV file with a header, as dicts, each with its ``file:line``."""
    text = decode_text(_read_bytes(path), str(path))
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            at = reader.line_num + 1  # the row being read
            raise DataFormatError(f"{path}:{at}: invalid TSV ({e})") from None
        yield dict(row), f"{path}:{reader.line_num}"


def layout(path: Path) -> str:
    """``"jsonl"``, ``"json"`` or ``"tsv"``: the record layout of ``path`` (``.gz`` ignored)."""
    suffixes = [s for s in path.suffixes if s != ".gz"]
    last = suffixes[-1] if suffixes else ""
    return {".json": "json", ".tsv": "tsv"}.get(last, "jsonl")


def iter_records(path: Path) -> Iterator[Located]:
    """The records of ``path`` in the layout its name says (see :func:`layout`)."""
    kind = layout(path)
    if kind == "tsv":
        return iter_tsv(path)
    if kind == "json":
        return iter_json_list(path)
    return iter_jsonl(path)
