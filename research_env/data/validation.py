r"""The one place data records are checked: every loader (QA sets, benchmarks, corpora) uses it.

Each check takes ``where`` (``file:line``) and the field's name, and raises
:class:`DataFormatError` with one line naming both and the offending value (shortened). The
rules, the same for every file:

* a line is UTF-8 JSON; a UTF-8 byte-order mark is accepted at the start of a file (only there);
  JSON nested too deeply for the parser is an error, not a ``RecursionError``;
* ``id`` is a non-empty string or an integer (``null``, ``true``, ``1.5``, lists and objects are
  errors), unique within its file;
* a golden answer is a non-blank string (``""`` or ``"  "`` would match an empty prediction);
* a corpus line has ``contents`` (FlashRAG) or ``text`` (+ ``title``); both at once is an error
  unless they say the same thing.
"""

from __future__ import annotations

import json
import reprlib
from typing import Any

from research_env.data.types import Passage, QAExample

BOM = "\ufeff"
"""The UTF-8 byte-order mark some editors put at the start of a file."""


class _Short(reprlib.Repr):
    """``reprlib`` that keeps a dict's key order (``repr``'s), rather than sorting the keys."""

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        items = [
            f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}"
            for k, v in list(x.items())[: self.maxdict]
        ]
        more = ", ..." if len(x) > self.maxdict else ""
        return "{" + ", ".join(items) + more + "}"


_SHOW = _Short()
_SHOW.maxstring = 60
_SHOW.maxother = 60
_SHOW.maxlevel = 3
_SHOW.maxlist = _SHOW.maxdict = 6


class DataFormatError(ValueError):
    """A data file is malformed; the message names the file, the line and the problem."""


def show(value: Any) -> str:
    """A short ``repr`` of ``value``, safe on huge or deeply nested values.

    >>> show([[[[[1]]]]])
    '[[[[...]]]]'
    """
    return _SHOW.repr(value)


def fail(where: str, name: str, expected: str, got: Any) -> DataFormatError:
    """The error for field ``name`` at ``where``: ``expected``, but ``got``."""
    return DataFormatError(f"{where}: field {name!r} must be {expected}, got {show(got)}")


def parse_json(line: bytes | str, where: str, *, first: bool = False) -> Any:
    """Decode one JSON line (``first``: the file's first line, where a BOM may lead).

    Raises:
        DataFormatError: If the line is not UTF-8, not JSON, or nested too deeply.
    """
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataFormatError(f"{where}: not UTF-8 ({e.reason} at byte {e.start})") from None
    if first and line.startswith(BOM):
        line = line[1:]
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise DataFormatError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:
        raise DataFormatError(f"{where}: invalid JSON (nested too deeply)") from None


def decode_text(data: bytes, path: str) -> str:
    """A whole file's bytes as text (a leading BOM dropped).

    Raises:
        DataFormatError: If the bytes are not UTF-8, naming ``path:line``.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataFormatError(f"{path}:{line}: not UTF-8 ({e.reason})") from None
    return text[1:] if text.startswith(BOM) else text


def require_object(record: Any, where: str) -> dict[str, Any]:
    """``record`` if it is a JSON object."""
    if not isinstance(record, dict):
        raise DataFormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
    return record


def require(record: dict[str, Any], keys: tuple[str, ...], where: str, layout: str = "") -> None:
    """Every key of ``keys`` is in ``record``."""
    for key in keys:
        if key not in record:
            context = f"{layout}; " if layout else ""
            raise DataFormatError(
                f"{where}: missing field {key!r} ({context}have {sorted(record)})"
            )


def text(value: Any, where: str, name: str) -> str:
    """A non-blank string."""
    if not isinstance(value, str) or not value.strip():
        raise fail(where, name, "a non-empty string", value)
    return value


def str_list(value: Any, where: str, name: str) -> list[str]:
    """A list of strings."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fail(where, name, "a list of strings", value)
    return list(value)


def record_id(value: Any, where: str, name: str = "id") -> str:
    """An id: a non-empty string, or an integer (returned as its decimal string)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise fail(where, name, "a string or an integer", value)
    if isinstance(value, str) and not value.strip():
        raise fail(where, name, "a non-empty string or an integer", value)
    return str(value)


def answers(value: Any, where: str, name: str) -> list[str]:
    """Golden answers: one string or a non-empty list of them, each non-blank.

    Duplicates are dropped (first kept, order kept).
    """
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values:
        raise fail(where, name, "a non-empty list of strings", value)
    for i, answer in enumerate(values):
        if not isinstance(answer, str) or not answer.strip():
            label = name if isinstance(value, str) else f"{name}[{i}]"
            raise fail(where, label, "a non-empty string", answer)
    return list(dict.fromkeys(values))


class UniqueIds:
    """Remembers where each id was seen; a second sighting is an error naming both places."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def add(self, item_id: str, where: str) -> None:
        """Record ``item_id`` at ``where``.

        Raises:
            DataFormatError: If ``item_id`` was seen before.
        """
        if item_id in self._seen:
            raise duplicate(item_id, where, self._seen[item_id])
        self._seen[item_id] = where


def duplicate(item_id: str, where: str, first: str) -> DataFormatError:
    """The error for ``item_id`` at ``where``, first seen at ``first``."""
    return DataFormatError(f"{where}: duplicate id {item_id!r} (first seen at {first})")


def example_from_record(record: Any, where: str) -> QAExample:
    """A QAExample from a FlashRAG-layout record (``id``, ``question``, ``golden_answers``)."""
    record = require_object(record, where)
    require(record, ("id", "question", "golden_answers"), where)
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise fail(where, "metadata", "an object", metadata)
    return QAExample(
        record_id(record["id"], where),
        text(record["question"], where, "question"),
        answers(record["golden_answers"], where, "golden_answers"),
        metadata,
    )


def split_contents(contents: str) -> tuple[str, str]:
    r"""Split a FlashRAG ``contents`` string into ``(title, text)``.

    Args:
        contents: ``"Title"\ntext`` (the quotes are optional).

    Returns:
        The title without its surrounding quotes, and the text. Without a newline the whole
        string is the text and the title is empty.

    >>> split_contents('"Aaron"\nAaron is a prophet.')
    ('Aaron', 'Aaron is a prophet.')
    >>> split_contents('Title\nline 1\nline 2')
    ('Title', 'line 1\nline 2')
    >>> split_contents('no title here')
    ('', 'no title here')
    """
    title, newline, body = contents.partition("\n")
    if not newline:
        return "", contents
    if len(title) >= 2 and title[0] == '"' and title[-1] == '"':
        title = title[1:-1]
    return title, body


def passage_from_record(record: Any, where: str) -> Passage:
    """Turn one parsed corpus line into a :class:`Passage`.

    Args:
        record: The parsed JSON value of the line.
        where: ``file:line``, used in error messages.

    Raises:
        DataFormatError: If the record is not an object, its ``id`` is missing or not a string
            or integer, it has neither a string ``contents`` nor a string ``text``, or it has
            both and they disagree; the message names ``where`` and the field.
    """
    record = require_object(record, where)
    if "id" not in record:
        raise DataFormatError(f"{where}: missing field 'id' (have {sorted(record)})")
    pid = record_id(record["id"], where)
    has_text, has_contents = "text" in record, "contents" in record
    if not has_text and not has_contents:
        raise DataFormatError(
            f"{where}: missing field 'contents' (or 'title' and 'text'); have {sorted(record)}"
        )
    if has_contents and not isinstance(record["contents"], str):
        raise fail(where, "contents", "a string", record["contents"])
    if has_text:
        body, title = record["text"], record.get("title", "")
        if not isinstance(body, str):
            raise fail(where, "text", "a string", body)
        if not isinstance(title, str):
            raise fail(where, "title", "a string", title)
        if has_contents and split_contents(record["contents"]) not in ((title, body), ("", body)):
            raise DataFormatError(
                f"{where}: ambiguous passage: both 'contents' and 'text' are given and they "
                "differ; keep one layout"
            )
        return Passage(pid, title, body)
    title, body = split_contents(record["contents"])
    return Passage(pid, title, body)
