"""RemoteRetriever against real servers: round trips, retries, failures, and the env on top."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import gymnasium as gym
import httpx
import pytest

import research_env  # noqa: F401  (registers SearchQA-v0)
from research_env.data.types import Passage, QAExample
from research_env.env import SearchQAEnv
from research_env.resolve import resolve_retriever
from research_env.retrieval import BM25Retriever, RemoteConfig, RemoteRetriever, RetrievalError
from research_env.retrieval.server import BackgroundServer, ServerConfig

CORPUS = [
    Passage("peru/capital", "Peru — Capital", "name: Lima"),
    Passage("peru/currency", "Peru — Currency", "the sol"),
    Passage("chile/capital", "Chile — Capital", "name: Santiago"),
    Passage("chile/currency", "Chile — Currency", "the peso"),
    Passage("kenya/capital", "Kenya — Capital", "name: Nairobi"),
    Passage("andes", 'The "Andes" — Notes', "a text\nwith\nthree lines"),
    Passage("notitle", "", "a passage about rivers without a title"),
]
QUERIES = ["capital of Peru", "currency of Chile", "Andes notes", "rivers", "nothing matches", ""]
EXAMPLES = [
    QAExample("q0", "What is the capital of Peru?", ["Lima"]),
    QAExample("q1", "What is the currency of Chile?", ["peso"]),
]


class FlakyIndex:
    """A real index behind a store that fails its first ``failures`` calls (then recovers)."""

    def __init__(self, inner: BM25Retriever, failures: int = 0, delay_s: float = 0.0) -> None:
        self.inner = inner
        self.failures = failures
        self.delay_s = delay_s
        self.calls = 0

    def search(self, query: str, k: int) -> list[Passage]:
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.calls <= self.failures:
            raise RetrievalError(f"store unavailable (call {self.calls})")
        return self.inner.search_batch(queries, k)


@pytest.fixture(scope="module")
def bm25() -> BM25Retriever:
    return BM25Retriever(CORPUS, persist=False)


@pytest.fixture(scope="module")
def server(bm25: BM25Retriever) -> Iterator[BackgroundServer]:
    with BackgroundServer(bm25, ServerConfig(port=0, max_query_chars=100)) as running:
        yield running


def fast(url: str, **kw: object) -> RemoteConfig:
    options: dict[str, object] = {"retries": 2, "backoff_s": 0.01, "timeout_s": 5.0}
    options.update(kw)
    return RemoteConfig(url=url, **options)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("protocol", ["research", "searchr1"])
def test_round_trip_equals_the_in_process_retriever(server, bm25, protocol):
    with RemoteRetriever(server.url, protocol=protocol) as remote:
        for query in QUERIES:
            assert remote.search(query, 3) == bm25.search(query, 3)
        assert remote.search_batch(QUERIES, 2) == bm25.search_batch(QUERIES, 2)
        assert remote.search_batch([], 2) == []
        andes = remote.search("Andes notes", 1)[0]
    assert andes == Passage(
        "andes", 'The "Andes" — Notes', "a text\nwith\nthree lines", andes.score
    )
    assert andes.score is not None and andes.score > 0


def test_one_http_request_per_search_batch(server):
    stats = server.app.state.batcher.stats
    with RemoteRetriever(server.url) as remote:
        before = stats.requests
        remote.search_batch(QUERIES, 2)
        assert stats.requests == before + 1
    with RemoteRetriever(fast(server.url, max_batch=4)) as remote:  # 6 queries, 4 per request
        before = stats.requests
        assert len(remote.search_batch(QUERIES, 2)) == 6
        assert stats.requests == before + 2


def test_env_resolves_remote_urls(server, bm25):
    env = gym.make("SearchQA-v0", dataset=EXAMPLES, retriever=f"remote:{server.url}", top_k=2)
    assert resolve_retriever(f"remote:{server.url}") is env.unwrapped.retriever  # shared pool
    r1 = resolve_retriever(f"remote+searchr1:{server.url}/")
    assert isinstance(r1, RemoteRetriever) and r1.config.protocol == "searchr1"
    env.reset(options={"index": 0})
    obs, _, _, _, info = env.step("<think>t</think><search>capital of Peru</search>")
    assert info["retrieved_ids"] == [p.id for p in bm25.search("capital of Peru", 2)]
    assert "name: Lima" in obs["observation"]
    with pytest.raises(ValueError, match="remote:<url>"):
        resolve_retriever("remot:http://x")
    with pytest.raises(ValueError, match="http:// or https://"):
        resolve_retriever("remote:127.0.0.1:8000")


def test_pickled_copy_opens_its_own_pool(server, bm25):
    remote = RemoteRetriever(fast(server.url, protocol="searchr1"))
    remote.search("rivers", 1)
    copy = pickle.loads(pickle.dumps(remote))
    assert copy.config == remote.config
    assert copy.search("rivers", 1) == bm25.search("rivers", 1)
    remote.close()
    copy.close()


# ------------------------------------------------------------------------------ failures
def test_4xx_is_not_retried_and_names_status_and_detail(server):
    remote = RemoteRetriever(fast(server.url, retries=3, backoff_s=1.0, jitter=False))
    start = time.perf_counter()
    with pytest.raises(RetrievalError) as err:
        remote.search_batch(["ok", "x" * 101], 2)
    assert time.perf_counter() - start < 1.0  # a retry would have slept 1 s first
    assert str(err.value) == (
        f"{server.url}/batch_search: HTTP 413 (not retried): "
        "query 1 has 101 characters; the limit is max_query_chars=100"
    )
    assert (err.value.kind, err.value.status) == ("rejected", 413)
    with pytest.raises(RetrievalError, match=r"HTTP 400 \(not retried\): top_n=500 exceeds"):
        remote.search("capital", 500)
    wrong_path = RemoteRetriever(fast(server.url + "/v1"))
    with pytest.raises(RetrievalError, match=r"/v1/search: HTTP 404 \(not retried\): Not Found"):
        wrong_path.search("capital", 1)


def test_5xx_is_retried_until_the_index_recovers(bm25):
    index = FlakyIndex(bm25, failures=2)
    with BackgroundServer(index, ServerConfig(port=0)) as srv:
        remote = RemoteRetriever(fast(srv.url, protocol="searchr1", retries=2))
        assert remote.search("capital of Peru", 1) == bm25.search("capital of Peru", 1)
        assert index.calls == 3
        index.failures, index.calls = 10, 0
        with pytest.raises(RetrievalError) as err:
            remote.search("capital of Peru", 1)
    assert str(err.value) == (
        f"{srv.url}/retrieve: HTTP 503: retrieval failed: store unavailable (call 3) "
        "(gave up after 3 attempts)"
    )
    assert (err.value.kind, err.value.status) == ("server", 503)


def test_timeouts_are_retried_then_reported(bm25):
    with BackgroundServer(FlakyIndex(bm25, delay_s=0.6), ServerConfig(port=0)) as srv:
        remote = RemoteRetriever(fast(srv.url, timeout_s=0.2, retries=1))
        with pytest.raises(RetrievalError, match=r"ReadTimeout.*gave up after 2 attempts"):
            remote.search("capital of Peru", 1)


def test_connection_refused_raises_after_retries():
    url = f"http://127.0.0.1:{free_port()}"
    remote = RemoteRetriever(fast(url, retries=2))
    with pytest.raises(RetrievalError) as err:
        remote.search_batch(["capital"], 1)
    message = str(err.value)
    assert message.startswith(f"{url}/batch_search: ConnectError")
    assert message.endswith("(gave up after 3 attempts)")
    assert err.value.kind == "connection"
    assert pickle.loads(pickle.dumps(err.value)).kind == "connection"  # across processes


class HungServer:
    """A real TCP server on 127.0.0.1 that accepts connections, reads, and never answers."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            self._accepted.append(conn)  # held open, never answered

    def __enter__(self) -> HungServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._accepted:
            conn.close()
        self._listener.close()


def test_a_hung_server_costs_a_call_at_most_its_total_budget():
    with HungServer() as hung:
        spec = f"{hung.url}?timeout_s=0.4&retries=20&backoff_s=0.01&total_timeout_s=1.5"
        remote = RemoteRetriever(spec)
        start = time.perf_counter()
        with pytest.raises(RetrievalError) as err:
            remote.search("capital of Peru", 1)
        elapsed = time.perf_counter() - start
    assert 1.0 <= elapsed < 4.0, elapsed  # 21 attempts x 0.4 s would be 8.4 s
    assert err.value.kind == "timeout"
    message = str(err.value)
    assert message.startswith(f"{hung.url}/search: ReadTimeout")
    assert "total_timeout_s=1.5 spent" in message


@pytest.mark.slow
def test_the_default_budget_bounds_a_hung_server_to_30_seconds():
    """The issue's case with the defaults: 4 attempts x 30 s (123 s) before; 30 s now."""
    with HungServer() as hung:
        start = time.perf_counter()
        with pytest.raises(RetrievalError) as err:
            RemoteRetriever(hung.url).search("capital of Peru", 1)
        elapsed = time.perf_counter() - start
    assert elapsed < 32, elapsed
    assert err.value.kind == "timeout"


def test_remote_spec_strings_carry_options():
    r = resolve_retriever("remote:http://127.0.0.1:1?timeout_s=2.5&retries=0&total_timeout_s=none")
    assert isinstance(r, RemoteRetriever)
    assert (r.config.url, r.config.timeout_s, r.config.retries) == ("http://127.0.0.1:1", 2.5, 0)
    assert r.config.total_timeout_s is None
    r1 = resolve_retriever("remote+searchr1:http://127.0.0.1:1/?jitter=false&max_batch=8")
    assert isinstance(r1, RemoteRetriever)
    assert (r1.config.protocol, r1.config.jitter, r1.config.max_batch) == ("searchr1", False, 8)
    with pytest.raises(ValueError, match="unknown option 'timeout'; expected one of timeout_s"):
        resolve_retriever("remote:http://127.0.0.1:1?timeout=5")
    with pytest.raises(ValueError, match="option retries='two': expected an integer"):
        resolve_retriever("remote:http://127.0.0.1:1?retries=two")
    with pytest.raises(ValueError, match="expected timeout_s > 0"):
        resolve_retriever("remote:http://127.0.0.1:1?timeout_s=0")
    with pytest.raises(ValueError, match="without '\\?'"):
        RemoteConfig(url="http://127.0.0.1:1?retries=1")


def test_the_env_reports_the_kind_of_a_retrieval_error(server):
    search = "<think>t</think><search>capital of Peru</search>"
    with HungServer() as hung:
        cases = {
            "timeout": f"{hung.url}?timeout_s=0.2&retries=0",
            "connection": f"http://127.0.0.1:{free_port()}?retries=0",
            "rejected": f"{server.url}/nowhere?retries=0",
        }
        for kind, url in cases.items():
            env = SearchQAEnv(dataset=EXAMPLES, retriever=RemoteRetriever(url), top_k=2)
            env.reset(options={"index": 0})
            _, _, _, _, info = env.step(search)
            assert info["retrieval_error_kind"] == kind, (kind, info["retrieval_error"])
            assert (
                isinstance(info["retrieval_error"], str)
                and url.split("?")[0] in (info["retrieval_error"])
            )
    env = SearchQAEnv(dataset=EXAMPLES, retriever=RemoteRetriever(server.url), top_k=2)
    env.reset(options={"index": 0})
    _, _, _, _, info = env.step(search)
    assert info["retrieval_error"] is None and info["retrieval_error_kind"] is None


def test_remote_config_checks_its_fields():
    with pytest.raises(ValueError, match="expected protocol in"):
        RemoteConfig(url="http://x", protocol="flashrag")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected retries >= 0"):
        RemoteConfig(url="http://x", retries=-1)
    with pytest.raises(TypeError, match="inside the RemoteConfig"):
        RemoteRetriever(RemoteConfig(url="http://x"), protocol="searchr1")
    assert RemoteConfig(url="http://x:1/").url == "http://x:1"


# --------------------------------------------------- a server killed under a running env
def start_cli(corpus: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "research_env.cli",
                "serve",
                "--corpus",
                str(corpus),
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise AssertionError(f"searchqa serve exited: {log.read_text()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"searchqa serve did not start: {log.read_text()}")


def test_env_survives_a_killed_server(tmp_path, bm25):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(json.dumps({"id": p.id, "contents": p.contents}) + "\n" for p in CORPUS)
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    remote = RemoteRetriever(fast(url, retries=2, backoff_s=0.05, timeout_s=2.0))
    env = SearchQAEnv(dataset=EXAMPLES, retriever=remote, top_k=2, max_turns=4)
    search = "<think>t</think><search>capital of Peru</search>"
    proc = start_cli(corpus, port, tmp_path / "log")
    try:
        env.reset(options={"index": 0})
        obs, _, _, _, info = env.step(search)
        assert info["retrieval_error"] is None
        assert info["retrieved_ids"] == [p.id for p in bm25.search("capital of Peru", 2)]

        proc.kill()  # kill -9: the server goes away mid-episode
        proc.wait(10)
        obs, reward, terminated, truncated, info = env.step(search)
        assert not terminated and not truncated and reward == 0.0
        assert info["retrieved_ids"] == []
        error = info["retrieval_error"]
        assert error.startswith(f"{url}/search: ConnectError")
        assert error.endswith("(gave up after 3 attempts)")
        assert info["retrieval_error_kind"] == "connection"
        assert obs["observation"].startswith(" <result>\n[retrieval error: ")
        assert "name: Lima" not in obs["observation"]  # no fake (or stale) passages

        obs, reward, terminated, _, info = env.step(
            "<think>t</think><answer>\\boxed{Lima}</answer>"
        )
        assert terminated and reward == 1.0 and info["retrieval_failed"] is True
        env.reset(options={"index": 1})  # the env keeps running
        _, _, _, _, info = env.step("<think>t</think><search>currency of Chile</search>")
        assert info["retrieval_error"] is not None

        proc = start_cli(corpus, port, tmp_path / "log")  # the server comes back
        _, _, _, _, info = env.step("<think>t</think><search>currency of Chile</search>")
        assert info["retrieval_error"] is None
        assert info["retrieved_ids"][0] == "chile/currency"
    finally:
        proc.terminate()
        proc.wait(10)
        remote.close()


def test_env_imports_without_fastapi_or_httpx():
    code = (
        "import sys, research_env, research_env.env, research_env.retrieval;"
        "from research_env.resolve import resolve_retriever;"
        "resolve_retriever('remote:http://127.0.0.1:1');"
        "bad = [m for m in ('fastapi', 'uvicorn', 'httpx', 'research_env.retrieval.server')"
        " if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
