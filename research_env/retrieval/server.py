r"""A retrieval server: one index shared by many rollout workers over HTTP.

``create_app(retriever, ServerConfig(...))`` wraps any :class:`~research_env.retrieval.Retriever`
in a FastAPI app that speaks the request shapes of the two anchors, so their rollout code can
point at it unchanged, and :func:`serve` runs it with uvicorn (``searchqa serve`` on the
command line). This module is the only one in the package that imports FastAPI; ``import
research_env`` never loads it.

Wire formats (read from the anchors' servers; a document is ``{"id", "contents"}`` with
FlashRAG's ``contents = '"Title"\ntext'``):

* **ReSearch** (a FlashRAG server):

  - ``POST /search {"query": str, "top_n": int, "return_score": bool}`` → ``[doc, ...]``, or
    ``[[doc, ...], [score, ...]]`` with ``return_score``;
  - ``POST /batch_search {"query": [str, ...], "top_n": int, "return_score": bool}`` →
    ``[[doc, ...], ...]`` (one list per query), or ``[[[doc, ...], ...], [[score, ...], ...]]``;
  - ``GET /health`` → ``{"status": "healthy", "retrievers": {"total", "available"}, ...}``
    (we add the retriever's name, the limits and batching counters).

* **Search-R1**: ``POST /retrieve {"queries": [str, ...], "topk": int, "return_scores": bool}``
  → ``{"result": [[{"document": doc, "score": float}, ...], ...]}``, or
  ``{"result": [[doc, ...], ...]}`` without scores.

``top_n`` / ``topk`` may be left out (``ServerConfig.default_k`` applies). Empty queries are
allowed and return no documents (the in-process retrievers do the same).

Limits, each answered with a 4xx whose ``detail`` says what came and what is allowed:

* more than ``max_batch`` queries in one request → **413**;
* a query longer than ``max_query_chars`` → **413** naming the query's index and length;
* ``k`` above ``max_k`` → **400**; a body above ``max_body_bytes`` → **413**;
* a malformed body (wrong types, missing field, ``k < 1``) → **422** (FastAPI's validation).

A :class:`~research_env.retrieval.RetrievalError` raised by the retriever becomes **503**
``{"detail": "retrieval failed: ..."}``; a full queue becomes 503 with ``Retry-After``; any other
exception 500 with its type and message. Clients should retry 5xx and not 4xx
(:class:`~research_env.retrieval.remote.RemoteRetriever` does).

Micro-batching: every request is queued; one background task takes all queued requests (up to
``max_queries_per_call`` queries), groups them by ``k``, drops duplicate queries and calls
``retriever.search_batch`` once per group **in a worker thread**, so the event loop keeps
accepting requests (and answering ``/health``) while the index works — the complaint of ReCall
PR #39, where a synchronous retriever call blocked the whole server. Requests that arrive during
a retriever call form the next batch; an idle batcher can also wait ``batch_window_ms`` after
the first request for others to join (0 by default: no added latency). One retriever call runs
at a time, so retrievers need not be thread-safe.

Simplified on purpose: one retriever per process (no pool of index copies, as FlashRAG's
``--num_retriever`` offers) and no authentication — bind to loopback (the default) or put the
server behind something that authenticates.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from research_env.data.types import Passage
from research_env.retrieval.base import RetrievalError, Retriever

logger = logging.getLogger(__name__)


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
    """Largest request body by its ``Content-Length`` (413 above)."""

    def __post_init__(self) -> None:
        for name in (
            "max_batch",
            "max_query_chars",
            "max_k",
            "default_k",
            "max_queries_per_call",
            "max_pending_queries",
            "max_body_bytes",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"expected {name} >= 1 (int), got {value!r}")
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


# ----------------------------------------------------------------------------- batching
class ServerOverloaded(RuntimeError):
    """The batcher's queue is full; the request should be retried later."""


@dataclass
class BatchStats:
    """Counters of the batcher since the server started (reported by ``/health``)."""

    requests: int = 0
    """Requests answered or failed."""

    queries: int = 0
    """Queries in those requests."""

    retriever_calls: int = 0
    """``search_batch`` calls made (fewer than ``requests`` when batching merges them)."""

    retriever_queries: int = 0
    """Queries sent to the retriever (duplicates within a call are sent once)."""

    largest_call: int = 0
    """Most queries sent in one call."""


@dataclass
class _Job:
    queries: list[str]
    k: int
    future: asyncio.Future[list[list[Passage]]]


class MicroBatcher:
    """Merge concurrent requests into few ``search_batch`` calls, run off the event loop.

    Args:
        retriever: The index to query.
        config: ``batch_window_ms``, ``max_queries_per_call`` and ``max_pending_queries`` apply.
    """

    def __init__(self, retriever: Retriever, config: ServerConfig) -> None:
        self.retriever = retriever
        self.config = config
        self.stats = BatchStats()
        self._jobs: deque[_Job] = deque()
        self._pending = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="searchqa-retriever")

    @property
    def pending(self) -> int:
        """Queries queued or in flight."""
        return self._pending

    async def search(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        """Queue ``queries`` for the next retriever call and wait for their passages.

        Raises:
            RetrievalError: Raised by the retriever for the call this request joined.
            ServerOverloaded: When ``max_pending_queries`` would be exceeded.
        """
        if not queries:
            return []
        wakeup = self._start()
        if self._pending + len(queries) > self.config.max_pending_queries:
            raise ServerOverloaded(
                f"server overloaded: {self._pending} queries pending "
                f"(max_pending_queries={self.config.max_pending_queries}); retry later"
            )
        future: asyncio.Future[list[list[Passage]]] = asyncio.get_running_loop().create_future()
        self._jobs.append(_Job(list(queries), k, future))
        self._pending += len(queries)
        wakeup.set()
        return await future

    def _start(self) -> asyncio.Event:
        if self._wakeup is None or self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop(self._wakeup))
        return self._wakeup

    async def close(self) -> None:
        """Stop the batcher; queued requests fail with ``RetrievalError``."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._jobs:
            job = self._jobs.popleft()
            if not job.future.done():
                job.future.set_exception(RetrievalError("the retrieval server is shutting down"))
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _loop(self, wakeup: asyncio.Event) -> None:
        window = self.config.batch_window_ms / 1000.0
        while True:
            await wakeup.wait()
            wakeup.clear()
            if not self._jobs:
                continue
            if window > 0 and self._pending < self.config.max_queries_per_call:
                await asyncio.sleep(window)  # let concurrent requests join this call
            while self._jobs:  # requests that queued during a call form the next batch
                await self._run(self._take())

    def _take(self) -> list[_Job]:
        jobs: list[_Job] = []
        size = 0
        while self._jobs:
            job = self._jobs[0]
            if job.future.done():  # the client went away
                self._jobs.popleft()
                self._pending -= len(job.queries)
                continue
            if jobs and size + len(job.queries) > self.config.max_queries_per_call:
                break
            jobs.append(self._jobs.popleft())
            size += len(job.queries)
        return jobs

    async def _run(self, jobs: list[_Job]) -> None:
        groups: dict[int, list[_Job]] = {}
        for job in jobs:
            groups.setdefault(job.k, []).append(job)
        loop = asyncio.get_running_loop()
        try:
            for k, group in groups.items():
                unique = list(dict.fromkeys(q for job in group for q in job.queries))
                try:
                    results = await loop.run_in_executor(
                        self._executor, self.retriever.search_batch, unique, k
                    )
                    if len(results) != len(unique):
                        raise RetrievalError(
                            f"{type(self.retriever).__name__}.search_batch returned "
                            f"{len(results)} result lists for {len(unique)} queries"
                        )
                except Exception as e:  # RetrievalError -> 503, anything else -> 500
                    for job in group:
                        if not job.future.done():
                            job.future.set_exception(e)
                    continue
                finally:
                    self.stats.retriever_calls += 1
                    self.stats.retriever_queries += len(unique)
                    self.stats.largest_call = max(self.stats.largest_call, len(unique))
                by_query = dict(zip(unique, results))
                for job in group:
                    if not job.future.done():
                        job.future.set_result([by_query[q] for q in job.queries])
        finally:
            for job in jobs:
                self._pending -= len(job.queries)
                self.stats.requests += 1
                self.stats.queries += len(job.queries)


# ----------------------------------------------------------------------------- requests
class ResearchSearchRequest(BaseModel):
    """ReSearch ``POST /search``: one query."""

    query: str
    top_n: int | None = Field(default=None, ge=1)
    return_score: bool = False


class ResearchBatchRequest(BaseModel):
    """ReSearch ``POST /batch_search``: many queries."""

    query: list[str]
    top_n: int | None = Field(default=None, ge=1)
    return_score: bool = False


class SearchR1Request(BaseModel):
    """Search-R1 ``POST /retrieve``: many queries."""

    queries: list[str]
    topk: int | None = Field(default=None, ge=1)
    return_scores: bool = False


def _doc(p: Passage) -> dict[str, str]:
    return {"id": p.id, "contents": p.contents}


def _check(config: ServerConfig, queries: Sequence[str], k: int | None, k_name: str) -> int:
    """Apply the caps to a request; return its ``k``."""
    if len(queries) > config.max_batch:
        raise HTTPException(
            413,
            f"batch of {len(queries)} queries exceeds max_batch={config.max_batch}; "
            "split it into smaller requests",
        )
    for i, q in enumerate(queries):
        if len(q) > config.max_query_chars:
            raise HTTPException(
                413,
                f"query {i} has {len(q)} characters; the limit is "
                f"max_query_chars={config.max_query_chars}",
            )
    if k is None:
        return config.default_k
    if k > config.max_k:
        raise HTTPException(400, f"{k_name}={k} exceeds the server's max_k={config.max_k}")
    return k


class _BodyLimit:
    """Refuse a request whose ``Content-Length`` exceeds ``max_bytes`` before reading it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                    response = JSONResponse(
                        {
                            "detail": f"request body of {int(value)} bytes exceeds "
                            f"max_body_bytes={self.max_bytes}"
                        },
                        status_code=413,
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


# ---------------------------------------------------------------------------------- app
def create_app(retriever: Retriever, config: ServerConfig | None = None) -> FastAPI:
    """Return a FastAPI app serving ``retriever`` with the ReSearch and Search-R1 endpoints.

    Args:
        retriever: Any :class:`~research_env.retrieval.Retriever`; it is called from one worker
            thread, one batch at a time.
        config: Caps and batching (``host``/``port`` are used by :func:`serve`, not here).

    Returns:
        The app; its batcher is ``app.state.batcher`` (counters in ``.stats``).
    """
    config = config or ServerConfig()
    batcher = MicroBatcher(retriever, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await batcher.close()

    app = FastAPI(
        title="research-env retrieval server",
        description="ReSearch (/search, /batch_search) and Search-R1 (/retrieve) endpoints.",
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.config = config
    app.add_middleware(_BodyLimit, max_bytes=config.max_body_bytes)

    async def retrieve(queries: Sequence[str], k: int) -> list[list[Passage]]:
        try:
            return await batcher.search(queries, k)
        except RetrievalError as e:
            raise HTTPException(503, f"retrieval failed: {e}") from e
        except ServerOverloaded as e:
            raise HTTPException(503, str(e), headers={"Retry-After": "1"}) from e
        except Exception as e:
            logger.exception("retriever %s failed", type(retriever).__name__)
            raise HTTPException(500, f"retriever failed: {type(e).__name__}: {e}") from e

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "healthy",
            "retriever": type(retriever).__name__,
            "retrievers": {"total": 1, "available": 0 if batcher.pending else 1},
            "pending_queries": batcher.pending,
            "limits": {
                "max_batch": config.max_batch,
                "max_query_chars": config.max_query_chars,
                "max_k": config.max_k,
                "default_k": config.default_k,
                "max_body_bytes": config.max_body_bytes,
            },
            "stats": asdict(batcher.stats),
        }

    @app.post("/search")
    async def search(request: ResearchSearchRequest) -> JSONResponse:
        k = _check(config, [request.query], request.top_n, "top_n")
        [hits] = await retrieve([request.query], k)
        docs = [_doc(p) for p in hits]
        if request.return_score:
            return JSONResponse([docs, [p.score for p in hits]])
        return JSONResponse(docs)

    @app.post("/batch_search")
    async def batch_search(request: ResearchBatchRequest) -> JSONResponse:
        k = _check(config, request.query, request.top_n, "top_n")
        results = await retrieve(request.query, k)
        docs = [[_doc(p) for p in hits] for hits in results]
        if request.return_score:
            return JSONResponse([docs, [[p.score for p in hits] for hits in results]])
        return JSONResponse(docs)

    @app.post("/retrieve")
    async def retrieve_searchr1(request: SearchR1Request) -> JSONResponse:
        k = _check(config, request.queries, request.topk, "topk")
        results = await retrieve(request.queries, k)
        if request.return_scores:
            out: list[list[Any]] = [
                [{"document": _doc(p), "score": p.score} for p in hits] for hits in results
            ]
        else:
            out = [[_doc(p) for p in hits] for hits in results]
        return JSONResponse({"result": out})

    return app


def bind_socket(host: str, port: int) -> socket.socket:
    """Return a TCP socket bound to ``(host, port)`` (port 0: a free one), ready for uvicorn.

    The socket is created with ``IPPROTO_TCP`` as its protocol: asyncio sets ``TCP_NODELAY`` on
    accepted connections only then, and without it every response on a kept-alive connection
    waits ~40 ms for a delayed ACK (Nagle). uvicorn's own ``Config.bind_socket`` uses protocol 0.

    Raises:
        OSError: If the address cannot be resolved or bound (e.g. the port is taken).
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


_EXPOSED_WARNING = """
======================================================================
WARNING: searchqa serve is binding to {host!r}, which is not a loopback
address: anyone who can reach this machine on port {port} can query the
index, with no authentication and no TLS. Bind to 127.0.0.1 (the default)
unless the network is trusted or a proxy in front authenticates.
======================================================================
"""


def serve(
    retriever: Retriever,
    config: ServerConfig | None = None,
    *,
    log_level: str = "info",
    access_log: bool = False,
    sock: socket.socket | None = None,
) -> None:
    """Serve ``retriever`` with uvicorn until interrupted (blocking).

    Args:
        retriever: The index to serve.
        config: Host, port, caps and batching.
        log_level: uvicorn's log level (``"warning"`` to keep quiet).
        access_log: Log every request (costly at high request rates).
        sock: A socket already bound with :func:`bind_socket` (``searchqa serve`` binds before
            loading a large index, so a taken port fails fast); default: bind ``config``'s.
    """
    import uvicorn

    config = config or ServerConfig()
    if not is_loopback(config.host):
        print(_EXPOSED_WARNING.format(host=config.host, port=config.port), file=sys.stderr)
    uv_config = uvicorn.Config(
        create_app(retriever, config),
        host=config.host,
        port=config.port,
        log_level=log_level,
        access_log=access_log,
    )
    if sock is None:
        sock = bind_socket(config.host, config.port)  # bound now, so port 0 can be reported
    port = sock.getsockname()[1]
    host = f"[{config.host}]" if ":" in config.host else config.host
    print(
        f"searchqa serve: {type(retriever).__name__} at http://{host}:{port} — "
        "POST /search, /batch_search (ReSearch), /retrieve (Search-R1); GET /health",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.Server(uv_config).run(sockets=[sock])


class BackgroundServer:
    """Serve a retriever from a background thread of this process (tests, notebooks).

    Args:
        retriever: The index to serve.
        config: As for :func:`serve`; ``port=0`` (a free port) suits tests.
        log_level: uvicorn's log level.

    Example::

        with BackgroundServer(retriever, ServerConfig(port=0)) as server:
            remote = RemoteRetriever(server.url)
    """

    def __init__(
        self,
        retriever: Retriever,
        config: ServerConfig | None = None,
        *,
        log_level: str = "warning",
    ) -> None:
        import uvicorn

        self.config = config or ServerConfig()
        self.app = create_app(retriever, self.config)
        self._uvicorn = uvicorn.Config(
            self.app, host=self.config.host, port=self.config.port, log_level=log_level
        )
        self._server = uvicorn.Server(self._uvicorn)
        self._thread: threading.Thread | None = None
        self.url = ""
        """The base URL, set by :meth:`start`."""

    def start(self, timeout_s: float = 10.0) -> str:
        """Bind, start serving and return the base URL once the server accepts requests.

        Raises:
            RuntimeError: If the server did not start within ``timeout_s``.
        """
        sock = bind_socket(self.config.host, self.config.port)
        host, port = sock.getsockname()[:2]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the retrieval server did not start on {self.url}")
            time.sleep(0.01)
        return self.url

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the server to exit and wait for its thread."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
