"""Turn every Factbook field into clean, short, retrievable passages.

One field becomes one passage (or several, when its text exceeds :data:`MAX_WORDS`):

* title: ``"{Country} — {Section} — {Field}"``, e.g. ``"Peru — Government — Capital"``;
* text: the field's leaves as ``"{subfield}: {value}"`` joined with ``"; "`` (just the value
  for a field that is a single text leaf);
* id: ``"{code}/{section-slug}/{field-slug}/{chunk}"``, e.g. ``"pe/government/capital/0"``.

Long texts are split at sentence and ``;`` boundaries (word windows as a last resort); every
chunk keeps the field's title.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from research_env.data.factbook.names import display_name
from research_env.data.factbook.source import (
    SourceEntry,
    clean_key,
    clean_text,
    iter_entries,
    slugify,
)
from research_env.data.types import Passage

MAX_WORDS = 100
"""Maximum number of words in a passage's text."""

TITLE_SEP = " — "
"""Separator between country, section and field in passage titles."""

_PIECE_SPLIT_RE = re.compile(r"(?<=[.!?;])\s+")


def _label(key: str, text: str) -> str:
    """Prefix ``text`` with ``key``, unless the text already starts with the key's last part.

    >>> _label("agricultural land: arable land", "arable land: 3.1%")
    'agricultural land: arable land: 3.1%'
    >>> _label("note", "note: data in 2021 dollars")
    'note: data in 2021 dollars'
    """
    last = key.split(": ")[-1]
    if text.lower().startswith(f"{last.lower()}:"):
        text = text[len(last) + 1 :].strip()
    return f"{key}: {text}"


def field_segments(value: Any) -> list[str]:
    """Render a field value as a list of clean ``"subfield: value"`` segments.

    Args:
        value: A field value: a leaf ``{"text": ...}`` (maybe with ``"note"``), a mapping of
            sub-fields to leaves, or a bare string.

    Returns:
        Non-empty segments in source order.
    """
    if isinstance(value, str):
        text = clean_text(value)
        return [text] if text else []
    if not isinstance(value, dict):
        return []
    segments: list[str] = []
    for raw_key, sub in value.items():
        key = clean_key(raw_key)
        inner = field_segments(sub)
        if not inner:
            continue
        if key != "text":
            inner[0] = _label(key, inner[0])
        segments.extend(inner)
    return segments


def _word_windows(text: str, size: int) -> list[str]:
    """Split ``text`` into consecutive windows of at most ``size`` words."""
    words = text.split()
    return [" ".join(words[i : i + size]) for i in range(0, len(words), size)]


def _units(segment: str, max_words: int) -> list[tuple[str, str]]:
    """Split a segment into ``(joiner, piece)`` units of at most ``max_words`` words.

    The joiner is what goes before the piece when it shares a chunk with the previous one:
    ``"; "`` between segments, ``" "`` between pieces of one segment.
    """
    if len(segment.split()) <= max_words:
        return [("; ", segment)]
    pieces: list[str] = []
    for piece in _PIECE_SPLIT_RE.split(segment):
        pieces.extend(_word_windows(piece, max_words))
    return [("; " if i == 0 else " ", piece) for i, piece in enumerate(pieces)]


def chunk_segments(segments: list[str], max_words: int = MAX_WORDS) -> list[str]:
    """Pack segments into texts of at most ``max_words`` words, keeping their order.

    Args:
        segments: Output of :func:`field_segments`.
        max_words: Word budget per chunk.

    Returns:
        The chunk texts (empty if ``segments`` is empty).

    >>> chunk_segments(["a b", "c d e"], max_words=4)
    ['a b', 'c d e']
    >>> chunk_segments(["a b", "c"], max_words=4)
    ['a b; c']
    """
    chunks: list[str] = []
    current, count = "", 0
    for segment in segments:
        for joiner, piece in _units(segment, max_words):
            n = len(piece.split())
            if current and count + n > max_words:
                chunks.append(current)
                current, count = "", 0
            current = f"{current}{joiner}{piece}" if current else piece
            count += n
    if current:
        chunks.append(current)
    return chunks


def _unique_slug(name: str, taken: set[str]) -> str:
    """Return the slug of ``name``, suffixed ``-2``, ``-3``... if already in ``taken``."""
    base = slugify(name) or "field"
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    taken.add(slug)
    return slug


def entry_passages(entry: SourceEntry) -> list[Passage]:
    """Return the passages of one Factbook entry, in source order.

    Args:
        entry: The Factbook entry.
    """
    country = display_name(entry)
    passages: list[Passage] = []
    section_slugs: set[str] = set()
    for raw_section, fields in entry.data.items():
        if not isinstance(fields, dict):
            continue
        section = clean_key(raw_section)
        section_slug = _unique_slug(section, section_slugs)
        field_slugs: set[str] = set()
        for raw_field, value in fields.items():
            field = clean_key(raw_field)
            field_slug = _unique_slug(field, field_slugs)
            title = TITLE_SEP.join((country, section, field))
            for i, text in enumerate(chunk_segments(field_segments(value))):
                pid = f"{entry.code}/{section_slug}/{field_slug}/{i}"
                passages.append(Passage(id=pid, title=title, text=text))
    return passages


def build_corpus(entries: Iterable[SourceEntry] | None = None) -> list[Passage]:
    """Build the Factbook passage corpus.

    Args:
        entries: Entries to render; defaults to every installed Factbook entry.

    Returns:
        Passages sorted by entry code, then in source order. Deterministic.
    """
    source = iter_entries() if entries is None else entries
    return [p for entry in source for p in entry_passages(entry)]
