"""The retriever contract: what every retrieval backend offers the environment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from research_env.data.types import Passage


class RetrievalError(RuntimeError):
    """Retrieval failed (index unavailable, server down, timeout, ...).

    Retrievers raise this instead of returning error text as if it were a passage; the env
    reports it in ``info["retrieval_error"]`` and shows a clearly marked observation.
    """


@runtime_checkable
class Retriever(Protocol):
    """Anything that maps a text query to ranked passages."""

    def search(self, query: str, k: int) -> list[Passage]:
        """Return up to ``k`` passages for ``query``, best first, each with its ``score``."""
        ...

    def search_batch(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        """Return ``[search(q, k) for q in queries]``, computed in one batched call."""
        ...


def check_k(k: int) -> None:
    """Raise ``ValueError`` unless ``k`` is a positive int.

    >>> check_k(0)
    Traceback (most recent call last):
    ...
    ValueError: expected k >= 1, got 0
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"expected k >= 1, got {k!r}")


def check_bm25_params(k1: float, b: float, title_weight: int) -> None:
    """Raise ``ValueError`` unless ``k1 > 0``, ``0 <= b <= 1`` and ``title_weight`` is an int >= 0.

    >>> check_bm25_params(1.2, 1.5, 1)
    Traceback (most recent call last):
    ...
    ValueError: expected 0 <= b <= 1, got 1.5
    """
    if not k1 > 0:
        raise ValueError(f"expected k1 > 0, got {k1!r}")
    if not 0.0 <= b <= 1.0:
        raise ValueError(f"expected 0 <= b <= 1, got {b!r}")
    if isinstance(title_weight, bool) or not (isinstance(title_weight, int) and title_weight >= 0):
        raise ValueError(f"expected title_weight >= 0 (int), got {title_weight!r}")
