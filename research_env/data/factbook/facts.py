"""Structured per-country facts parsed (defensively) from Factbook fields.

Every parser returns ``None`` for anything it cannot read unambiguously: multiple capitals,
capitals with notes, currencies given as "X or Y", unnamed highest points, approximate areas,
border lists with an unreadable segment. Skipping is always preferred over guessing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from research_env.data.factbook.names import (
    EntryNames,
    build_names,
    looks_like_name,
    name_index,
    normalize_name,
)
from research_env.data.factbook.source import SourceEntry, fold_ascii, get_field, leaf_text

# ISO codes that are also English words would make sloppy aliases.
_WORD_CODES = frozenset({"ALL", "TOP"})
_IRREGULAR_SINGULARS = {
    "colones": "colon",
    "emalangeni": "lilangeni",
    "koruny": "koruna",
    "kronor": "krona",
    "kronur": "krona",
    "kroner": "krone",
    "lei": "leu",
    "leke": "lek",
    "leva": "lev",
    "maloti": "loti",
    "meticais": "metical",
    "quetzales": "quetzal",
    "zlotych": "zloty",
}
_CFA_MARKERS = ("Communaute Financiere Africaine", "Cooperation Financiere en Afrique Centrale")

_MESSY_CAPITAL_RE = re.compile(r"\bcapital\b|\bnote\b|\bno official\b|\badministered\b| in ", re.I)
_NAME_PAREN_RE = re.compile(r"(?P<name>[^()]+?)\s*(?:\((?P<paren>[^()]*)\))?")
_CURRENCY_RE = re.compile(
    r"(?P<name>[^()]+?)\s*(?:\((?P<codes>[A-Z]{2,3}(?:/[A-Z]{3})?)\))?\s+per US dollar\b.*"
)
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_AREA_RE = re.compile(rf"(?P<num>{_NUMBER})\s*(?P<million>million\s+)?sq km(?P<rest>.*)")
_BORDER_RE = re.compile(rf"(?P<name>\D+?)\s+(?P<num>{_NUMBER})\s*km")
_POINT_RE = re.compile(
    rf"(?P<name>[^0-9();,]+?)\s*(?:\((?P<alt>[^()]*)\))?\s+(?:{_NUMBER})(?:\s*m)?"
    r"(?:\s*\([^()]*\))?"
)


@dataclass(frozen=True)
class Fact:
    """One answerable fact and where the corpus states it.

    Attributes:
        value: Primary answer form, verbatim from the cleaned field text.
        aliases: Accepted answers, ``value`` first.
        section: Factbook section holding the fact.
        field: Factbook field holding the fact.
        needle: Text that the supporting passage must contain.
    """

    value: str
    aliases: tuple[str, ...]
    section: str
    field: str
    needle: str


@dataclass(frozen=True)
class Border:
    """A land border as listed by one country.

    Attributes:
        code: Factbook code of the neighbour; ``None`` when the name resolves to no entry
            (e.g. "French Guiana", which the Factbook covers under France).
        written: The neighbour's name as written in the border list.
        km: Border length in kilometres (segments to the same neighbour summed).
    """

    code: str | None
    written: str
    km: float


@dataclass(frozen=True)
class CountryFacts:
    """Everything the QA generator needs about one entry.

    Attributes:
        code: Factbook code.
        names: The entry's names and aliases.
        is_country: Independent-looking entry (country name, a capital text, no dependency
            status); only these anchor questions.
        capital_text: Cleaned capital-name text, however messy (for collision checks).
        capital: Parsed capital, ``None`` when messy.
        currency: Parsed currency, ``None`` when messy.
        highest_point: Parsed highest point, ``None`` when unnamed or messy.
        area: Total area in sq km and its verbatim text, ``None`` when not exact.
        borders: Parsed land borders (``()`` for none), ``None`` when the list is unreadable.
    """

    code: str
    names: EntryNames
    is_country: bool
    capital_text: str | None
    capital: Fact | None
    currency: Fact | None
    highest_point: Fact | None
    area: tuple[float, str] | None
    borders: tuple[Border, ...] | None


def _number(text: str) -> float:
    """Parse "1,285,216" or "0.15"."""
    return float(text.replace(",", ""))


def _with_folds(names: Iterable[str]) -> tuple[str, ...]:
    """Return ``names`` plus their ASCII-folded forms, deduplicated, order kept."""
    out: list[str] = []
    for name in names:
        out.extend([name, fold_ascii(name)])
    return tuple(dict.fromkeys(out))


def parse_capital(text: str) -> tuple[str, ...] | None:
    """Parse a capital-name text into ``(primary, *aliases)``; ``None`` if ambiguous.

    >>> parse_capital("Tashkent (Toshkent)")
    ('Tashkent', 'Toshkent')
    >>> parse_capital("Santiago; note - Valparaiso is the seat of the national legislature")
    ('Santiago',)
    >>> parse_capital("La Paz (administrative capital); Sucre (constitutional capital)") is None
    True
    """
    text = re.split(r";\s*note\b", text)[0].strip()
    if ";" in text or _MESSY_CAPITAL_RE.search(text):
        return None
    match = _NAME_PAREN_RE.fullmatch(text)
    if match is None:
        return None
    name = match.group("name").strip()
    extra: list[str] = []
    if "," in name:
        if not re.fullmatch(r"[^,]+, D\.C\.", name):
            return None
        extra = [name.split(",")[0], name.replace(",", "").replace(".", "")]
    if not looks_like_name(name.split(",")[0]):
        return None
    paren = match.group("paren") or ""
    extra += [p.strip() for p in re.split(r"[,/]", paren) if looks_like_name(p.strip())]
    return _with_folds([name, *extra])


def _singular(name: str) -> str | None:
    """Return a singular form of a plural currency name, or ``None``."""
    head, _, last = name.rpartition(" ")
    lower = last.lower()
    if lower in _IRREGULAR_SINGULARS:
        single = _IRREGULAR_SINGULARS[lower]
    elif lower.endswith("s") and not lower.endswith("ss") and len(lower) > 3:
        single = last[:-1]
    else:
        return None
    return f"{head} {single}".strip()


def parse_currency(text: str) -> tuple[str, ...] | None:
    """Parse an exchange-rate "Currency" text into ``(name, *aliases)``.

    >>> parse_currency("nuevo sol (PEN) per US dollar -")
    ('nuevo sol', 'PEN')
    >>> parse_currency("euros (EUR) per US dollar -")
    ('euros', 'euro', 'EUR')
    >>> parse_currency("Tuvaluan dollars or Australian dollars (AUD) per US dollar -") is None
    True
    """
    match = _CURRENCY_RE.fullmatch(text)
    if match is None:
        return None
    name = match.group("name").strip()
    if not name or " or " in name or "/" in name or len(name.split()) > 6:
        return None
    aliases = [name]
    single = _singular(name)
    if single:
        aliases.append(single)
    if any(marker in fold_ascii(name) for marker in _CFA_MARKERS):
        aliases += ["CFA francs", "CFA franc"]
    codes = (match.group("codes") or "").split("/")
    aliases += [c for c in codes if len(c) == 3 and c not in _WORD_CODES]
    return _with_folds(aliases)


def parse_highest_point(text: str) -> tuple[str, ...] | None:
    """Parse "Nevado Huascaran 6,746 m" into ``(name, *aliases)``; skip unnamed points.

    >>> parse_highest_point("Sapitwa (Mount Mlanje) 3,002 m")
    ('Sapitwa', 'Mount Mlanje')
    >>> parse_highest_point("unnamed elevation 675 m; located 2.5 km southeast of X") is None
    True
    """
    match = _POINT_RE.fullmatch(text)
    if match is None:
        return None
    name = match.group("name").strip()
    if not looks_like_name(name, max_words=5):
        return None
    alt = (match.group("alt") or "").strip()
    parts = [p.strip() for p in name.split("/")] if "/" in name else []
    return _with_folds([name, *parts, *([alt] if looks_like_name(alt) else [])])


def parse_area(text: str) -> float | None:
    """Parse an exact total area ("1,285,216 sq km", "1.284 million sq km").

    >>> parse_area("1.284 million sq km")
    1284000.0
    >>> parse_area("3 sq km less than") is None
    True
    """
    match = _AREA_RE.fullmatch(text)
    if match is None:
        return None
    rest = match.group("rest").strip()
    if rest and not rest.startswith(("(", ";")):
        return None
    value = _number(match.group("num"))
    return value * 1e6 if match.group("million") else value


def parse_borders(text: str, index: dict[str, str]) -> tuple[Border, ...] | None:
    """Parse a "border countries" list; ``None`` if any segment is unreadable.

    Parentheticals with numbers are notes and dropped; "China (south)" counts as China, and
    several segments to one neighbour are summed. Neighbours that resolve to no Factbook entry
    are kept with ``code=None`` so that "longest border" questions still see them.

    Args:
        text: Cleaned border list, e.g. ``"Bolivia 1,212 km; Brazil 2,659 km"``.
        index: Normalised name -> code (see :func:`names.name_index`).
    """
    text = re.sub(r"\s*\([^()]*\d[^()]*\)", "", text)
    totals: dict[str, float] = {}
    written: dict[str, str] = {}
    codes: dict[str, str | None] = {}
    for segment in re.split(r";|(?<=km),|(?<=km)\s+and\s+", text):
        match = _BORDER_RE.fullmatch(segment.strip())
        if match is None:
            return None
        name = match.group("name").strip()
        code = index.get(normalize_name(name)) or index.get(
            normalize_name(re.sub(r"\s*\([^()]*\)", "", name))
        )
        key = code or f"?{name}"
        totals[key] = totals.get(key, 0.0) + _number(match.group("num"))
        written.setdefault(key, name)
        codes[key] = code
    return tuple(Border(codes[k], written[k], km) for k, km in totals.items())


def _fact(parsed: tuple[str, ...] | None, section: str, field: str) -> Fact | None:
    """Wrap parser output into a :class:`Fact` whose needle is the primary value."""
    if not parsed:
        return None
    return Fact(parsed[0], parsed, section, field, parsed[0])


def _is_country(entry: SourceEntry) -> bool:
    """Independent entry with a country name and some capital text."""
    return (
        get_field(entry, "Government", "Country name") is not None
        and get_field(entry, "Government", "Dependency status") is None
        and leaf_text(entry, "Government", "Capital", "name") is not None
    )


def country_facts(entry: SourceEntry, names: EntryNames, index: dict[str, str]) -> CountryFacts:
    """Parse the structured facts of one entry.

    Args:
        entry: The Factbook entry.
        names: Its names (see :func:`names.build_names`).
        index: Normalised name -> code, to resolve border neighbours.
    """
    capital_text = leaf_text(entry, "Government", "Capital", "name")
    currency_text = leaf_text(entry, "Economy", "Exchange rates", "Currency")
    point_text = leaf_text(entry, "Geography", "Elevation", "highest point")
    area_text = leaf_text(entry, "Geography", "Area", "total")
    border_text = leaf_text(entry, "Geography", "Land boundaries", "border countries")
    capital = parse_capital(capital_text) if capital_text else None
    area = parse_area(area_text) if area_text else None
    return CountryFacts(
        code=entry.code,
        names=names,
        is_country=_is_country(entry),
        capital_text=capital_text,
        capital=(
            Fact(capital[0], capital, "Government", "Capital", f"name: {capital[0]}")
            if capital
            else None
        ),
        currency=_fact(
            parse_currency(currency_text) if currency_text else None, "Economy", "Exchange rates"
        ),
        highest_point=_fact(
            parse_highest_point(point_text) if point_text else None, "Geography", "Elevation"
        ),
        area=(area, area_text.split(" sq km")[0] + " sq km") if area and area_text else None,
        borders=parse_borders(border_text, index) if border_text else (),
    )


def extract_facts(entries: Iterable[SourceEntry]) -> dict[str, CountryFacts]:
    """Return code -> :class:`CountryFacts` for every entry (in code order).

    Args:
        entries: All Factbook entries.
    """
    entries = list(entries)
    names = build_names(entries)
    index = name_index(names)
    return {e.code: country_facts(e, names[e.code], index) for e in entries}
