r"""Text heuristics of the SB3 agent's :class:`~research_agents.sb3.proposers.HeuristicProposer`.

Pure string functions, no model: :func:`content_words` (what the features compare), the
question's :func:`entity_spans` (names) and :func:`relation_phrases` (what is asked about), and
the answer spans a retrieved passage offers (:func:`title_entity`, :func:`clean_span` on the
values of its ``key: value`` parts, :func:`passage_parts`). The proposers that turn them into
candidate actions are in :mod:`research_agents.sb3.proposers`, which re-exports these names.
"""

from __future__ import annotations

import re

__all__ = [
    "STOPWORDS",
    "clean_span",
    "content_words",
    "entity_spans",
    "passage_parts",
    "relation_phrases",
    "title_entity",
]

_STOPWORDS_TEXT = """
a an and are as at be by did do does for from has have in is it its of on or that the their this
to was were what which who whom whose where when why how with shares share than into
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
"""Words that are neither entities nor relations: articles, prepositions, wh-words, light verbs."""

_CONNECTORS = frozenset(
    ["and", "of", "the", "de", "da", "du", "del", "des", "la", "le", "el", "al", "au", "y"]
)
_TOKEN = re.compile(r"[^\s,;:?!()\[\]\"]+")
_WORD = re.compile(r"\w+")
_DIGIT_START = re.compile(r"^[+\-~]?\d")


def content_words(text: str) -> list[str]:
    """Lower-cased words of ``text`` that are not stopwords, in order, without repeats.

    >>> content_words("What is the capital of the country whose capital is Lima?")
    ['capital', 'country', 'lima']
    """
    out: list[str] = []
    for w in _WORD.findall(text.lower()):
        if w not in STOPWORDS and w not in out:
            out.append(w)
    return out


def _is_name(token: str) -> bool:
    return token[:1].isupper() or token[:1].isdigit()


def entity_spans(text: str) -> list[str]:
    """Runs of capitalised tokens (names), joined by lower-case connectors such as ``and``.

    The first token counts only if it is not a stopword (``What``, ``Which``).

    >>> entity_spans("Which country has the larger total area, Antigua and Barbuda or Peru?")
    ['Antigua and Barbuda', 'Peru']
    >>> entity_spans("Saint John's is the capital of which country?")
    ["Saint John's"]
    """
    tokens = _TOKEN.findall(text)
    spans: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not _is_name(tok) or tok.lower() in STOPWORDS:
            i += 1
            continue
        j = i + 1
        while j < len(tokens):
            if _is_name(tokens[j]) and tokens[j].lower() not in STOPWORDS:
                j += 1
            elif (
                tokens[j].lower() in _CONNECTORS
                and j + 1 < len(tokens)
                and _is_name(tokens[j + 1])
                and tokens[j + 1].lower() not in STOPWORDS
            ):
                j += 2
            else:
                break
        span = " ".join(tokens[i:j]).rstrip(".")
        if span and span not in spans:
            spans.append(span)
        i = j
    return spans


def relation_phrases(question: str) -> list[str]:
    """Runs of consecutive lower-case content words of ``question``: what is asked about.

    >>> relation_phrases("What is the highest point in the country whose capital is Lima?")
    ['highest point', 'country', 'capital']
    """
    phrases: list[str] = []
    run: list[str] = []
    for tok in [*_TOKEN.findall(question), "."]:
        word = tok.lower().strip(".'’")
        if word and not _is_name(tok) and word not in STOPWORDS and _WORD.fullmatch(word):
            run.append(word)
            continue
        if run:
            phrase = " ".join(run)
            if phrase not in phrases:
                phrases.append(phrase)
            run = []
    return phrases


def clean_span(value: str, max_words: int = 6) -> str:
    """Cut a passage value to the name it starts with, or ``""`` if none is left.

    The value is cut at the first parenthesis, comma, semicolon or `` per `` and before the
    first token that starts with a digit (a measure: ``6,746 m``); a trailing ``-`` is dropped.

    >>> clean_span("Nevado Huascaran 6,746 m")
    'Nevado Huascaran'
    >>> clean_span("nuevo sol (PEN) per US dollar -")
    'nuevo sol'
    >>> clean_span("12 03 S, 77 03 W")
    ''
    """
    text = re.split(r"\s*\(|,|;| per ", value, maxsplit=1)[0]
    words: list[str] = []
    for tok in text.split():
        if _DIGIT_START.match(tok):
            break
        words.append(tok)
    span = " ".join(words).strip(" -–—:.").replace("{", "").replace("}", "")
    span = span.replace("<", "").replace(">", "")
    if not span or len(span.split()) > max_words:
        return ""
    return span


def passage_parts(text: str) -> list[str]:
    """The values of a passage's ``key: value`` parts (or the parts themselves), in order."""
    values = []
    for part in text.split("; "):
        key, sep, value = part.partition(": ")
        values.append(value if sep and len(key.split()) <= 4 else part)
    return values


def title_entity(title: str) -> str:
    """The entity a passage title names: its first ``" — "`` segment (the whole title if none).

    >>> title_entity("Peru — Government — Capital")
    'Peru'
    """
    return clean_span(title.split(" — ")[0], max_words=8)
