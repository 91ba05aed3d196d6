"""Settings of the retrieval server: where it listens, what it accepts and how it batches.

:class:`ServerConfig` holds the host and port, the per-request caps (batch size, query length,
``k``, body size), the micro-batching knobs and the connection timeouts, and checks them when
built; :func:`is_loopback` tells whether a host serves this machine only (``serve`` warns when
it does not). This module needs neither FastAPI nor uvicorn.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerConfig:
    """Where the server listens, what it accepts and how it batches."""

    host: str = "127.0.0.1"
    """Interface to bind. The default serves this machine only; ``0.0.0.0`` exposes the index
    to the network with no authentication (``serve`` warns loudly)."""

    port: int = 8000
    """TCP port; 0 picks a free one (printed at start)."""

    max_batch: int = 1024
    """Most queries in one request (413 above)."""

    max_query_chars: int = 4096
    """Longest query, in characters (413 above, naming the query's index)."""

    max_k: int = 100
    """Largest ``top_n`` / ``topk`` a request may ask for (400 above)."""

    default_k: int = 5
    """Passages per query when a request leaves ``top_n`` / ``topk`` out."""

    batch_window_ms: float = 0.0
    """How long the idle batcher waits after a request arrives for others to join its
    retriever call. 0 (default) adds no latency: requests that arrive while the retriever works
    still share the next call. A few ms helps retrievers with a high cost per call (a GPU
    encoder) under bursty traffic."""

    max_queries_per_call: int = 4096
    """Most queries the batcher sends to one ``search_batch`` call (requests are never split,
    so this must be at least ``max_batch``)."""

    max_pending_queries: int = 65536
    """Queries queued or in flight above which new requests get 503 with ``Retry-After``."""

    max_body_bytes: int = 16 * 1024 * 1024
    """Largest request body, counted as it arrives (413 above; chunked bodies too)."""

    max_connections: int = 1024
    """Most open connections; lowered at start to stay 64 below the open-file limit. Above it,
    a new connection evicts the one idle the longest."""

    idle_timeout_s: float = 5.0
    """Seconds a connection with no request in progress may stay silent (then it is closed)."""

    header_timeout_s: float = 10.0
    """Seconds from a request's first byte until its head (line and headers) must be complete."""

    body_timeout_s: float = 30.0
    """Seconds from a request's head until its whole body must have arrived (408 after)."""

    send_timeout_s: float = 30.0
    """Seconds a response may wait on a client that reads none of it (then the connection is
    aborted and the unsent response dropped)."""

    docs: bool = False
    """Serve FastAPI's ``/docs``, ``/redoc`` and ``/openapi.json`` (off: less to expose)."""

    def __post_init__(self) -> None:
        for name in (
            "max_batch",
            "max_query_chars",
            "max_k",
            "default_k",
            "max_queries_per_call",
            "max_pending_queries",
            "max_body_bytes",
            "max_connections",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"expected {name} >= 1 (int), got {value!r}")
        for name in ("idle_timeout_s", "header_timeout_s", "body_timeout_s", "send_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"expected {name} to be a number of seconds, got {value!r}")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"expected {name} > 0 (finite), got {value!r}")
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise ValueError(f"expected port to be an int, got {self.port!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"expected 0 <= port <= 65535, got {self.port}")
        if self.default_k > self.max_k:
            raise ValueError(f"expected default_k <= max_k, got {self.default_k} > {self.max_k}")
        if self.max_queries_per_call < self.max_batch:
            raise ValueError(
                "expected max_queries_per_call >= max_batch, got "
                f"{self.max_queries_per_call} < {self.max_batch}"
            )
        if self.max_pending_queries < self.max_batch:
            raise ValueError(
                "expected max_pending_queries >= max_batch, got "
                f"{self.max_pending_queries} < {self.max_batch}"
            )
        if not self.batch_window_ms >= 0:
            raise ValueError(f"expected batch_window_ms >= 0, got {self.batch_window_ms!r}")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, ``127.0.0.0/8``, ``::1``).

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


_EXPOSED_WARNING = """
======================================================================
WARNING: searchqa serve is binding to {host!r}, which is not a loopback
address: anyone who can reach this machine on port {port} can query the
index, with no authentication and no TLS. Bind to 127.0.0.1 (the default)
unless the network is trusted or a proxy in front authenticates.
======================================================================
"""
