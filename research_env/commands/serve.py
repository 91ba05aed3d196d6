"""``searchqa serve``: serve a retriever over HTTP for many rollout workers.

Examples::

    searchqa serve                                   # BM25 over the Factbook world, 127.0.0.1:8000
    searchqa serve --corpus wiki-18.jsonl --port 8001   # BM25 over a FlashRAG corpus
    searchqa serve --retriever bm25:rank_bm25 --max-batch 256

Clients: ``gym.make("SearchQA-v0", retriever="remote:http://127.0.0.1:8000")``, ReSearch's
rollout (``/batch_search``) or Search-R1's (``/retrieve``). Endpoints, caps and error codes are
described in :mod:`research_env.retrieval.server` and docs/retrieval.md.
"""

from __future__ import annotations

import argparse
import sys

from research_env.retrieval.base import Retriever


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``searchqa serve``."""
    what = parser.add_argument_group("what to serve")
    what.add_argument(
        "--retriever",
        default="bm25",
        help="retriever name as for gym.make(..., retriever=...): bm25, bm25:rank_bm25, ... "
        "(default: bm25 over the embedded Factbook world)",
    )
    what.add_argument(
        "--corpus",
        metavar="FILE",
        help="a FlashRAG / Search-R1 corpus (.jsonl or .jsonl.gz: {id, contents} or "
        "{id, title, text} per line) to index with BM25 instead of the Factbook world; "
        "--retriever then picks the backend (bm25 or bm25:rank_bm25)",
    )
    where = parser.add_argument_group("where to listen")
    where.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes the "
        "index to the network without authentication)",
    )
    where.add_argument("--port", type=int, default=8000, help="TCP port; 0 picks a free one")
    limits = parser.add_argument_group("limits and batching")
    limits.add_argument("--max-batch", type=int, default=1024, help="most queries per request")
    limits.add_argument(
        "--max-query-chars", type=int, default=4096, help="longest query, in characters"
    )
    limits.add_argument("--max-k", type=int, default=100, help="largest top_n / topk")
    limits.add_argument(
        "--default-k", type=int, default=5, help="passages per query when a request gives no k"
    )
    limits.add_argument(
        "--batch-window-ms",
        type=float,
        default=0.0,
        help="how long an idle server waits for concurrent requests to share a retriever call "
        "(default 0; requests that arrive during a call always share the next one)",
    )
    limits.add_argument(
        "--max-queries-per-call",
        type=int,
        default=4096,
        help="most queries in one search_batch call of the retriever",
    )
    guard = parser.add_argument_group("connections and bodies")
    guard.add_argument(
        "--max-body-bytes",
        type=int,
        default=16 * 1024 * 1024,
        help="largest request body, counted as it arrives (413 above; default 16 MiB)",
    )
    guard.add_argument(
        "--max-connections",
        type=int,
        default=1024,
        help="most open connections (lowered to fit the open-file limit); above it a new "
        "connection evicts the longest-idle one",
    )
    guard.add_argument(
        "--idle-timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="close a connection with no request in progress after S silent seconds",
    )
    guard.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="a request head must be complete S seconds after its first byte",
    )
    guard.add_argument(
        "--body-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="a request body must be complete S seconds after its head (408 after)",
    )
    guard.add_argument(
        "--send-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="cut off a client that reads none of a response for S seconds",
    )
    guard.add_argument(
        "--docs",
        action="store_true",
        help="serve FastAPI's /docs, /redoc and /openapi.json (off by default)",
    )
    logs = parser.add_argument_group("logging")
    logs.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn's log level",
    )
    logs.add_argument("--access-log", action="store_true", help="log every request")


def _build_retriever(args: argparse.Namespace) -> Retriever:
    from research_env.resolve import resolve_retriever

    if args.corpus is None:
        return resolve_retriever(args.retriever)
    from research_env.data.corpus import JsonlCorpus, load_corpus
    from research_env.retrieval.bm25 import BACKENDS, BM25Config, BM25Retriever

    kind, _, backend = args.retriever.partition(":")
    if kind != "bm25" or (backend and backend not in BACKENDS):
        raise ValueError(
            f"--corpus is indexed with BM25: expected --retriever bm25 or bm25:<backend> with a "
            f"backend in {BACKENDS}, got {args.retriever!r}"
        )
    # A plain .jsonl is read by offset (text stays on disk); a .jsonl.gz is loaded into memory.
    corpus = load_corpus(args.corpus) if args.corpus.endswith(".gz") else JsonlCorpus(args.corpus)
    print(f"searchqa serve: indexing {len(corpus):,} passages of {args.corpus}", file=sys.stderr)
    return BM25Retriever(corpus, BM25Config(backend=backend or "bm25s"))


def run(args: argparse.Namespace) -> int:
    """Build the retriever and serve it until interrupted; return the exit code."""
    try:
        from research_env.retrieval.server import ServerConfig, bind_socket, serve
    except ModuleNotFoundError as e:
        print(
            f"searchqa serve needs the server extra ({e.name} is missing): "
            "pip install 'research-env[server]'",
            file=sys.stderr,
        )
        return 1
    try:
        config = ServerConfig(
            host=args.host,
            port=args.port,
            max_batch=args.max_batch,
            max_query_chars=args.max_query_chars,
            max_k=args.max_k,
            default_k=args.default_k,
            batch_window_ms=args.batch_window_ms,
            max_queries_per_call=max(args.max_queries_per_call, args.max_batch),
            max_pending_queries=max(65536, args.max_batch),
            max_body_bytes=args.max_body_bytes,
            max_connections=args.max_connections,
            idle_timeout_s=args.idle_timeout,
            header_timeout_s=args.header_timeout,
            body_timeout_s=args.body_timeout,
            send_timeout_s=args.send_timeout,
            docs=args.docs,
        )
    except ValueError as e:
        print(f"searchqa serve: {e}", file=sys.stderr)
        return 2
    try:  # before loading the index, so a taken port fails fast
        sock = bind_socket(config.host, config.port)
    except OSError as e:
        print(f"searchqa serve: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    try:
        retriever = _build_retriever(args)
    except (ValueError, OSError) as e:
        sock.close()
        print(f"searchqa serve: {e}", file=sys.stderr)
        return 2
    serve(retriever, config, log_level=args.log_level, access_log=args.access_log, sock=sock)
    return 0
