"""The retrieval server under hostile clients (issue 15): body caps, memory, timeouts,
connection cap, malformed input, and off-loop encoding.

Real ``searchqa serve`` processes (memory is measured as the server process's RSS from /proc)
or real uvicorn servers in a thread, on 127.0.0.1, driven through raw sockets where the HTTP
client would hide the behaviour (chunked bodies, idle or slow connections). One file past
~400 lines: each hostile client needs its own set-up, and together they are the server's threat
model, read in one place.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import select
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_process import (
    address as address_of,
)
from server_process import (
    connect,
    read_until_closed,
    rss_mb,
    start_serve,
    stop,
    write_corpus,
)

from research_env.data.types import Passage
from research_env.retrieval import BM25Retriever
from research_env.retrieval.server import BackgroundServer, ServerConfig

CORPUS = [
    Passage("peru/capital", "Peru — Capital", "name: Lima"),
    Passage("peru/currency", "Peru — Currency", "the sol"),
    Passage("japan/capital", "Japan — Capital", "name: Tokyo"),
    Passage("chile/capital", "Chile — Capital", "name: Santiago"),
    Passage("kenya/peak", "Kenya — Highest point", "Mount Kenya"),
]


def strict_json(text: str) -> Any:
    """``json.loads`` that refuses NaN and Infinity, as strict JSON parsers do."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def bm25() -> BM25Retriever:
    return BM25Retriever(CORPUS, persist=False)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.jsonl", CORPUS)


def peru_ok(url: str) -> bool:
    r = httpx.post(f"{url}/retrieve", json={"queries": ["capital of Peru"], "topk": 1}, timeout=120)
    return r.status_code == 200 and r.json()["result"][0][0]["id"] == "peru/capital"


# ------------------------------------------------------------------ 1. chunked bodies
def send_chunked(url: str, path: str, total_bytes: int, chunk: int = 65536) -> tuple[int, bytes]:
    """POST a chunked body of up to ``total_bytes`` (a JSON string that never ends), stopping
    as soon as the server answers. Return the bytes sent and the server's answer."""
    sock = connect(url)
    sock.setblocking(False)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    piece = b'{"queries": ["' + b"a" * (chunk - 14)
    frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    pending, sent, answer = head + frame, 0, b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock] if pending else [], [], 1.0)
            if readable:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    break
                if not data:
                    break
                answer += data
                if b"\r\n\r\n" in answer:
                    head_part, _, body = answer.partition(b"\r\n\r\n")
                    length = [
                        int(line.split(b":")[1])
                        for line in head_part.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ]
                    if length and len(body) >= length[0]:
                        break
                continue
            if writable and pending:
                try:
                    n = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    pending = b""
                    continue
                pending = pending[n:]
                sent += n
                if not pending and sent < total_bytes:
                    pending = frame
                elif not pending and sent >= total_bytes:
                    pending = b""  # never send the closing chunk: wait for the answer
    finally:
        sock.close()
    return sent, answer


def test_a_chunked_body_is_cut_off_at_the_cap_with_server_memory_flat(corpus_file, tmp_path):
    cap = 1024 * 1024
    proc, url = start_serve(
        ["--corpus", str(corpus_file), "--max-body-bytes", str(cap)], tmp_path / "log"
    )
    try:
        assert peru_ok(url)
        before = rss_mb(proc.pid)
        sent, answer = send_chunked(url, "/retrieve", total_bytes=96 * 1024 * 1024)
        grown = rss_mb(proc.pid) - before
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 413 Request Entity Too Large", answer[:300]
        detail = strict_json(rest.partition(b"\r\n\r\n")[2].decode())["detail"]
        assert f"exceeds max_body_bytes={cap}" in detail
        assert b"connection: close" in rest.lower()
        assert sent < 48 * 1024 * 1024, sent  # the server stopped reading near the cap
        assert grown < 48, f"server RSS grew by {grown:.0f} MiB"  # 96 MiB were offered
        assert peru_ok(url)  # and it still answers correctly
    finally:
        stop(proc)


# --------------------------------------------------- 2. client words and server memory
def test_distinct_long_words_do_not_grow_server_memory(corpus_file, tmp_path):
    proc, url = start_serve(["--corpus", str(corpus_file)], tmp_path / "log")
    rng = random.Random(0)
    try:
        with httpx.Client(timeout=60) as client:
            assert peru_ok(url)
            before = rss_mb(proc.pid)
            for _ in range(24):  # 24 x 1024 distinct words of 4,000 characters: 96 MiB of text
                words = [rng.randbytes(2000).hex() for _ in range(1023)]
                words.append(rng.randbytes(1999).hex() + "é")  # and the non-ASCII path
                r = client.post(f"{url}/retrieve", json={"queries": words, "topk": 1})
                assert r.status_code == 200 and r.json()["result"][0] == []
            grown = rss_mb(proc.pid) - before
        print(f"server RSS grew by {grown:.0f} MiB")
        assert grown < 100, f"server RSS grew by {grown:.0f} MiB"  # caching all: ~200 MiB
        assert peru_ok(url)
    finally:
        stop(proc)


# ------------------------------------------------------------------ what already held
def test_concurrent_clients_get_exactly_the_sequential_answers(bm25):
    """A short version of the issue's load test: 16 concurrent clients, every answer compared
    with the in-process index's (the full 32 x 20 s run is benchmarks/server_load.py)."""
    words = ["capital", "Peru", "Japan", "Chile", "Kenya", "highest", "point", "currency", "sol"]
    rng = random.Random(0)
    batches = [
        [" ".join(rng.sample(words, 2)) for _ in range(rng.randint(1, 3))] for _ in range(40)
    ]
    expected = {}
    for i, batch in enumerate(batches):
        hits = bm25.search_batch(batch, 3)
        expected[i] = [[{"id": p.id, "contents": p.contents} for p in row] for row in hits]
    outcomes: list[str] = []

    async def one_client(seed: int, url: str) -> None:
        pick = random.Random(seed)
        async with httpx.AsyncClient(timeout=30) as ac:
            for _ in range(25):
                i = pick.randrange(len(batches))
                r = await ac.post(f"{url}/retrieve", json={"queries": batches[i], "topk": 3})
                ok = r.status_code == 200 and r.json() == {"result": expected[i]}
                outcomes.append("ok" if ok else f"{r.status_code}: {r.text[:100]}")

    async def run(url: str) -> None:
        await asyncio.gather(*(one_client(seed, url) for seed in range(16)))

    with BackgroundServer(bm25, ServerConfig(port=0)) as srv:
        asyncio.run(run(srv.url))
    assert outcomes == ["ok"] * 400, [o for o in outcomes if o != "ok"][:5]


# --------------------------------------------------------- 8. NaN / infinite k, 422s
@pytest.fixture(scope="module")
def server(bm25: BM25Retriever) -> Iterator[BackgroundServer]:
    config = ServerConfig(port=0, max_batch=8, max_query_chars=64, max_k=10)
    with BackgroundServer(bm25, config) as running:
        yield running


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e999"])
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/search", '{"query": "capital of Peru", "top_n": %s}'),
        ("/batch_search", '{"query": ["capital of Peru"], "top_n": %s}'),
        ("/retrieve", '{"queries": ["capital of Peru"], "topk": %s}'),
        ("/retrieve", '{"queries": [%s]}'),
    ],
)
def test_non_finite_numbers_get_a_json_422_naming_the_field(server, path, body, constant):
    r = httpx.post(
        f"{server.url}{path}",
        content=(body % constant).encode(),
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 422, r.text
    [error] = strict_json(r.text)["detail"]  # encodable: no NaN/Infinity in the answer
    field = body.split('"')[-2] if "%s}" in body else "queries"
    assert error["loc"][:2] == ["body", field]
    assert error["input"] in ("nan", "inf", "-inf")
    assert peru_ok(server.url)


def test_a_large_malformed_body_is_not_echoed_back_whole(server):
    r = httpx.post(f"{server.url}/retrieve", json={"queries": "x" * 100_000}, timeout=10)
    assert r.status_code == 422
    assert len(r.content) < 2000, len(r.content)
    assert strict_json(r.text)["detail"][0]["loc"] == ["body", "queries"]


MALFORMED: list[tuple[str, bytes, str]] = [
    ("/search", b"", "application/json"),
    ("/search", b"{", "application/json"),
    ("/search", b"[]", "application/json"),
    ("/search", b"null", "application/json"),
    ("/search", b'{"query": null}', "application/json"),
    ("/search", b'{"query": 5}', "application/json"),
    ("/search", b'{"query": ["a"]}', "application/json"),
    ("/search", b'{"top_n": 3}', "application/json"),
    ("/search", b'{"query": "a", "top_n": 0}', "application/json"),
    ("/search", b'{"query": "a", "top_n": -5}', "application/json"),
    ("/search", b'{"query": "a", "top_n": 2.5}', "application/json"),
    ("/search", b'{"query": "a", "top_n": 11}', "application/json"),
    ("/search", b'{"query": "a", "top_n": 1' + b"0" * 4000 + b"}", "application/json"),
    ("/search", b'{"query": "a", "top_n": 1' + b"0" * 5000 + b"}", "application/json"),
    ("/search", b'{"query": "a", "return_score": "maybe"}', "application/json"),
    ("/search", b'{"query": "' + b"x" * 65 + b'"}', "application/json"),
    ("/search", b'{"query": "\xff\xfe"}', "application/json"),
    ("/search", b'{"query": ["\\ud800"]}', "application/json"),
    ("/search", b'{"query": "a"}', "text/plain"),
    ("/batch_search", b'{"query": "a"}', "application/json"),
    ("/batch_search", b'{"query": [1, 2]}', "application/json"),
    ("/batch_search", b'{"query": [null]}', "application/json"),
    ("/batch_search", b'{"query": [["a"]]}', "application/json"),
    ("/batch_search", json.dumps({"query": ["a"] * 9}).encode(), "application/json"),
    ("/batch_search", b'{"query": ["a"], "top_n": {}}', "application/json"),
    ("/batch_search", b"[" * 100_000 + b"]" * 100_000, "application/json"),
    ("/batch_search", b'{"query": ' + b"[" * 5000 + b"]" * 5000 + b"}", "application/json"),
    ("/retrieve", b'{"queries": {"a": 1}}', "application/json"),
    ("/retrieve", b'{"queries": ["a"], "topk": true}', "application/json"),
    ("/retrieve", b'{"queries": ["a"], "topk": []}', "application/json"),
    ("/retrieve", b'{"queries": ["a"], "return_scores": 7}', "application/json"),
    ("/retrieve", b'{"queries": ["ok", "' + b"y" * 65 + b'"]}', "application/json"),
    ("/retrieve", b'{"queries": ["a"], "topk": 1e3}', "application/json"),
    ("/retrieve", b'{"queries": ["a"]} trailing', "application/json"),
]


def test_a_hundred_malformed_requests_get_4xx_and_the_server_stays_correct(server, bm25):
    """Each malformed request gets a 4xx with a JSON detail (never a 5xx), and a good query
    right after it is answered exactly as the in-process index answers it."""
    expected = [{"id": p.id, "contents": p.contents} for p in bm25.search("capital of Peru", 2)]
    cases = (MALFORMED * 3)[:100]
    good_query = {"query": "capital of Peru", "top_n": 2}
    with httpx.Client(timeout=30) as client:
        for path, body, kind in cases:
            r = client.post(f"{server.url}{path}", content=body, headers={"content-type": kind})
            assert 400 <= r.status_code < 500, (path, body[:80], r.status_code, r.text[:200])
            assert "detail" in strict_json(r.text), (path, body[:80])
            good = client.post(f"{server.url}/search", json=good_query)
            assert good.json() == expected


# ------------------------------------------------- 9. timeouts and the connection cap
@pytest.fixture(scope="module")
def impatient(bm25: BM25Retriever) -> Iterator[BackgroundServer]:
    config = ServerConfig(port=0, idle_timeout_s=0.5, header_timeout_s=1.0, body_timeout_s=1.0)
    with BackgroundServer(bm25, config) as running:
        yield running


def test_a_silent_connection_is_closed_after_the_idle_timeout(impatient):
    with connect(impatient.url) as sock:
        data, closed = read_until_closed(sock, timeout_s=5.0)
    assert closed and data == b""
    assert impatient.app.state.connections.idle_closed >= 1


def test_a_request_head_sent_a_byte_at_a_time_is_cut_off(impatient):
    """Slowloris: bytes keep coming, but the head is not complete within header_timeout_s."""
    head = b"POST /search HTTP/1.1\r\nHost: test\r\nX-Padding: " + b"a" * 1000
    with connect(impatient.url) as sock:
        start = time.monotonic()
        closed = False
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            _, closed = read_until_closed(sock, timeout_s=0.1)
            if closed or time.monotonic() - start > 6:
                break
    assert closed, "the server kept a dawdling request head open"
    assert impatient.app.state.connections.header_timeouts >= 1


def test_a_kept_alive_connection_cannot_dawdle_over_its_next_head(impatient):
    """After one answered request, trickling the next head's bytes does not keep it open."""
    request = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"
    with connect(impatient.url) as sock:
        sock.sendall(request)
        first, _ = read_until_closed(sock, timeout_s=0.3)
        assert first.startswith(b"HTTP/1.1 200")
        closed, start = False, time.monotonic()
        while not closed and time.monotonic() - start < 6:
            try:
                sock.sendall(b"G")  # never completes a request line
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            _, closed = read_until_closed(sock, timeout_s=0.2)
    assert closed, "a kept-alive connection trickling bytes stayed open"


def test_a_body_that_stops_arriving_gets_408(impatient):
    head = b"POST /search HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    with connect(impatient.url) as sock:
        sock.sendall(head + b"Content-Length: 100\r\n\r\n" + b'{"query": "')
        data, closed = read_until_closed(sock, timeout_s=5.0)
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert b"body_timeout_s=1.0" in data and closed


def test_a_client_that_stops_reading_is_cut_off(tmp_path):
    """A large response to a client that reads none of it: the connection is aborted after
    send_timeout_s and the unsent bytes dropped, instead of held until the client reads."""
    text = "word " + "filler " * 400  # ~2.8 KB passages
    corpus = [Passage(f"p{i}", f"Title {i}", text) for i in range(100)]
    config = ServerConfig(port=0, send_timeout_s=0.5, max_k=100)
    with BackgroundServer(BM25Retriever(corpus, persist=False), config) as srv:
        body = json.dumps({"queries": [f"word {i}" for i in range(100)], "topk": 100})
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(address_of(srv.url))
        sock.sendall(
            b"POST /retrieve HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body.encode()
        )
        time.sleep(3.0)  # read nothing: the ~30 MB answer cannot all be sent
        data, closed = read_until_closed(sock, timeout_s=10.0)
        sock.close()
        stats = srv.app.state.connections
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    assert closed and len(rest) < length / 2, (len(rest), length)
    assert stats.send_timeouts == 1


def raise_fd_limit(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def test_health_answers_with_300_idle_connections_and_256_open_files(corpus_file, tmp_path):
    """The issue's case: 300 connections that send nothing, a server allowed 256 open files.
    The idle timeout is set long, so only the connection cap can keep /health answering."""

    def limit_files() -> None:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        )

    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 512:
        pytest.skip("needs a hard open-file limit of 512 for 300 client sockets")
    raise_fd_limit(1024)  # this test process holds the 300 client sockets
    args = ["--corpus", str(corpus_file), "--idle-timeout", "120", "--header-timeout", "120"]
    proc, url = start_serve(args, tmp_path / "log", preexec_fn=limit_files)
    idle: list[socket.socket] = []
    try:
        for _ in range(300):
            idle.append(connect(url))
        time.sleep(0.5)  # let the server accept them all
        r = httpx.get(f"{url}/health", timeout=20)
        assert r.status_code == 200
        health = r.json()
        assert health["limits"]["max_connections"] == 256 - 64
        assert health["connections"]["evicted"] >= 300 - 192
        assert health["connections"]["open"] <= 192
        assert peru_ok(url)
        closed = sum(read_until_closed(s, timeout_s=0.01)[1] for s in idle[:100])
        assert closed >= 100 - 5  # the oldest idle connections were the ones evicted
    finally:
        for s in idle:
            s.close()
        stop(proc)


class SlowIndex:
    """A real index that takes ``delay_s`` per call (a heavy index under load)."""

    def __init__(self, inner: BM25Retriever, delay_s: float) -> None:
        self.inner, self.delay_s = inner, delay_s

    def search(self, query: str, k: int) -> list[Passage]:
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        time.sleep(self.delay_s)
        return self.inner.search_batch(queries, k)


def test_when_every_connection_is_busy_a_new_one_gets_503(bm25):
    config = ServerConfig(port=0, max_connections=2)
    with BackgroundServer(SlowIndex(bm25, 1.0), config) as srv:
        busy = [
            threading.Thread(
                target=httpx.post,
                args=(f"{srv.url}/search",),
                kwargs={"json": {"query": "capital"}, "timeout": 10},
            )
            for _ in range(2)
        ]
        for t in busy:
            t.start()
        while srv.app.state.batcher.pending < 1:
            time.sleep(0.01)
        time.sleep(0.1)
        with connect(srv.url) as sock:
            data, closed = read_until_closed(sock, timeout_s=3.0)
        for t in busy:
            t.join()
        assert peru_ok(srv.url)  # once they are done, new connections are served again
    assert data.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in data and closed
    assert srv.app.state.connections.rejected >= 1


# ------------------------------------------------------ 12. encoding off the loop, docs
def test_large_responses_are_json_encoded_off_the_event_loop(bm25):
    """The event loop thread never runs json.dumps over a large response's passages."""
    calls: list[tuple[int, int]] = []  # (thread, passages in the encoded object)
    code = json.dumps.__code__

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is code:
            text = repr(frame.f_locals.get("obj"))[:1_000_000]
            calls.append((threading.get_ident(), text.count("'contents'")))

    threading.setprofile(profile)  # threads started from now on: the server's
    try:
        with BackgroundServer(bm25, ServerConfig(port=0, max_batch=64)) as srv:
            assert srv._thread is not None
            loop_thread = srv._thread.ident
            queries = [f"capital {i}" for i in range(40)]  # 40 x 4 passages: encoded off-loop
            r = httpx.post(f"{srv.url}/retrieve", json={"queries": queries, "topk": 4}, timeout=30)
            assert r.status_code == 200 and len(r.json()["result"]) == 40
            small = httpx.post(f"{srv.url}/search", json={"query": "capital", "top_n": 2})
            assert small.status_code == 200  # small ones may be encoded inline
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    big = sum(len(hits) for hits in bm25.search_batch(queries, 4))
    on_loop = sum(n for thread, n in calls if thread == loop_thread)
    off_loop = sum(n for thread, n in calls if thread != loop_thread)
    assert big > 64  # above the inline limit
    assert off_loop == big and on_loop <= 2, (big, on_loop, off_loop)


def test_docs_and_openapi_are_off_by_default(bm25):
    with BackgroundServer(bm25, ServerConfig(port=0)) as srv:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert httpx.get(f"{srv.url}{path}").status_code == 404, path
    with BackgroundServer(bm25, ServerConfig(port=0, docs=True)) as srv:
        assert httpx.get(f"{srv.url}/openapi.json").json()["paths"].keys() >= {"/retrieve"}
        assert httpx.get(f"{srv.url}/docs").status_code == 200
