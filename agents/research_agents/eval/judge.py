"""An optional LLM-as-judge: ask a model behind an OpenAI-compatible API whether answers are right.

Exact match under-counts correct answers phrased differently ("JFK" for "John F. Kennedy");
ReSearch reports an LLM judge beside EM for that reason. This judge sends one chat-completion
request per answered question to any server that speaks the OpenAI API — ``vllm serve MODEL``,
a llama.cpp or SGLang server, or a hosted endpoint — and reads a ``yes`` / ``no`` verdict.
It is off by default and never needed to run the env or the leaderboard.

Requests are greedy (``temperature=0``), retried on connection errors, timeouts, 429 and 5xx,
and sent from a few threads at once. A question the agent did not answer is judged wrong
without a request. The judge's model and prompt are part of the protocol of a result.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from research_env.http_retry import Backoff, GaveUp, send_with_retries

__all__ = ["JUDGE_PROMPT", "JudgeConfig", "JudgeError", "LLMJudge", "parse_verdict"]

JUDGE_PROMPT = (
    "You are grading answers to questions. Decide whether the predicted answer means the same "
    "as one of the gold answers: different wording, abbreviations, extra or missing articles "
    "and minor formatting are fine; a different entity, number or a hedge between several "
    "candidates is not.\n\n"
    "Question: {question}\n"
    "Gold answers: {golds}\n"
    "Predicted answer: {prediction}\n\n"
    "Reply with one word: yes if the predicted answer is correct, no otherwise."
)
"""The user message; ``{question}``, ``{golds}`` (joined with `` | ``) and ``{prediction}``."""

_VERDICT = re.compile(r"\b(yes|no|correct|incorrect)\b", re.IGNORECASE)


class JudgeError(RuntimeError):
    """The judge server could not be reached or gave an unusable reply."""


def parse_verdict(text: str) -> bool | None:
    """Read a verdict: the first ``yes`` / ``correct`` (True) or ``no`` / ``incorrect`` (False).

    Examples:
        >>> parse_verdict("Yes.")
        True
        >>> parse_verdict("**No** - different city")
        False
        >>> parse_verdict("Incorrect")
        False
        >>> parse_verdict("maybe") is None
        True
    """
    match = _VERDICT.search(text)
    if match is None:
        return None
    return match.group(1).lower() in ("yes", "correct")


@dataclass(frozen=True)
class JudgeConfig:
    """Where the judge runs and how to ask it."""

    base_url: str
    """The API root, e.g. ``http://127.0.0.1:8000/v1`` (requests go to
    ``{base_url}/chat/completions``)."""

    model: str
    """The model name the server knows (``vllm serve Qwen/Qwen2.5-7B-Instruct`` -> that)."""

    api_key_env: str | None = "OPENAI_API_KEY"
    """Environment variable holding the API key, sent as a bearer token when set."""

    max_tokens: int = 8
    """Tokens the judge may write (one word is enough)."""

    timeout_s: float = 60.0
    """Seconds per request."""

    retries: int = 3
    """Further attempts after a connection error, timeout, 408, 429 or 5xx
    (:mod:`research_env.http_retry`)."""

    backoff_s: float = 1.0
    """Delay before the first retry, doubled for each further one."""

    concurrency: int = 8
    """Requests in flight at once."""

    prompt: str = JUDGE_PROMPT
    """The user message template."""

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"judge base_url: expected http(s)://host[:port]/v1, got {self.base_url!r}"
            )
        if not self.model:
            raise ValueError("judge model: expected the model name the server serves")
        for name in ("{question}", "{golds}", "{prediction}"):
            if name not in self.prompt:
                raise ValueError(f"judge prompt: expected the placeholder {name}")
        if self.concurrency < 1 or self.retries < 0 or self.max_tokens < 1:
            raise ValueError("judge: expected concurrency >= 1, retries >= 0, max_tokens >= 1")

    def protocol(self) -> dict[str, Any]:
        """What about the judge changes its verdicts (model and prompt; not where it runs)."""
        from research_agents.eval.fingerprint import stable_hash

        return {"model": self.model, "prompt_hash": stable_hash(self.prompt), "greedy": True}


class LLMJudge:
    """Judge predicted answers with a model behind an OpenAI-compatible chat API.

    Args:
        config: Server, model and request settings.
        transport: An ``httpx`` transport (tests; default: the network).
    """

    def __init__(self, config: JudgeConfig, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(config.api_key_env) if config.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(
            base_url=config.base_url.rstrip("/"),
            headers=headers,
            timeout=config.timeout_s,
            transport=transport,
            limits=httpx.Limits(max_connections=config.concurrency),
        )
        self.requests = 0
        """Chat-completion requests sent (retries included)."""

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> LLMJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ask(self, content: str) -> str:
        payload = {
            "model": self.config.model,
            "messages": [{"role": "user", "content": content}],
            "temperature": 0.0,
            "max_tokens": self.config.max_tokens,
        }
        url = f"{self.config.base_url}/chat/completions"

        def send(_left: float) -> httpx.Response:
            self.requests += 1
            return self._client.post("/chat/completions", json=payload)

        backoff = Backoff(self.config.retries, self.config.backoff_s)
        try:
            response = send_with_retries(send, backoff)
        except GaveUp as e:
            raise JudgeError(f"{url}: {e.why} ({e.failure})") from None
        if response.status_code != 200:
            raise JudgeError(f"{url}: HTTP {response.status_code}: {response.text[:200]}")
        try:
            text = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise JudgeError(
                f"{url}: expected an OpenAI chat completion, got {response.text[:200]!r}"
            ) from e
        return str(text or "")

    def judge(self, question: str, golden_answers: Sequence[str], prediction: str | None) -> bool:
        """Whether ``prediction`` answers ``question`` (``None``: no answer, judged wrong).

        Raises:
            JudgeError: If the server fails or its reply holds no verdict.
        """
        if prediction is None or not prediction.strip():
            return False
        content = self.config.prompt.format(
            question=question, golds=" | ".join(golden_answers), prediction=prediction
        )
        reply = self._ask(content)
        verdict = parse_verdict(reply)
        if verdict is None:
            raise JudgeError(f"the judge's reply holds no yes/no verdict: {reply[:200]!r}")
        return verdict

    def judge_records(self, records: Sequence[dict[str, Any]]) -> list[bool]:
        """Judge every record (``question``, ``golden_answers``, ``prediction``), in order."""
        with ThreadPoolExecutor(self.config.concurrency) as pool:
            return list(
                pool.map(
                    lambda r: self.judge(r["question"], r["golden_answers"], r["prediction"]),
                    records,
                )
            )
