"""The retriever contract: what every retrieval backend offers the environment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from research_env.data.types import Passage

RetrievalErrorKind = Literal[
    "unavailable", "timeout", "connection", "server", "rejected", "bad_response", "not_recorded"
]
"""What kind of failure a :class:`RetrievalError` reports (``info["retrieval_error_kind"]``):

* ``"unavailable"``: the index failed or is unavailable (the default);
* ``"timeout"``: a retrieval server did not answer in time (every attempt, or the budget);
* ``"connection"``: the server could not be reached (refused, reset, DNS);
* ``"server"``: the server kept answering 5xx / 429 / 408;
* ``"rejected"``: the server refused the request (4xx, not retried: fix the request);
* ``"bad_response"``: the server answered something that is not the expected JSON;
* ``"not_recorded"``: replaying a results file that lacks the query.
"""
ERROR_KINDS: tuple[RetrievalErrorKind, ...] = (
    "unavailable",
    "timeout",
    "connection",
    "server",
    "rejected",
    "bad_response",
    "not_recorded",
)


class RetrievalError(RuntimeError):
    """Retrieval failed (index unavailable, server down, timeout, ...).

    Retrievers raise this instead of returning error text as if it were a passage; the env
    reports the message in ``info["retrieval_error"]``, its :attr:`kind` in
    ``info["retrieval_error_kind"]``, and shows a clearly marked observation.

    Args:
        message: What failed, where (URL, file) and why.
        kind: One of :data:`ERROR_KINDS`.
        status: The HTTP status that caused it, when there was one.
    """

    def __init__(
        self, message: str, *, kind: RetrievalErrorKind = "unavailable", status: int | None = None
    ) -> None:
        if kind not in ERROR_KINDS:
            raise ValueError(f"expected kind in {ERROR_KINDS}, got {kind!r}")
        super().__init__(message)
        self.kind: RetrievalErrorKind = kind
        """The kind of failure (see :data:`RetrievalErrorKind`)."""
        self.status = status
        """The HTTP status behind the failure, or ``None``."""

    def __reduce__(self) -> tuple[Any, ...]:  # keep kind and status across processes
        return (_rebuild_error, (type(self), str(self), self.kind, self.status))


def _rebuild_error(
    cls: type[RetrievalError], message: str, kind: RetrievalErrorKind, status: int | None
) -> RetrievalError:
    error = cls.__new__(cls)
    RetrievalError.__init__(error, message, kind=kind, status=status)
    return error


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
