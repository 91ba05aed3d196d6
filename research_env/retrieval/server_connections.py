"""Connection limits for the retrieval server: idle and header timeouts, a connection cap.

uvicorn closes a kept-alive connection that stays idle after a response, but a connection that
never sends a request, or sends its head a byte at a time, stays open for ever; enough of them
use up the process's file descriptors and the server stops accepting (``/health`` included).
:func:`guarded_protocol` returns uvicorn's h11 protocol with three rules added:

* **idle timeout**: a connection with no request in progress (fresh, or after a response) is
  closed after ``idle_timeout_s`` without a byte;
* **header timeout**: once the first byte of a request arrives, its head (request line and
  headers) must be complete within ``header_timeout_s``;
* **send timeout**: a client that reads nothing of a response for ``send_timeout_s`` while the
  server has more to send is cut off (the connection is aborted and the unsent response
  dropped, instead of held until the client reads);
* **connection cap**: above ``max_connections`` open connections, a new one evicts the
  connection idle the longest (it has no request in flight; its client reconnects when it has
  one); when every connection has a request in flight, the new one gets **503** with
  ``Retry-After`` and is closed.

The request *body* (its size and how long it may take) is limited in the ASGI app, by
:mod:`research_env.retrieval.server_limits`. h11 itself caps a request head at 16 KiB.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

FD_RESERVE = 64
"""File descriptors kept free for everything but client connections (index files, logs, ...)."""

ACCEPT_BATCH = 8
"""Connections asyncio accepts per wake-up (its ``backlog`` argument). A connection is made,
and the cap applied to it, a few loop iterations after its accept, and an evicted one's file is
closed an iteration later: with small batches the files in that pipeline stay well inside
:data:`FD_RESERVE`, so a burst of connections never exhausts them (which would pause accepting
for a second)."""

LISTEN_BACKLOG = 2048
"""The kernel's queue of connections not yet accepted (set again after asyncio's ``listen``)."""


def fd_limit() -> int | None:
    """The soft limit on open files of this process, or ``None`` where it cannot be read."""
    if sys.platform == "win32":
        return None
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def effective_max_connections(requested: int) -> int:
    """``requested``, lowered to leave :data:`FD_RESERVE` descriptors below the open-file limit.

    >>> effective_max_connections(10)
    10
    """
    limit = fd_limit()
    if limit is None:
        return requested
    return max(1, min(requested, limit - FD_RESERVE))


@dataclass(frozen=True)
class ConnectionLimits:
    """How long connections may idle or dawdle, and how many may be open."""

    idle_timeout_s: float = 5.0
    """Seconds a connection with no request in progress may stay silent before it is closed."""

    header_timeout_s: float = 10.0
    """Seconds from a request's first byte until its head must be complete."""

    send_timeout_s: float = 30.0
    """Seconds a response may wait on a client that reads none of it."""

    max_connections: int = 1024
    """Most open connections (already lowered to fit the open-file limit)."""


@dataclass
class ConnectionStats:
    """What the guard did since the server started (reported by ``/health``)."""

    open: int = 0
    """Connections open now."""

    accepted: int = 0
    """Connections accepted."""

    idle_closed: int = 0
    """Connections closed by the idle timeout."""

    header_timeouts: int = 0
    """Connections closed because a request head did not arrive in time."""

    send_timeouts: int = 0
    """Connections aborted because the client stopped reading a response."""

    evicted: int = 0
    """Idle connections closed to make room for a new one (the cap)."""

    rejected: int = 0
    """New connections refused with 503 because every open one had a request in flight."""


_REJECT_BODY = json.dumps(
    {"detail": "server at its connection limit with every connection busy; retry later"}
).encode()
_REJECT = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"retry-after: 1\r\nconnection: close\r\ncontent-length: "
    + str(len(_REJECT_BODY)).encode()
    + b"\r\n\r\n"
    + _REJECT_BODY
)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with idle / header timeouts and a connection cap.

    Use :func:`guarded_protocol` to get a subclass bound to one server's limits and stats.
    """

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    stats: ClassVar[ConnectionStats] = ConnectionStats()

    _guard_timer: asyncio.TimerHandle | None = None
    _write_timer: asyncio.TimerHandle | None = None
    _awaiting_head = True  # no request in progress: evictable, under the idle / header timer
    _head_started = False
    _idle_since = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Register the connection, start its idle timer and apply the cap."""
        super().connection_made(transport)
        self.stats.accepted += 1
        self.stats.open += 1
        self._wait_for_request()
        self._apply_cap()

    def data_received(self, data: bytes) -> None:
        """Feed h11; the first byte of a request starts its header timer."""
        if self._awaiting_head and not self._head_started:
            self._head_started = True
            self._arm(self.limits.header_timeout_s)
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle:  # a complete head: the app now owns the request
            self._awaiting_head = False
            self._disarm()

    def on_response_complete(self) -> None:
        """After a response the connection is idle again (unless a pipelined request began)."""
        cycle = self.cycle
        super().on_response_complete()
        if self.cycle is cycle and not self.transport.is_closing():
            self._wait_for_request()

    def pause_writing(self) -> None:
        """The client is not reading fast enough: start the send timer."""
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(
                self.limits.send_timeout_s, self._write_stalled
            )

    def resume_writing(self) -> None:
        """The client reads again: stop the send timer."""
        super().resume_writing()
        self._stop_write_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the timers and unregister the connection."""
        self._disarm()
        self._stop_write_timer()
        self.stats.open -= 1
        super().connection_lost(exc)

    # ------------------------------------------------------------------------ internals
    def _wait_for_request(self) -> None:
        self._awaiting_head = True
        self._head_started = False
        self._idle_since = self.loop.time()
        self._arm(self.limits.idle_timeout_s)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._guard_timer = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._guard_timer is not None:
            self._guard_timer.cancel()
            self._guard_timer = None

    def _stop_write_timer(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _write_stalled(self) -> None:
        self._write_timer = None
        self.stats.send_timeouts += 1
        self.transport.abort()  # close() would keep the unsent response until it is read

    def _expire(self) -> None:
        self._guard_timer = None
        if self._awaiting_head and not self.transport.is_closing():
            if self._head_started:
                self.stats.header_timeouts += 1
            else:
                self.stats.idle_closed += 1
            self.transport.close()

    def _apply_cap(self) -> None:
        live = [c for c in self.connections if not c.transport.is_closing()]
        if len(live) <= self.limits.max_connections:
            return
        idle = [c for c in live if c is not self and getattr(c, "_awaiting_head", False)]
        if idle:
            oldest: Any = min(idle, key=lambda c: getattr(c, "_idle_since", 0.0))
            self.stats.evicted += 1
            oldest.transport.close()
            return
        self.stats.rejected += 1
        self._awaiting_head = False  # closing: nothing to time out
        self._disarm()
        self.transport.write(_REJECT)
        self.transport.close()


def guarded_protocol(limits: ConnectionLimits) -> tuple[type[GuardedH11Protocol], ConnectionStats]:
    """A :class:`GuardedH11Protocol` subclass bound to ``limits``, and the stats it keeps.

    Pass the class as ``uvicorn.Config(http=...)``.
    """
    stats = ConnectionStats()
    protocol = type(
        "SearchQAH11Protocol", (GuardedH11Protocol,), {"limits": limits, "stats": stats}
    )
    return protocol, stats


def guarded_server(config: Any) -> Any:
    """Return a ``uvicorn.Server`` for ``config`` that keeps a long kernel queue.

    It accepts at most :data:`ACCEPT_BATCH` connections per wake-up while the kernel queues up
    to :data:`LISTEN_BACKLOG`: ``config.backlog`` should be :data:`ACCEPT_BATCH` (asyncio passes
    it to ``listen`` too), and the server raises the kernel's queue once it listens.
    """

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[Any] | None = None) -> None:
            await super().startup(sockets)
            for sock in sockets or []:  # the sockets serve() and BackgroundServer bind
                sock.listen(LISTEN_BACKLOG)

    return _Server(config)
