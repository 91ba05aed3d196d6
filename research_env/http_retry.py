"""One retry loop for the HTTP clients here (the remote retriever, the LLM judge).

Connection errors, timeouts and answers that a retry may fix (every 5xx, 408, 429) are retried
with exponential backoff: ``backoff_s`` before the first retry, doubled before each further
one, capped at ``max_backoff_s``, optionally drawn from ``[delay / 2, delay]`` so that many
workers do not retry in step. ``total_timeout_s`` bounds a whole call, waits included. Any other
answer, 2xx or 4xx, is the caller's to read. What still fails raises :class:`GaveUp`, which
says why in words the caller puts in its own error.

httpx is imported on first use, so this module imports with the env's own dependencies only.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import httpx

RETRIED_STATUS = frozenset({408, 429})
"""Statuses retried besides every 5xx."""

FailureKind = Literal["timeout", "connection", "server"]
"""Why the last attempt failed: no answer in time, no connection, or a retried status."""


@dataclass(frozen=True)
class Backoff:
    """How often and how patiently to retry."""

    retries: int
    """Retries after the first attempt (0: one attempt)."""

    backoff_s: float
    """Delay before the first retry; doubled before each further one."""

    max_backoff_s: float = math.inf
    """Cap on one delay."""

    jitter: bool = False
    """Draw each delay uniformly from ``[delay / 2, delay]``."""

    total_timeout_s: float | None = None
    """Bound on one whole call, attempts and waits included (``None``: none)."""

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """The wait before retry number ``retry`` (1 for the first)."""
        delay = min(self.backoff_s * 2.0 ** (retry - 1), self.max_backoff_s)
        return delay * (rng or random).uniform(0.5, 1.0) if self.jitter else delay


class GaveUp(Exception):
    """Every attempt failed (or the total timeout ran out first)."""

    def __init__(self, failure: str, kind: FailureKind, status: int | None, why: str) -> None:
        super().__init__(f"{failure} ({why})")
        self.failure = failure
        """The last attempt's failure, e.g. ``"HTTP 503: busy"`` or ``"ConnectError: ..."``."""
        self.kind: FailureKind = kind
        """What kind of failure the last one was."""
        self.status = status
        """The last attempt's HTTP status (``None``: no answer)."""
        self.why = why
        """``"gave up after N attempts"``, and the total timeout when that cut it short."""


def send_with_retries(
    send: Callable[[float], httpx.Response],
    backoff: Backoff,
    *,
    detail: Callable[[httpx.Response], str] = lambda r: r.text[:200],
    rng: random.Random | None = None,
) -> httpx.Response:
    """Call ``send`` until it returns an answer that is not retried.

    Args:
        send: Makes one attempt; receives the seconds left of ``total_timeout_s``
            (``math.inf`` without one) to bound its own timeout.
        backoff: The retry policy.
        detail: A short text of a retried answer's body, for the failure message.
        rng: The jitter's random source.

    Returns:
        The first response whose status is neither 5xx nor in :data:`RETRIED_STATUS`.

    Raises:
        GaveUp: When the attempts (or the total timeout) ran out.
    """
    import httpx

    attempts = backoff.retries + 1
    start = time.monotonic()
    total = backoff.total_timeout_s
    deadline = math.inf if total is None else start + total
    failure, made = "", 0
    kind: FailureKind = "connection"
    status: int | None = None
    for attempt in range(attempts):
        if attempt:
            delay = backoff.delay(attempt, rng)
            if time.monotonic() + delay >= deadline:
                break
            time.sleep(delay)
        left = deadline - time.monotonic()
        if left <= 0:
            break
        made += 1
        try:
            response = send(left)
        except httpx.RequestError as e:  # connection refused / reset, timeouts, ...
            failure = f"{type(e).__name__}: {e}".rstrip(": ")
            kind = "timeout" if isinstance(e, httpx.TimeoutException) else "connection"
            status = None
            continue
        status = response.status_code
        if status >= 500 or status in RETRIED_STATUS:
            failure, kind = f"HTTP {status}: {detail(response)}", "server"
            continue
        return response
    why = f"gave up after {made} attempt{'s' if made != 1 else ''}"
    if made < attempts:
        why += f", {time.monotonic() - start:.1f} s of total_timeout_s={total} spent"
    raise GaveUp(failure, kind, status, why)
