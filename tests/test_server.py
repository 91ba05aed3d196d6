"""The retrieval server: real uvicorn on 127.0.0.1, a real BM25 index, real HTTP requests."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence

import httpx
import pytest
from server_process import start_serve, write_corpus

from research_env.data.types import Passage
from research_env.retrieval import BM25Retriever, RemoteRetriever, RetrievalError
from research_env.retrieval.server import BackgroundServer, ServerConfig

COUNTRIES = {
    "Peru": ("Lima", "sol", "Huascaran"),
    "Chile": ("Santiago", "peso", "Ojos del Salado"),
    "Kenya": ("Nairobi", "shilling", "Mount Kenya"),
    "Japan": ("Tokyo", "yen", "Mount Fuji"),
    "Norway": ("Oslo", "krone", "Galdhopiggen"),
    "Ghana": ("Accra", "cedi", "Mount Afadjato"),
}


def make_corpus() -> list[Passage]:
    corpus = []
    for country, (capital, currency, peak) in COUNTRIES.items():
        key = country.lower()
        corpus += [
            Passage(f"{key}/capital", f"{country} — Capital", f"name: {capital}"),
            Passage(f"{key}/currency", f"{country} — Currency", f"the {currency}"),
            Passage(f"{key}/peak", f"{country} — Highest point", f"{peak}\n(second line)"),
        ]
    # Titles and texts that FlashRAG's '"Title"\ntext' layout must carry through unchanged.
    corpus.append(Passage("quote", 'The "Andes" — Notes', "a text\nwith\nthree lines"))
    corpus.append(Passage("notitle", "", "a passage about rivers without a title"))
    return corpus


QUERIES = [
    "capital of Peru",
    "currency of Japan",
    "highest point of Kenya",
    "Andes notes",
    "rivers",
    "zzz unknown words",
    "",
]


class CountingRetriever:
    """A real retriever, wrapped to count the batched calls it receives (and optionally slowed
    down to stand for a heavy index)."""

    def __init__(self, inner: BM25Retriever, delay_s: float = 0.0) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.calls: list[tuple[int, int]] = []  # (number of queries, k)
        self._lock = threading.Lock()

    def search(self, query: str, k: int) -> list[Passage]:
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        with self._lock:
            self.calls.append((len(queries), k))
        if self.delay_s:
            time.sleep(self.delay_s)
        return self.inner.search_batch(queries, k)


class OfflineIndex:
    """A real index whose backing store can go offline: then it raises RetrievalError."""

    def __init__(self, inner: BM25Retriever) -> None:
        self.inner = inner
        self.offline = False

    def search(self, query: str, k: int) -> list[Passage]:
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        if self.offline:
            raise RetrievalError("index shard 3 is offline")
        return self.inner.search_batch(queries, k)


@pytest.fixture(scope="module")
def bm25() -> BM25Retriever:
    return BM25Retriever(make_corpus(), persist=False)


@pytest.fixture(scope="module")
def server(bm25: BM25Retriever) -> Iterator[BackgroundServer]:
    config = ServerConfig(port=0, max_batch=8, max_query_chars=64, max_k=10, default_k=3)
    with BackgroundServer(bm25, config) as running:
        yield running


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


def docs(passages: list[Passage]) -> list[dict[str, str]]:
    return [{"id": p.id, "contents": p.contents} for p in passages]


# ------------------------------------------------------------------------------ protocols
def test_research_search_returns_the_in_process_passages(server, client, bm25):
    for query in QUERIES:
        expected = bm25.search(query, 4)
        r = client.post(f"{server.url}/search", json={"query": query, "top_n": 4})
        assert r.status_code == 200
        assert r.json() == docs(expected)
        r = client.post(
            f"{server.url}/search", json={"query": query, "top_n": 4, "return_score": True}
        )
        assert r.json() == [docs(expected), [p.score for p in expected]]


def test_research_batch_search_returns_one_list_per_query(server, client, bm25):
    expected = bm25.search_batch(QUERIES, 2)
    r = client.post(f"{server.url}/batch_search", json={"query": QUERIES, "top_n": 2})
    assert r.json() == [docs(hits) for hits in expected]
    r = client.post(
        f"{server.url}/batch_search", json={"query": QUERIES, "top_n": 2, "return_score": True}
    )
    assert r.json() == [[docs(h) for h in expected], [[p.score for p in h] for h in expected]]


def test_searchr1_retrieve_with_and_without_scores(server, client, bm25):
    expected = bm25.search_batch(QUERIES, 3)
    body = {"queries": QUERIES, "topk": 3, "return_scores": True}
    r = client.post(f"{server.url}/retrieve", json=body)
    assert r.json() == {
        "result": [
            [{"document": d, "score": p.score} for d, p in zip(docs(h), h)] for h in expected
        ]
    }
    body["return_scores"] = False
    r = client.post(f"{server.url}/retrieve", json=body)
    assert r.json() == {"result": [docs(h) for h in expected]}
    first = r.json()["result"][0][0]["contents"]
    assert first == '"Peru — Capital"\nname: Lima'  # FlashRAG layout


def test_k_left_out_uses_default_k_and_health_reports_limits(server, client, bm25):
    r = client.post(f"{server.url}/retrieve", json={"queries": ["capital"]})
    assert len(r.json()["result"][0]) == 3 == server.config.default_k
    r = client.post(f"{server.url}/batch_search", json={"query": []})
    assert r.json() == []
    health = client.get(f"{server.url}/health").json()
    assert health["status"] == "healthy"
    assert health["retriever"] == "BM25Retriever"
    assert health["limits"]["max_batch"] == 8
    assert health["stats"]["retriever_calls"] >= 1


# ------------------------------------------------------------------------------- caps
def test_oversize_requests_get_clear_4xx(server, client):
    url = server.url
    r = client.post(f"{url}/batch_search", json={"query": ["a"] * 9})
    assert r.status_code == 413
    assert r.json()["detail"] == (
        "batch of 9 queries exceeds max_batch=8; split it into smaller requests"
    )
    r = client.post(f"{url}/retrieve", json={"queries": ["ok", "x" * 65]})
    assert r.status_code == 413
    assert r.json()["detail"] == "query 1 has 65 characters; the limit is max_query_chars=64"
    r = client.post(f"{url}/search", json={"query": "capital", "top_n": 11})
    assert r.status_code == 400
    assert r.json()["detail"] == "top_n=11 exceeds the server's max_k=10"
    r = client.post(f"{url}/retrieve", json={"queries": ["capital"], "topk": 50})
    assert r.status_code == 400 and "topk=50" in r.json()["detail"]
    r = client.post(f"{url}/search", json={"query": "capital", "top_n": 0})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "top_n"]
    r = client.post(f"{url}/batch_search", json={"query": "not a list"})
    assert r.status_code == 422
    r = client.post(
        f"{url}/retrieve", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422


def test_body_over_the_byte_cap_is_refused_before_parsing(bm25, client):
    config = ServerConfig(port=0, max_body_bytes=1000)
    with BackgroundServer(bm25, config) as srv:
        r = client.post(f"{srv.url}/retrieve", json={"queries": ["x" * 2000]})
        assert r.status_code == 413
        assert "exceeds max_body_bytes=1000" in r.json()["detail"]


def test_retrieval_error_becomes_503_and_the_server_recovers(bm25, client):
    index = OfflineIndex(bm25)
    with BackgroundServer(index, ServerConfig(port=0)) as srv:
        index.offline = True
        r = client.post(f"{srv.url}/batch_search", json={"query": ["capital of Peru"]})
        assert r.status_code == 503
        assert r.json() == {"detail": "retrieval failed: index shard 3 is offline"}
        index.offline = False
        r = client.post(f"{srv.url}/batch_search", json={"query": ["capital of Peru"]})
        assert r.status_code == 200 and r.json()[0][0]["id"] == "peru/capital"


# --------------------------------------------------------------------------- batching
def test_concurrent_requests_share_retriever_calls(bm25):
    counting = CountingRetriever(bm25)
    queries = [f"capital of {c}" for c in COUNTRIES] + [f"currency of {c}" for c in COUNTRIES]
    queries = (queries * 2)[:16]

    async def fire(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=10) as ac:
            return await asyncio.gather(
                *(
                    ac.post(f"{url}/search", json={"query": q, "top_n": 2, "return_score": True})
                    for q in queries
                )
            )

    with BackgroundServer(counting, ServerConfig(port=0, batch_window_ms=50)) as srv:
        responses = asyncio.run(fire(srv.url))
        stats = srv.app.state.batcher.stats
    for q, r in zip(queries, responses):
        expected = bm25.search(q, 2)
        assert r.json() == [docs(expected), [p.score for p in expected]]
    assert stats.requests == 16
    assert 1 <= len(counting.calls) < 16, counting.calls
    assert sum(n for n, _ in counting.calls) <= 12  # duplicate queries are sent once per call


def test_requests_with_different_k_are_grouped_and_answered_correctly(bm25):
    counting = CountingRetriever(bm25)

    async def fire(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=10) as ac:
            return await asyncio.gather(
                *(
                    ac.post(f"{url}/retrieve", json={"queries": [q], "topk": k})
                    for q in QUERIES
                    for k in (1, 4)
                )
            )

    with BackgroundServer(counting, ServerConfig(port=0, batch_window_ms=50)) as srv:
        responses = asyncio.run(fire(srv.url))
    pairs = [(q, k) for q in QUERIES for k in (1, 4)]
    for (q, k), r in zip(pairs, responses):
        assert r.json() == {"result": [docs(bm25.search(q, k))]}
    assert {k for _, k in counting.calls} == {1, 4}
    assert len(counting.calls) < len(pairs)


def test_a_slow_retriever_does_not_block_the_event_loop(bm25, client):
    slow = CountingRetriever(bm25, delay_s=1.0)
    with BackgroundServer(slow, ServerConfig(port=0)) as srv:
        result: dict[str, httpx.Response] = {}
        search = threading.Thread(
            target=lambda: result.setdefault(
                "r", client.post(f"{srv.url}/search", json={"query": "capital of Peru"})
            )
        )
        search.start()
        while not slow.calls:
            time.sleep(0.01)
        start = time.perf_counter()
        health = client.get(f"{srv.url}/health")
        health_s = time.perf_counter() - start
        search.join()
    assert health.status_code == 200
    assert health.json()["pending_queries"] == 1  # answered while the search was in flight
    assert health_s < 0.5, health_s
    assert result["r"].json()[0]["id"] == "peru/capital"


def test_a_full_queue_answers_503_with_retry_after(bm25, client):
    slow = CountingRetriever(bm25, delay_s=0.5)
    config = ServerConfig(port=0, max_batch=2, max_pending_queries=2)
    with BackgroundServer(slow, config) as srv:
        first = threading.Thread(
            target=lambda: client.post(f"{srv.url}/batch_search", json={"query": ["a", "b"]})
        )
        first.start()
        while not slow.calls:
            time.sleep(0.01)
        r = client.post(f"{srv.url}/search", json={"query": "capital"})
        first.join()
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert r.json()["detail"] == (
        "server overloaded: 2 queries pending (max_pending_queries=2); retry later"
    )


def test_server_config_checks_its_fields():
    with pytest.raises(ValueError, match="expected max_batch >= 1"):
        ServerConfig(max_batch=0)
    with pytest.raises(ValueError, match="default_k <= max_k"):
        ServerConfig(default_k=20, max_k=10)
    with pytest.raises(ValueError, match="max_queries_per_call >= max_batch"):
        ServerConfig(max_batch=100, max_queries_per_call=10)


# ------------------------------------------------------------------------ the command
def test_searchqa_serve_command_serves_a_flashrag_corpus(tmp_path, bm25):
    corpus = write_corpus(tmp_path / "corpus.jsonl", make_corpus())
    proc, url = start_serve(["--corpus", str(corpus), "--max-batch", "4"], tmp_path / "log")
    try:
        research = RemoteRetriever(url)
        searchr1 = RemoteRetriever(url, protocol="searchr1")
        # BM25Config() defaults differ from nothing here: same corpus, same default config.
        assert research.search_batch(QUERIES[:4], 3) == bm25.search_batch(QUERIES[:4], 3)
        assert searchr1.search("capital of Peru", 2) == bm25.search("capital of Peru", 2)
        r = httpx.post(f"{url}/retrieve", json={"queries": ["q"] * 5})
        assert r.status_code == 413 and "max_batch=4" in r.json()["detail"]
    finally:
        proc.terminate()
        proc.wait(10)
    log = (tmp_path / "log").read_text()
    assert f"indexing {len(make_corpus())} passages" in log
    assert "WARNING" not in log  # loopback: no exposure warning


def test_searchqa_serve_rejects_bad_arguments(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "research_env.cli", "serve", "--max-batch", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "expected max_batch >= 1 (int), got 0" in result.stderr
