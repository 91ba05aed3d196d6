r"""A retrieval server: one index shared by many rollout workers over HTTP.

``create_app(retriever, ServerConfig(...))`` wraps any :class:`~research_env.retrieval.Retriever`
in a FastAPI app that speaks the request shapes of the two anchors, so their rollout code can
point at it unchanged, and :func:`serve` runs it with uvicorn (``searchqa serve`` on the
command line). This module and its helpers are the only ones in the package that import
FastAPI; ``import research_env`` never loads them. Settings and host checks are in
:mod:`~research_env.retrieval.server_config`, request models, caps and response encoding in
:mod:`~research_env.retrieval.server_wire`.

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
* ``k`` above ``max_k`` → **400**;
* a body above ``max_body_bytes`` → **413**, counted as the bytes arrive (chunked bodies too);
  a body not complete within ``body_timeout_s`` → **408**;
* a malformed body (wrong types, missing field, ``k < 1``, NaN or infinite ``k``; ``k`` must
  be a JSON integer and the score flags JSON booleans) → **422**
  with FastAPI's list of errors, each input echoed only as short JSON-safe text.

Connections (:mod:`research_env.retrieval.server_connections`): a connection idle for
``idle_timeout_s`` is closed, a request head must be complete ``header_timeout_s`` after its
first byte, a client that reads none of a response for ``send_timeout_s`` is cut off, and
above ``max_connections`` (lowered to fit the open-file limit) a new connection evicts the
longest-idle one, so ``/health`` keeps answering however many clients sit idle.

A :class:`~research_env.retrieval.RetrievalError` raised by the retriever becomes **503**
``{"detail": "retrieval failed: ..."}``; a full queue becomes 503 with ``Retry-After``; any other
exception 500 with its type and message. Clients should retry 5xx and not 4xx
(:class:`~research_env.retrieval.remote.RemoteRetriever` does).

Micro-batching (:mod:`research_env.retrieval.batching`): concurrent requests share few
``retriever.search_batch`` calls, run in a worker thread, so the event loop keeps accepting
requests (and answering ``/health``) while the index works — the complaint of ReCall PR #39,
where a synchronous retriever call blocked the whole server. Responses are JSON-encoded in a
worker thread too, one query's row at a time, so a large answer does not stall the loop either.

``/docs``, ``/redoc`` and ``/openapi.json`` are off unless ``ServerConfig(docs=True)``.

Simplified on purpose: one retriever per process (no pool of index copies, as FlashRAG's
``--num_retriever`` offers) and no authentication — bind to loopback (the default) or put the
server behind something that authenticates.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from research_env.data.types import Passage
from research_env.retrieval.base import RetrievalError, Retriever
from research_env.retrieval.batching import BatchStats, MicroBatcher, ServerOverloaded
from research_env.retrieval.server_config import _EXPOSED_WARNING, ServerConfig, is_loopback
from research_env.retrieval.server_connections import (
    ACCEPT_BATCH,
    ConnectionLimits,
    ConnectionStats,
    effective_max_connections,
    guarded_protocol,
    guarded_server,
)
from research_env.retrieval.server_limits import BodyLimit
from research_env.retrieval.server_wire import (
    ResearchBatchRequest,
    ResearchSearchRequest,
    SearchR1Request,
    _check,
    _render_research,
    _render_searchr1,
    _validation_error,
)

__all__ = [
    "BackgroundServer",
    "BatchStats",
    "MicroBatcher",
    "ServerConfig",
    "ServerOverloaded",
    "bind_socket",
    "create_app",
    "is_loopback",
    "serve",
    "uvicorn_config",
]

logger = logging.getLogger(__name__)

_INLINE_PASSAGES = 64  # smaller responses are encoded on the loop (cheaper than a thread hop)


# ---------------------------------------------------------------------------------- app
def create_app(
    retriever: Retriever,
    config: ServerConfig | None = None,
    *,
    connections: tuple[ConnectionLimits, ConnectionStats] | None = None,
) -> FastAPI:
    """Return a FastAPI app serving ``retriever`` with the ReSearch and Search-R1 endpoints.

    Args:
        retriever: Any :class:`~research_env.retrieval.Retriever`; it is called from one worker
            thread, one batch at a time.
        config: Caps and batching (``host``/``port`` and the connection limits are used by
            :func:`serve`, not here).
        connections: The connection limits and counters of the server running the app, for
            ``/health`` to report (:func:`serve` passes them).

    Returns:
        The app; its batcher is ``app.state.batcher`` (counters in ``.stats``), the connection
        counters ``app.state.connections`` (``None`` without ``connections``).
    """
    config = config or ServerConfig()
    batcher = MicroBatcher(retriever, config)
    encoder = ThreadPoolExecutor(2, thread_name_prefix="searchqa-encode")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await batcher.close()
        encoder.shutdown(wait=False, cancel_futures=True)

    hidden: dict[str, Any] = {} if config.docs else {"docs_url": None, "redoc_url": None}
    app = FastAPI(
        title="research-env retrieval server",
        description="ReSearch (/search, /batch_search) and Search-R1 (/retrieve) endpoints.",
        lifespan=lifespan,
        openapi_url="/openapi.json" if config.docs else None,
        **hidden,
    )
    app.state.batcher = batcher
    app.state.config = config
    app.state.connections = connections[1] if connections is not None else None
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(
        BodyLimit,
        max_bytes=config.max_body_bytes,
        body_timeout_s=config.body_timeout_s,
    )

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

    async def respond(
        results: list[list[Passage]], render: Callable[..., bytes], *args: bool
    ) -> Response:
        if sum(len(hits) for hits in results) <= _INLINE_PASSAGES:
            body = render(results, *args)
        else:
            body = await asyncio.get_running_loop().run_in_executor(encoder, render, results, *args)
        return Response(body, media_type="application/json")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        out: dict[str, Any] = {
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
                "body_timeout_s": config.body_timeout_s,
            },
            "stats": asdict(batcher.stats),
        }
        if connections is not None:
            limits, stats = connections
            out["limits"].update(asdict(limits))
            out["connections"] = asdict(stats)
        return out

    @app.post("/search")
    async def search(request: ResearchSearchRequest) -> Response:
        k = _check(config, [request.query], request.top_n, "top_n")
        results = await retrieve([request.query], k)
        return await respond(results, _render_research, request.return_score, True)

    @app.post("/batch_search")
    async def batch_search(request: ResearchBatchRequest) -> Response:
        k = _check(config, request.query, request.top_n, "top_n")
        results = await retrieve(request.query, k)
        return await respond(results, _render_research, request.return_score, False)

    @app.post("/retrieve")
    async def retrieve_searchr1(request: SearchR1Request) -> Response:
        k = _check(config, request.queries, request.topk, "topk")
        results = await retrieve(request.queries, k)
        return await respond(results, _render_searchr1, request.return_scores)

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


def uvicorn_config(
    retriever: Retriever,
    config: ServerConfig,
    *,
    log_level: str = "info",
    access_log: bool = False,
) -> Any:
    """Return the ``uvicorn.Config`` that serves ``retriever`` under ``config``.

    The app of :func:`create_app`, spoken over h11 with the connection limits of ``config``
    (idle / header timeouts; the connection cap, lowered to fit the open-file limit).
    """
    import uvicorn

    limits = ConnectionLimits(
        idle_timeout_s=config.idle_timeout_s,
        header_timeout_s=config.header_timeout_s,
        send_timeout_s=config.send_timeout_s,
        max_connections=effective_max_connections(config.max_connections),
    )
    protocol, stats = guarded_protocol(limits)
    return uvicorn.Config(
        create_app(retriever, config, connections=(limits, stats)),
        host=config.host,
        port=config.port,
        log_level=log_level,
        access_log=access_log,
        http=protocol,
        timeout_keep_alive=max(1, math.ceil(config.idle_timeout_s)),
        backlog=ACCEPT_BATCH,
    )


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
    config = config or ServerConfig()
    if not is_loopback(config.host):
        print(_EXPOSED_WARNING.format(host=config.host, port=config.port), file=sys.stderr)
    uv_config = uvicorn_config(retriever, config, log_level=log_level, access_log=access_log)
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
    # The process is the server's: hand the GIL over more often (default 5 ms), so the event
    # loop answers small requests while worker threads search and encode large ones.
    sys.setswitchinterval(0.001)
    guarded_server(uv_config).run(sockets=[sock])


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

        self.config = config or ServerConfig()
        self._uvicorn = uvicorn_config(retriever, self.config, log_level=log_level)
        self.app: FastAPI = self._uvicorn.app
        self._server = guarded_server(self._uvicorn)
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
