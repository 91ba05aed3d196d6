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


@lru_cache(maxsize=65536)
def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


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
