"""The LLM judge against a real OpenAI-compatible HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from research_agents.eval.harness import run_suite, suite_protocol
from research_agents.eval.judge import JudgeConfig, JudgeError, LLMJudge
from research_agents.eval.suites import Entry, get_suite

from research_env.rewards import normalize_answer

ALIASES = {"jfk": "john f kennedy", "uk": "united kingdom"}


@dataclass
class ServerState:
    """What the fake model server saw and how it should misbehave."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    fail_first: int = 0
    """Answer this many requests with HTTP 503 first."""
    status: int = 200
    body: str | None = None
    """Send this raw body instead of a completion."""


def _grade(content: str) -> str:
    """A lenient grader: the prediction matches a gold answer after normalising and aliases."""
    golds = re.search(r"Gold answers: (.*)\n", content).group(1).split(" | ")  # type: ignore[union-attr]
    pred = re.search(r"Predicted answer: (.*)\n", content).group(1)  # type: ignore[union-attr]
    p = normalize_answer(pred)
    p = ALIASES.get(p, p)
    return "Yes." if any(normalize_answer(g) == p for g in golds) else "No, it is different."


def _handler(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append(payload)
            state.headers.append(dict(self.headers))
            if self.path != "/v1/chat/completions":
                return self._send(404, '{"error": "not found"}')
            if state.fail_first > 0:
                state.fail_first -= 1
                return self._send(503, '{"error": "busy"}')
            if state.body is not None:
                return self._send(state.status, state.body)
            reply = _grade(payload["messages"][-1]["content"])
            completion = {
                "id": "x",
                "object": "chat.completion",
                "model": payload["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply},
                        "finish_reason": "stop",
                    }
                ],
            }
            self._send(state.status, json.dumps(completion))

        def _send(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture()
def server() -> Iterator[tuple[str, ServerState]]:
    state = ServerState()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", state
    finally:
        httpd.shutdown()
        httpd.server_close()


def _judge(url: str, **kw: Any) -> LLMJudge:
    return LLMJudge(JudgeConfig(base_url=url, model="judge-model", backoff_s=0.0, **kw))


def test_verdicts_from_a_real_server(server: tuple[str, ServerState]) -> None:
    url, state = server
    with _judge(url) as judge:
        assert judge.judge("Who was president?", ["John F. Kennedy"], "JFK") is True
        assert judge.judge("Capital of Peru?", ["Lima"], "the Lima") is True
        assert judge.judge("Capital of Peru?", ["Lima"], "Cusco") is False
        assert judge.judge("Capital of Peru?", ["Lima"], None) is False  # no request
        assert judge.judge("Capital of Peru?", ["Lima"], "  ") is False  # no request
    assert len(state.requests) == 3
    sent = state.requests[0]
    assert sent["model"] == "judge-model" and sent["temperature"] == 0.0
    assert "Gold answers: John F. Kennedy" in sent["messages"][0]["content"]


def test_judge_records_in_order_with_threads(server: tuple[str, ServerState]) -> None:
    url, _ = server
    records = [
        {
            "question": f"q{i}",
            "golden_answers": ["Lima", "Lima, Peru"],
            "prediction": "Lima" if i % 3 == 0 else "Quito",
        }
        for i in range(12)
    ]
    with _judge(url, concurrency=4) as judge:
        verdicts = judge.judge_records(records)
    assert verdicts == [i % 3 == 0 for i in range(12)]


def test_retries_server_errors_then_succeeds(server: tuple[str, ServerState]) -> None:
    url, state = server
    state.fail_first = 2
    with _judge(url, retries=3) as judge:
        assert judge.judge("q", ["United Kingdom"], "UK") is True
        assert judge.requests == 3
    state.fail_first = 5
    with _judge(url, retries=1) as judge, pytest.raises(JudgeError, match="gave up after 2"):
        judge.judge("q", ["x"], "x")


def test_clear_errors(server: tuple[str, ServerState]) -> None:
    url, state = server
    state.status, state.body = 400, '{"error": "bad model"}'
    with _judge(url) as judge, pytest.raises(JudgeError, match="HTTP 400"):
        judge.judge("q", ["x"], "x")
    state.status, state.body = 200, '{"unexpected": true}'
    with _judge(url) as judge, pytest.raises(JudgeError, match="expected an OpenAI chat"):
        judge.judge("q", ["x"], "x")
    state.body = json.dumps({"choices": [{"message": {"content": "I cannot say"}}]})
    with _judge(url) as judge, pytest.raises(JudgeError, match="no yes/no verdict"):
        judge.judge("q", ["x"], "x")
    with pytest.raises(ValueError, match="base_url"):
        JudgeConfig(base_url="127.0.0.1:8000", model="m")
    with pytest.raises(ValueError, match="placeholder"):
        JudgeConfig(base_url="http://h/v1", model="m", prompt="no placeholders")


def test_unreachable_server_is_a_judge_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    url = f"http://127.0.0.1:{port}/v1"
    with _judge(url, retries=1, timeout_s=2.0) as judge, pytest.raises(JudgeError, match="gave up"):
        judge.judge("q", ["x"], "x")


def test_api_key_is_sent_as_bearer_token(
    server: tuple[str, ServerState], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, state = server
    monkeypatch.setenv("MY_JUDGE_KEY", "secret-123")
    with _judge(url, api_key_env="MY_JUDGE_KEY") as judge:
        judge.judge("q", ["x"], "x")
    assert state.headers[-1]["Authorization"] == "Bearer secret-123"


def test_judge_in_the_harness_adds_a_metric_and_changes_the_protocol(
    server: tuple[str, ServerState],
) -> None:
    url, state = server
    suite = get_suite("factbook", size=7)
    with _judge(url) as judge:
        result = run_suite(suite, Entry("scripted"), batch_size=4, judge=judge, progress=False)
        with_judge = suite_protocol(suite, judge)[1]
    task = result.tasks["factbook"]
    answered = [r for r in task.records if r["prediction"]]
    assert len(state.requests) == len(answered)
    assert all(r["judge"] == bool(r["em"]) for r in task.records)  # exact answers: agree
    assert task.summary.metrics["judge"] == pytest.approx(task.summary.metrics["em"])
    assert result.protocol["tasks"]["factbook"]["judge"]["model"] == "judge-model"
    assert result.protocol_hash == with_judge
    assert suite_protocol(suite)[1] != with_judge
