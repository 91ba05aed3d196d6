"""The shared retry loop: what is retried, when it stops, what the failure says."""

from __future__ import annotations

import random
from collections.abc import Callable

import httpx
import pytest

from research_env.http_retry import Backoff, GaveUp, send_with_retries


def _answers(*statuses: int) -> tuple[list[float], Callable[[float], httpx.Response]]:
    seen: list[float] = []
    queue = list(statuses)

    def send(left: float) -> httpx.Response:
        seen.append(left)
        return httpx.Response(queue.pop(0), text="busy")

    return seen, send


def test_retried_statuses_then_the_first_other_answer_is_returned() -> None:
    seen, send = _answers(503, 429, 408, 404)
    response = send_with_retries(send, Backoff(retries=5, backoff_s=0.0))
    assert response.status_code == 404  # a 4xx other than 408 / 429 is the caller's to read
    assert len(seen) == 4


def test_gave_up_names_the_last_failure_and_the_attempts() -> None:
    _, send = _answers(500, 502, 503)
    with pytest.raises(GaveUp) as info:
        send_with_retries(send, Backoff(retries=2, backoff_s=0.0))
    assert str(info.value) == "HTTP 503: busy (gave up after 3 attempts)"
    assert info.value.kind == "server" and info.value.status == 503


def test_connection_errors_are_retried_and_reported() -> None:
    calls = 0

    def send(left: float) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("refused")

    with pytest.raises(GaveUp, match=r"ConnectError: refused \(gave up after 2 attempts\)") as info:
        send_with_retries(send, Backoff(retries=1, backoff_s=0.0))
    assert calls == 2 and info.value.kind == "connection" and info.value.status is None


def test_total_timeout_stops_before_a_wait_that_would_pass_it() -> None:
    seen, send = _answers(503, 503, 503, 503)
    backoff = Backoff(retries=3, backoff_s=5.0, total_timeout_s=1.0)
    with pytest.raises(GaveUp, match=r"gave up after 1 attempt, .* total_timeout_s=1.0 spent"):
        send_with_retries(send, backoff)
    assert len(seen) == 1 and 0 < seen[0] <= 1.0  # send is told how long it has left


def test_delays_double_up_to_the_cap_and_jitter_stays_in_half_to_full() -> None:
    plain = Backoff(retries=5, backoff_s=0.5, max_backoff_s=1.5)
    assert [plain.delay(i) for i in range(1, 5)] == [0.5, 1.0, 1.5, 1.5]
    jittered = Backoff(retries=5, backoff_s=1.0, jitter=True)
    rng = random.Random(0)
    assert all(0.5 <= jittered.delay(1, rng) <= 1.0 for _ in range(100))
