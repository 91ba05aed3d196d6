"""Deterministic single- and multi-hop questions over the Factbook corpus.

Question types (``metadata["type"]``) and their templates (``metadata["template"]``):

* ``capital``, ``currency``, ``highest_point`` (1 hop): a fact of a named country.
* ``capital_reverse`` (1 hop): "Lima is the capital of which country?".
* ``bridge`` (2 hops): a fact of a country identified by its capital (``capital-currency``,
  ``capital-highest-point``) or as the longest land neighbour of a named country
  (``border-capital``, ``border-currency``).
* ``comparison`` (2 hops): which of two neighbours has the larger (or smaller) total area.
* ``three_hop`` (3 hops): a fact of the longest land neighbour of the country whose capital is
  given (``capital-border-capital``, ``capital-border-currency``).

A capital is used as a key only when no other Factbook entry (territories included) names it as
a capital and it does not give the country's name away ("Kuwait City"). A "longest land border"
is used only when it beats the runner-up by :data:`BORDER_MARGIN`. Every fact's support passage
is looked up in the corpus; a question whose fact is not found there is skipped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from research_env.data.factbook.facts import CountryFacts, Fact, extract_facts
from research_env.data.factbook.names import normalize_name
from research_env.data.factbook.source import SourceEntry, iter_entries, slugify
from research_env.data.types import Passage, QAExample

SPLITS = ("train", "dev", "test")
"""Split names, in order."""

SPLIT_PERCENT = {"train": 80, "dev": 10, "test": 10}
"""Target share of anchor countries per split."""

BORDER_MARGIN = 1.05
"""The longest land border must be at least this many times the runner-up."""

AREA_RATIO = 1.10
"""Compared areas must differ by at least this factor (no near-ties)."""

_THE_PREFIXES = ("United ", "Republic ", "Democratic ", "Federated ", "Holy See")
_THE_SUFFIXES = ("Islands", "Netherlands", "Philippines", "Maldives", "Comoros", "Republic")


@dataclass(frozen=True)
class _Spec:
    """A question template: how the subject country is named, the hops, the asked fact."""

    qtype: str
    template: str
    by_capital: bool
    via_border: bool
    attr: str


_ATTR_QUESTIONS = {
    "capital": "What is the capital of {}?",
    "currency": "What is the currency of {}?",
    "highest_point": "What is the highest point in {}?",
}

_SPECS = (
    _Spec("capital", "capital", False, False, "capital"),
    _Spec("currency", "currency", False, False, "currency"),
    _Spec("highest_point", "highest_point", False, False, "highest_point"),
    _Spec("bridge", "capital-currency", True, False, "currency"),
    _Spec("bridge", "capital-highest-point", True, False, "highest_point"),
    _Spec("bridge", "border-capital", False, True, "capital"),
    _Spec("bridge", "border-currency", False, True, "currency"),
    _Spec("three_hop", "capital-border-capital", True, True, "capital"),
    _Spec("three_hop", "capital-border-currency", True, True, "currency"),
)


@dataclass(frozen=True)
class _Draft:
    """A question before its split is assigned."""

    qtype: str
    template: str
    codes: tuple[str, ...]
    question: str
    answers: tuple[str, ...]
    entities: tuple[str, ...]
    support: tuple[str, ...]
    bridge_keys: tuple[dict[str, str], ...] = ()


class _SupportIndex:
    """Find the corpus passage stating a fact: (code, section, field) -> ordered chunks."""

    def __init__(self, corpus: Iterable[Passage]) -> None:
        self._chunks: dict[str, list[Passage]] = {}
        for passage in corpus:
            prefix = passage.id.rsplit("/", 1)[0]
            self._chunks.setdefault(prefix, []).append(passage)

    def find(self, code: str, section: str, field_name: str, needle: str) -> str | None:
        """Return the id of the first chunk of the field containing ``needle`` (any case)."""
        prefix = f"{code}/{slugify(section)}/{slugify(field_name)}"
        low = needle.lower()
        for passage in self._chunks.get(prefix, []):
            if low in passage.text.lower():
                return passage.id
        return None

    def fact(self, code: str, fact: Fact) -> str | None:
        """Return the support passage id of ``fact`` for country ``code``."""
        return self.find(code, fact.section, fact.field, fact.needle)


def with_article(name: str) -> str:
    """Return ``name`` as it reads mid-sentence ("the United States", "Peru").

    >>> with_article("United States"), with_article("Peru"), with_article("Solomon Islands")
    ('the United States', 'Peru', 'the Solomon Islands')
    """
    if name.startswith(_THE_PREFIXES) or name.endswith(_THE_SUFFIXES):
        return f"the {name}"
    return name


def split_of(anchor_code: str) -> str:
    """Return the split of every question anchored on ``anchor_code`` (stable hash, 80/10/10).

    >>> split_of("pe") in SPLITS
    True
    """
    bucket = int(hashlib.sha256(f"factbook-split/{anchor_code}".encode()).hexdigest(), 16) % 100
    if bucket < SPLIT_PERCENT["train"]:
        return "train"
    return "dev" if bucket < SPLIT_PERCENT["train"] + SPLIT_PERCENT["dev"] else "test"


def _contains_word(haystack: str, needle: str) -> bool:
    """Whole-word containment on normalised names."""
    return f" {needle} " in f" {haystack} "


def capital_key_ok(country: CountryFacts, facts: dict[str, CountryFacts]) -> bool:
    """Whether the country's capital identifies it uniquely and without giving its name away.

    Args:
        country: The candidate country (must have a parsed capital).
        facts: Facts of every Factbook entry, territories included.
    """
    if country.capital is None:
        return False
    key = normalize_name(country.capital.value)
    for alias in country.names.aliases:
        name = normalize_name(alias)
        if key in name or name in key:
            return False
    return not any(
        other.code != country.code
        and other.capital_text is not None
        and _contains_word(normalize_name(other.capital_text), key)
        for other in facts.values()
    )


def longest_neighbour(country: CountryFacts) -> tuple[str, str, float] | None:
    """Return ``(code, written name, km)`` of the unique longest land neighbour, else ``None``.

    ``None`` when the border list is unreadable, the top border does not beat the runner-up by
    :data:`BORDER_MARGIN`, or the top neighbour resolves to no Factbook entry.
    """
    if not country.borders:
        return None
    ranked = sorted(country.borders, key=lambda b: -b.km)
    top = ranked[0]
    if top.code is None or (len(ranked) > 1 and top.km < BORDER_MARGIN * ranked[1].km):
        return None
    return top.code, top.written, top.km


class _Generator:
    """Builds the drafts of every question type from the facts and the corpus."""

    def __init__(self, facts: dict[str, CountryFacts], corpus: Sequence[Passage]) -> None:
        self.facts = facts
        self.support = _SupportIndex(corpus)
        self.countries = [f for f in facts.values() if f.is_country]
        self._capital_keys = {c.code: self._find_capital_key(c) for c in self.countries}

    def _neighbour(self, country: CountryFacts) -> tuple[CountryFacts, str, str] | None:
        """Return ``(neighbour, name as written in the border list, border support id)``."""
        found = longest_neighbour(country)
        if found is None or not self.facts[found[0]].is_country:
            return None
        sid = self.support.find(country.code, "Geography", "Land boundaries", f"{found[1]} ")
        return (self.facts[found[0]], found[1], sid) if sid else None

    def _capital_key(self, country: CountryFacts) -> tuple[str, str] | None:
        """Return ``(capital, support id)`` when the capital may identify the country."""
        return self._capital_keys[country.code]

    def _find_capital_key(self, country: CountryFacts) -> tuple[str, str] | None:
        """Compute :meth:`_capital_key` (once per country)."""
        if country.capital is None or not capital_key_ok(country, self.facts):
            return None
        sid = self.support.fact(country.code, country.capital)
        return (country.capital.value, sid) if sid else None

    def chain(self, country: CountryFacts, spec: _Spec) -> _Draft | None:
        """Build the question of ``spec`` anchored on ``country``, or ``None`` if not possible.

        The subject is the country's name or "the country whose capital is X"; an optional
        hop moves to its longest land neighbour; the asked fact belongs to the last country.
        """
        subject = with_article(country.names.display)
        support: list[str] = []
        keys: list[dict[str, str]] = []
        if spec.by_capital:
            found_key = self._capital_key(country)
            if found_key is None:
                return None
            subject = f"the country whose capital is {found_key[0]}"
            support.append(found_key[1])
            keys.append({"relation": "capital", "key": found_key[0]})
        target = country
        if spec.via_border:
            found = self._neighbour(country)
            if found is None:
                return None
            target, written, border_sid = found
            subject = f"the country that shares the longest land border with {subject}"
            support.append(border_sid)
            keys.append(
                {
                    "relation": "longest_border",
                    "key": country.names.display,
                    "neighbour": target.names.display,
                    "neighbour_as_written": written,
                }
            )
        fact: Fact | None = getattr(target, spec.attr)
        fact_sid = self.support.fact(target.code, fact) if fact else None
        if fact is None or fact_sid is None:
            return None
        countries = (country, target) if target is not country else (country,)
        return _Draft(
            spec.qtype,
            spec.template,
            tuple(c.code for c in countries),
            _ATTR_QUESTIONS[spec.attr].format(subject),
            fact.aliases,
            tuple(c.names.display for c in countries),
            (*support, fact_sid),
            tuple(keys),
        )

    def chains(self) -> list[_Draft]:
        """Every single-hop, bridge and three-hop question."""
        drafts = (self.chain(c, spec) for spec in _SPECS for c in self.countries)
        return [d for d in drafts if d is not None]

    def capital_reverse(self) -> list[_Draft]:
        """Questions such as "Lima is the capital of which country?"."""
        drafts = []
        for country in self.countries:
            found_key = self._capital_key(country)
            if found_key is None:
                continue
            drafts.append(
                _Draft(
                    "capital_reverse",
                    "capital_reverse",
                    (country.code,),
                    f"{found_key[0]} is the capital of which country?",
                    country.names.aliases,
                    (country.names.display,),
                    (found_key[1],),
                    ({"relation": "capital", "key": found_key[0]},),
                )
            )
        return drafts

    def comparisons(self) -> list[_Draft]:
        """Which of two neighbouring countries has the larger (or smaller) total area."""
        pairs: set[tuple[str, str]] = set()
        for country in self.countries:
            for border in country.borders or ():
                if border.code is not None and self.facts[border.code].is_country:
                    pair = (min(country.code, border.code), max(country.code, border.code))
                    pairs.add(pair)
        drafts = (self._comparison(*pair) for pair in sorted(pairs))
        return [d for d in drafts if d is not None]

    def _comparison(self, code_a: str, code_b: str) -> _Draft | None:
        """One area comparison; ``None`` on a near-tie or a missing area."""
        first, second = sorted((self.facts[code_a], self.facts[code_b]), key=_display)
        if first.area is None or second.area is None:
            return None
        (area_a, text_a), (area_b, text_b) = first.area, second.area
        if max(area_a, area_b) < AREA_RATIO * min(area_a, area_b):
            return None
        sid_a = self.support.find(first.code, "Geography", "Area", text_a)
        sid_b = self.support.find(second.code, "Geography", "Area", text_b)
        if sid_a is None or sid_b is None:
            return None
        digest = hashlib.sha256(f"{first.code}/{second.code}".encode()).hexdigest()
        larger = int(digest, 16) % 2 == 0
        winner = first if (area_a > area_b) == larger else second
        names = (first.names.display, second.names.display)
        word = "larger" if larger else "smaller"
        question = (
            f"Which country has the {word} total area, "
            f"{with_article(names[0])} or {with_article(names[1])}?"
        )
        return _Draft(
            "comparison",
            f"area-{word}",
            (first.code, second.code),
            question,
            winner.names.aliases,
            names,
            (sid_a, sid_b),
        )


def _display(country: CountryFacts) -> str:
    """Sort key: the display name."""
    return country.names.display


def _example(draft: _Draft) -> QAExample:
    """Turn a draft into a :class:`QAExample` with its split and metadata."""
    split = split_of(draft.codes[0])
    parts = [draft.qtype] if draft.qtype == draft.template else [draft.qtype, draft.template]
    metadata: dict[str, Any] = {
        "type": draft.qtype,
        "template": draft.template,
        "hops": len(draft.support),
        "entities": list(draft.entities),
        "codes": list(draft.codes),
        "support": list(draft.support),
        "split": split,
        "bridge_keys": [dict(k) for k in draft.bridge_keys],
    }
    return QAExample(
        id="/".join(["factbook", *parts, *draft.codes]),
        question=draft.question,
        golden_answers=list(dict.fromkeys(draft.answers)),
        metadata=metadata,
    )


def build_qa(
    corpus: Sequence[Passage], entries: Iterable[SourceEntry] | None = None
) -> list[QAExample]:
    """Generate the Factbook QA set.

    Args:
        corpus: The passages of :func:`corpus.build_corpus` (used for support lookups).
        entries: Factbook entries; defaults to every installed entry.

    Returns:
        Questions ordered by type then id; deterministic for a given source.
    """
    facts = extract_facts(iter_entries() if entries is None else entries)
    gen = _Generator(facts, corpus)
    drafts = [*gen.chains(), *gen.capital_reverse(), *gen.comparisons()]
    examples = [_example(d) for d in drafts]
    order = {t: i for i, t in enumerate(QUESTION_TYPES)}
    return sorted(examples, key=lambda e: (order[e.metadata["type"]], e.id))


QUESTION_TYPES = (
    "capital",
    "currency",
    "highest_point",
    "capital_reverse",
    "bridge",
    "comparison",
    "three_hop",
)
"""Every ``metadata["type"]`` value, in display order (single-hop first)."""

SINGLE_HOP_TYPES = QUESTION_TYPES[:4]
"""The types one search answers."""

MULTI_HOP_TYPES = QUESTION_TYPES[4:]
"""The types that need a search per hop (bridge, comparison, three-hop)."""
