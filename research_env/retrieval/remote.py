r"""A retriever that queries a retrieval server over HTTP.

``RemoteRetriever("http://127.0.0.1:8000")`` talks to ``searchqa serve`` or to any server with
the ReSearch (FlashRAG) or Search-R1 request shapes (see :mod:`research_env.retrieval.server`
for the wire formats):

* ``protocol="research"`` (default): ``search`` posts ``/search``, ``search_batch`` posts
  ``/batch_search`` with all the queries;
* ``protocol="searchr1"``: both post ``/retrieve``.

Scores are always requested. Documents come back as ``{"id", "contents"}`` with FlashRAG's
``contents = '"Title"\ntext'``; they are parsed back into :class:`Passage` (a document that has
``title`` and ``text`` fields, as Search-R1's Pyserini server sends, is read from those).

Failures never turn into passages: connection errors, timeouts and 5xx / 408 / 429 answers are
retried with exponential backoff (``backoff_s``, doubled each time, capped at
``max_backoff_s``, with jitter; :mod:`research_env.http_retry`); other 4xx answers are not
retried. One call never takes longer than
``total_timeout_s`` (30 s by default: a hung server costs a step at most that, all attempts and
waits included). Whatever still fails raises :class:`~research_env.retrieval.RetrievalError`
naming the URL, the status and a short detail, with a ``kind`` (``"timeout"``,
``"connection"``, ``"server"``, ``"rejected"``, ``"bad_response"``), which the env reports in
``info["retrieval_error"]`` / ``info["retrieval_error_kind"]`` with a marked observation.

Options can ride on the URL's query string, so a ``retriever=`` string can carry them:
``"remote:http://127.0.0.1:8000?timeout_s=5&retries=1&total_timeout_s=12"`` (any scalar field
of :class:`RemoteConfig`, which is in :mod:`research_env.retrieval.remote_config` and
re-exported here).

One ``httpx.Client`` per retriever keeps connections alive (pooled, thread-safe). httpx is
imported on first use, so this module imports with the env's own dependencies only.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from research_env.data.corpus import split_contents
from research_env.data.types import Passage
from research_env.http_retry import Backoff, GaveUp, send_with_retries
from research_env.retrieval.base import RetrievalError, check_k
from research_env.retrieval.remote_config import PROTOCOLS as PROTOCOLS
from research_env.retrieval.remote_config import RemoteConfig as RemoteConfig
from research_env.retrieval.remote_config import RemoteProtocol as RemoteProtocol

if TYPE_CHECKING:
    import httpx

_DETAIL_CHARS = 300
_KEEPALIVE_S = 4.0  # below searchqa serve's idle timeout (5 s): no reuse of a closing connection


class RemoteRetriever:
    """Query a retrieval server (``searchqa serve``, FlashRAG, Search-R1) over HTTP.

    Args:
        url: The server's base URL (options may follow as a query string, see
            :meth:`RemoteConfig.from_url`), or a full :class:`RemoteConfig`.
        protocol: ``"research"`` (default) or ``"searchr1"``; only with a URL (a
            ``RemoteConfig`` carries its own).

    Example:
        >>> r = RemoteRetriever("http://127.0.0.1:8000", protocol="searchr1")
        >>> r.config.protocol, r.config.retries, r.config.total_timeout_s
        ('searchr1', 2, 30.0)

    ``gym.make("SearchQA-v0", retriever="remote:http://127.0.0.1:8000")`` builds one too
    (``"remote+searchr1:http://..."`` for the Search-R1 protocol;
    ``"remote:http://127.0.0.1:8000?timeout_s=5&retries=1"`` with options).
    """

    def __init__(self, url: str | RemoteConfig, protocol: RemoteProtocol | None = None) -> None:
        if isinstance(url, RemoteConfig):
            if protocol is not None:
                raise TypeError("pass protocol inside the RemoteConfig, not next to it")
            self.config = url
        else:
            self.config = RemoteConfig.from_url(url, protocol=protocol or "research")
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._random = random.Random()

    def __repr__(self) -> str:
        return f"RemoteRetriever({self.config.url!r}, protocol={self.config.protocol!r})"

    # ------------------------------------------------------------------- Retriever protocol
    def search(self, query: str, k: int) -> list[Passage]:
        """Return the server's top-``k`` passages for ``query``.

        Raises:
            RetrievalError: When the server cannot be reached or answers with an error.
            ValueError: If ``k < 1``.
        """
        check_k(k)
        if self.config.protocol == "research":
            data = self._post("/search", {"query": query, "top_n": k, "return_score": True})
            return self._parse_research_one(data, k)
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        """Return the top-``k`` passages for each query, in one request (per ``max_batch``).

        Raises:
            RetrievalError: When the server cannot be reached or answers with an error.
            ValueError: If ``k < 1``.
        """
        check_k(k)
        queries = list(queries)
        results: list[list[Passage]] = []
        step = self.config.max_batch
        for start in range(0, len(queries), step):
            chunk = queries[start : start + step]
            if self.config.protocol == "research":
                payload = {"query": chunk, "top_n": k, "return_score": True}
                data = self._post("/batch_search", payload)
                results.extend(self._parse_research_batch(data, len(chunk), k))
            else:
                payload = {"queries": chunk, "topk": k, "return_scores": True}
                results.extend(self._parse_searchr1(self._post("/retrieve", payload), k))
            if len(results) != start + len(chunk):
                raise RetrievalError(
                    f"{self.config.url}: got {len(results) - start} result lists for "
                    f"{len(chunk)} queries",
                    kind="bad_response",
                )
        return results

    def health(self) -> dict[str, Any]:
        """Return the server's ``GET /health`` answer (retried like a search).

        Raises:
            RetrievalError: When the server cannot be reached or is unhealthy.
        """
        data = self._request("GET", "/health", None)
        if not isinstance(data, dict):
            raise RetrievalError(
                f"{self.config.url}/health: expected a JSON object, got {_short(repr(data))}",
                kind="bad_response",
            )
        return data

    # -------------------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Close the pooled connections (the retriever reopens them if used again)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> RemoteRetriever:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # Picklable (e.g. into vector-env worker processes): each copy opens its own pool.
        return {"config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.config = state["config"]
        self._client = None
        self._lock = threading.Lock()
        self._random = random.Random()

    # ------------------------------------------------------------------------------- HTTP
    @property
    def _backoff(self) -> Backoff:
        c = self.config
        return Backoff(c.retries, c.backoff_s, c.max_backoff_s, c.jitter, c.total_timeout_s)

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                import httpx

                c = self.config
                self._client = httpx.Client(
                    timeout=httpx.Timeout(c.timeout_s, connect=c.connect_timeout_s),
                    limits=httpx.Limits(
                        max_connections=c.max_connections,
                        max_keepalive_connections=c.max_connections,
                        keepalive_expiry=_KEEPALIVE_S,
                    ),
                    headers={"User-Agent": "research-env RemoteRetriever"},
                )
            return self._client

    def _post(self, path: str, payload: dict[str, Any]) -> Any:
        return self._request("POST", path, payload)

    def _request(self, method: str, path: str, payload: dict[str, Any] | None) -> Any:
        import httpx

        c = self.config
        url = c.url + path

        def send(left: float) -> httpx.Response:
            timeout = httpx.Timeout(min(c.timeout_s, left), connect=min(c.connect_timeout_s, left))
            return self._http().request(method, url, json=payload, timeout=timeout)

        try:
            response = send_with_retries(send, self._backoff, detail=_detail, rng=self._random)
        except GaveUp as e:
            raise RetrievalError(f"{url}: {e}", kind=e.kind, status=e.status) from None
        status = response.status_code
        if status >= 400:
            raise RetrievalError(
                f"{url}: HTTP {status} (not retried): {_detail(response)}",
                kind="rejected",
                status=status,
            )
        try:
            return response.json()
        except ValueError as e:
            raise RetrievalError(
                f"{url}: HTTP {status} with a body that is not JSON: {_short(response.text)}",
                kind="bad_response",
                status=status,
            ) from e

    # ---------------------------------------------------------------------------- parsing
    def _bad(self, path: str, expected: str, got: Any) -> RetrievalError:
        return RetrievalError(
            f"{self.config.url}{path}: unexpected response, expected {expected}, "
            f"got {_short(json.dumps(got, default=str))}",
            kind="bad_response",
        )

    def _parse_research_one(self, data: Any, k: int) -> list[Passage]:
        # [docs, scores] with return_score; a plain [doc, ...] from servers that ignore it.
        if (
            isinstance(data, list)
            and len(data) == 2
            and all(isinstance(part, list) for part in data)
        ):
            docs, scores = data
        elif isinstance(data, list) and all(isinstance(d, dict) for d in data):
            docs, scores = data, [None] * len(data)
        else:
            raise self._bad("/search", "[[doc, ...], [score, ...]]", data)
        return self._passages(docs, scores, k, "/search")

    def _parse_research_batch(self, data: Any, n: int, k: int) -> list[list[Passage]]:
        if not isinstance(data, list):
            raise self._bad("/batch_search", "a JSON list", data)
        if (  # [docs, scores] for n queries, unless the server ignored return_score
            len(data) == 2
            and isinstance(data[0], list)
            and isinstance(data[1], list)
            and len(data[0]) == len(data[1]) == n
            and all(isinstance(row, list) for row in data[0])
        ):
            docs, scores = data  # [[[doc, ...], ...], [[score, ...], ...]]
        else:
            docs, scores = data, [None] * len(data)
        return [
            self._passages(row, row_scores, k, "/batch_search")
            for row, row_scores in zip(docs, scores)
        ]

    def _parse_searchr1(self, data: Any, k: int) -> list[list[Passage]]:
        if not isinstance(data, dict) or not isinstance(data.get("result"), list):
            raise self._bad("/retrieve", '{"result": [[...], ...]}', data)
        out: list[list[Passage]] = []
        for row in data["result"]:
            if not isinstance(row, list):
                raise self._bad("/retrieve", "a list of documents per query", row)
            docs = [item.get("document", item) if isinstance(item, dict) else item for item in row]
            scores = [item.get("score") if isinstance(item, dict) else None for item in row]
            out.append(self._passages(docs, scores, k, "/retrieve"))
        return out

    def _passages(self, docs: Any, scores: Any, k: int, path: str) -> list[Passage]:
        if not isinstance(docs, list):
            raise self._bad(path, "a list of documents", docs)
        if scores is None or not isinstance(scores, list) or len(scores) != len(docs):
            raise self._bad(path, "one score per document", scores)
        passages = []
        for doc, score in zip(docs[:k], scores[:k]):
            if not isinstance(doc, dict):
                raise self._bad(path, 'a document {"id", "contents"}', doc)
            if score is not None and (
                isinstance(score, bool) or not isinstance(score, (int, float))
            ):
                raise self._bad(path, "a numeric score", score)
            title, text = doc.get("title"), doc.get("text")
            if not (isinstance(title, str) and isinstance(text, str)):
                contents = doc.get("contents")
                if not isinstance(contents, str):
                    raise self._bad(path, 'a document with "contents" (or "title" and "text")', doc)
                title, text = split_contents(contents)
            score = None if score is None else float(score)
            passages.append(Passage(str(doc.get("id", "")), title, text, score))
        return passages


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 1] + "…"


def _detail(response: httpx.Response) -> str:
    """The ``detail`` of a FastAPI error (validation errors made readable), else the body."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return _short(response.text) or response.reason_phrase
    if isinstance(detail, list):  # FastAPI 422: [{"loc": [...], "msg": ...}, ...]
        parts = [
            f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}"
            for e in detail
            if isinstance(e, dict)
        ]
        return _short("; ".join(parts))
    return _short(str(detail)) if detail is not None else _short(response.text)
