"""The lexical tokenizer shared by every BM25 backend.

Both backends index exactly the same token lists, so any difference in their rankings comes from
the scoring code alone. The tokenizer lowercases, folds accents (``Perú`` → ``peru``), splits on
anything that is not a letter or digit, and drops English stop words.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from bm25s.stopwords import STOPWORDS_EN

_WORD = re.compile(r"\w+")
STOPWORDS: frozenset[str] = frozenset(STOPWORDS_EN)


FOLD_CACHE_WORDS = 16384
"""Most non-ASCII words whose accent folding is cached."""

FOLD_CACHE_MAX_CHARS = 32
"""Longest word whose folding is cached. Queries come from clients (a server tokenizes what it
is sent): with this bound the cache holds at most ~16k words of 32 characters, a few MB, however
many distinct long words arrive. ASCII words need no folding and are never cached."""


def _fold_uncached(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_fold_cached = lru_cache(maxsize=FOLD_CACHE_WORDS)(_fold_uncached)


def _fold(word: str) -> str:
    """``word`` without accents (``perú`` → ``peru``); ASCII words come back as they are."""
    if word.isascii():  # NFKD leaves ASCII unchanged and it has no combining marks
        return word
    if len(word) <= FOLD_CACHE_MAX_CHARS:
        return _fold_cached(word)
    return _fold_uncached(word)


def tokenize(text: str) -> list[str]:
    """Split ``text`` into lowercase, accent-folded, stop-word-free tokens.

    Args:
        text: Any string.

    Returns:
        The tokens in order of appearance (duplicates kept, as BM25 counts them).

    >>> tokenize("What is the capital of Perú?")
    ['what', 'capital', 'peru']
    >>> tokenize("Côte d'Ivoire — Government — Capital")
    ['cote', 'd', 'ivoire', 'government', 'capital']
    >>> tokenize("")
    []
    """
    out = []
    for word in _WORD.findall(text.lower()):
        folded = _fold(word)
        if folded and folded not in STOPWORDS and folded != "_":
            out.append(folded)
    return out
