"""Names of Factbook entries: display names, answer aliases and a name -> code index.

The display name is the conventional short form ("Peru"), falling back to the long form when the
short form is missing ("none"), an acronym ("DRC") or parenthesised ("Congo (Brazzaville)").
Aliases are kept tight: an alias claimed by two entries is dropped from both.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from research_env.data.factbook.source import SourceEntry, fold_ascii, leaf_text

# The Factbook's conventional short form for the Dominican Republic is "The Dominican", which
# reads like a truncation and is easily confused with Dominica.
_DISPLAY_OVERRIDES = {"dr": "Dominican Republic"}

# Border lists use a few names that no longer match any country-name field.
_LEGACY_NAMES = {"gaza strip": "gz", "macedonia": "mk"}

_CONNECTORS = frozenset(
    {"al", "and", "da", "de", "del", "des", "di", "do", "dos", "du", "e", "el", "la", "le", "of"}
)
_ACRONYM_RE = re.compile(r"[A-Z]{2,5}")
_ABBREV_RE = re.compile(r"[A-Z][A-Za-z]{1,4}")
_PAREN_RE = re.compile(r"\s*\(([^()]*)\)")


@dataclass(frozen=True)
class EntryNames:
    """The names of one Factbook entry.

    Attributes:
        code: Factbook code.
        display: Name used in passage titles and questions.
        aliases: Accepted answer forms, ``display`` first.
        lookup: Extra forms used only to resolve names written in other fields (borders).
    """

    code: str
    display: str
    aliases: tuple[str, ...]
    lookup: tuple[str, ...]


def normalize_name(text: str) -> str:
    """Return a comparison key: ASCII, lowercase, punctuation-free, no leading article.

    >>> normalize_name("The Côte d’Ivoire")
    'cote d ivoire'
    """
    folded = re.sub(r"[^a-z0-9]+", " ", fold_ascii(text).lower()).strip()
    return folded[4:] if folded.startswith("the ") else folded


def looks_like_name(text: str, max_words: int = 4) -> bool:
    """Whether ``text`` reads as a proper name (capitalised words, optional connectors).

    >>> looks_like_name("Ciudad de Mexico")
    True
    >>> looks_like_name("Kiev is the transliteration from Russian")
    False
    """
    words = text.split()
    if not words or len(words) > max_words or not words[0][:1].isupper():
        return False
    if any(ch.isdigit() for ch in text):
        return False
    return all(w[:1].isupper() or w in _CONNECTORS for w in words)


def _subfield(entry: SourceEntry, section: str, field: str, sub: str) -> str | None:
    """Return the cleaned text of ``section > field > sub`` or ``None`` (also for "none")."""
    text = leaf_text(entry, section, field, sub)
    return text if text and text.lower() != "none" else None


def _strip_commentary(name: str) -> str:
    """Drop parentheticals that are prose, e.g. "Svalbard (sometimes referred to as ...)"."""
    return _PAREN_RE.sub(lambda m: "" if not looks_like_name(m.group(1)) else m.group(0), name)


def _long_form(entry: SourceEntry) -> str | None:
    """Return the conventional long form without trailing notes, or ``None`` if messy."""
    long = _subfield(entry, "Government", "Country name", "conventional long form")
    if long is None:
        return None
    long = re.split(r";\s*note\b", long)[0].strip()
    return None if ";" in long or not long else long


def display_name(entry: SourceEntry) -> str:
    """Return the name used for ``entry`` in titles and questions.

    Args:
        entry: A Factbook entry.

    Returns:
        The display name (never empty).
    """
    if entry.code in _DISPLAY_OVERRIDES:
        return _DISPLAY_OVERRIDES[entry.code]
    short = _subfield(entry, "Government", "Country name", "conventional short form")
    long = _long_form(entry)
    if short is not None:
        short = _strip_commentary(short).strip()
        if (_ACRONYM_RE.fullmatch(short) or "(" in short) and long and "(" not in long:
            return long
        return short
    if long is not None:
        return long
    union = _subfield(entry, "Government", "Union name", "conventional long form")
    return union or entry.region.replace("-", " ").title()


def _abbreviations(entry: SourceEntry) -> list[str]:
    """Return clean abbreviations ("US or USA" -> ["US", "USA"]); skip anything fancy."""
    raw = _subfield(entry, "Government", "Country name", "abbreviation")
    if raw is None:
        return []
    raw = _PAREN_RE.sub("", raw)
    parts = [p.strip() for p in re.split(r"\s+or\s+|/", raw)]
    return [p for p in parts if _ABBREV_RE.fullmatch(p)]


def _variants(name: str) -> list[str]:
    """Return ``name`` plus its article-free and ASCII-folded forms."""
    out = [name]
    if name.lower().startswith("the "):
        out.append(name[4:])
    out.extend([fold_ascii(v) for v in out])
    return out


def _dedupe(names: Iterable[str]) -> tuple[str, ...]:
    """Remove exact duplicates, keeping the first occurrence."""
    return tuple(dict.fromkeys(n for n in names if n))


def raw_names(entry: SourceEntry) -> EntryNames:
    """Return the names of ``entry`` before cross-entry collision filtering."""
    display = display_name(entry)
    short = _subfield(entry, "Government", "Country name", "conventional short form")
    short = _strip_commentary(short).strip() if short else None
    forms = [display, short or "", _long_form(entry) or "", *_abbreviations(entry)]
    aliases = _dedupe(v for form in forms if form for v in _variants(form))
    lookup = _dedupe(_PAREN_RE.sub("", a).strip() for a in aliases if "(" in a)
    return EntryNames(entry.code, display, aliases, lookup)


def build_names(entries: Iterable[SourceEntry]) -> dict[str, EntryNames]:
    """Return the names of every entry with aliases claimed by two entries removed.

    Args:
        entries: All Factbook entries (countries and others, so that collisions are seen).

    Returns:
        Code -> names. Display names are always kept.
    """
    raw = {e.code: raw_names(e) for e in entries}
    owners: dict[str, set[str]] = defaultdict(set)
    for names in raw.values():
        for alias in (*names.aliases, *names.lookup):
            owners[normalize_name(alias)].add(names.code)

    def unique(code: str, forms: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(f for f in forms if owners[normalize_name(f)] == {code})

    return {
        code: EntryNames(
            code,
            n.display,
            _dedupe((n.display, *unique(code, n.aliases))),
            unique(code, n.lookup),
        )
        for code, n in raw.items()
    }


def name_index(names: dict[str, EntryNames]) -> dict[str, str]:
    """Return normalised name -> code for resolving names written in other fields.

    Args:
        names: Output of :func:`build_names`.
    """
    index: dict[str, str] = dict(_LEGACY_NAMES)
    for code, n in names.items():
        for form in (*n.aliases, *n.lookup):
            index[normalize_name(form)] = code
    return index
