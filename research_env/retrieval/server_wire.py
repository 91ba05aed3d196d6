"""The wire formats of the retrieval server's ReSearch and Search-R1 endpoints.

Request bodies (pydantic models, strict about ``k`` and the score flags), the caps applied to
them (:func:`_check`: 413 / 400 with a ``detail`` naming what came and what is allowed), the
JSON encoding of answers (one ``json.dumps`` per query's row), and the 422 body of a malformed
request, every echoed input short and JSON-safe (:func:`_json_safe`). The formats themselves are
described in :mod:`research_env.retrieval.server`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field

from research_env.data.types import Passage
from research_env.retrieval.server_config import ServerConfig


# ----------------------------------------------------------------------------- requests
class ResearchSearchRequest(BaseModel):
    """ReSearch ``POST /search``: one query."""

    query: str
    top_n: int | None = Field(default=None, ge=1, strict=True)
    return_score: bool = Field(default=False, strict=True)


class ResearchBatchRequest(BaseModel):
    """ReSearch ``POST /batch_search``: many queries."""

    query: list[str]
    top_n: int | None = Field(default=None, ge=1, strict=True)
    return_score: bool = Field(default=False, strict=True)


class SearchR1Request(BaseModel):
    """Search-R1 ``POST /retrieve``: many queries."""

    queries: list[str]
    topk: int | None = Field(default=None, ge=1, strict=True)
    return_scores: bool = Field(default=False, strict=True)


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
        shown = str(k) if len(str(k)) <= 20 else f"{str(k)[:12]}... ({len(str(k))} digits)"
        raise HTTPException(400, f"{k_name}={shown} exceeds the server's max_k={config.max_k}")
    return k


# ----------------------------------------------------------------------------- responses
# Encoded in a worker thread, one row (one query's passages) per json.dumps call: the C encoder
# holds the GIL for a whole call, so one call per row lets the event loop run between rows.
def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _rows(parts: Any) -> bytes:
    return b"[" + b",".join(parts) + b"]"


def _docs(hits: list[Passage]) -> list[dict[str, str]]:
    return [{"id": p.id, "contents": p.contents} for p in hits]


def _render_research(results: list[list[Passage]], scores: bool, single: bool) -> bytes:
    """ReSearch: ``[doc, ...]`` or ``[[doc, ...], [score, ...]]``, per query unless ``single``."""
    if single:
        [hits] = results
        docs = _dumps(_docs(hits))
        return b"[" + docs + b"," + _dumps([p.score for p in hits]) + b"]" if scores else docs
    docs = _rows(_dumps(_docs(hits)) for hits in results)
    if not scores:
        return docs
    return b"[" + docs + b"," + _rows(_dumps([p.score for p in hits]) for hits in results) + b"]"


def _render_searchr1(results: list[list[Passage]], scores: bool) -> bytes:
    """Search-R1: ``{"result": [[{"document": doc, "score": s}, ...], ...]}`` (or docs only)."""
    if scores:
        rows = (
            _dumps(
                [{"document": {"id": p.id, "contents": p.contents}, "score": p.score} for p in h]
            )
            for h in results
        )
    else:
        rows = (_dumps(_docs(hits)) for hits in results)
    return b'{"result":' + _rows(rows) + b"}"


_ECHO_CHARS = 100
_ECHO_ITEMS = 10


def _json_safe(value: Any, depth: int = 0) -> Any:
    """``value`` as short, strictly JSON-encodable data (for echoing a client's input back).

    >>> _json_safe([float("nan"), float("inf"), "x" * 200][:2])
    ['nan', 'inf']
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 10**20 else f"an integer of {value.bit_length()} bits"
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return value if len(value) <= _ECHO_CHARS else value[: _ECHO_CHARS - 1] + "…"
    if depth >= 3:
        return _json_safe(repr(value))
    if isinstance(value, dict):
        items = list(value.items())
        out = {str(k)[:_ECHO_CHARS]: _json_safe(v, depth + 1) for k, v in items[:_ECHO_ITEMS]}
        if len(items) > _ECHO_ITEMS:
            out["..."] = f"{len(items) - _ECHO_ITEMS} more keys"
        return out
    if isinstance(value, (list, tuple)):
        shown = [_json_safe(v, depth + 1) for v in value[:_ECHO_ITEMS]]
        if len(value) > _ECHO_ITEMS:
            shown.append(f"... {len(value) - _ECHO_ITEMS} more items")
        return shown
    return _json_safe(str(value))


async def _validation_error(request: Request, exc: Exception) -> Response:
    """422 with FastAPI's error list, every echoed input made short and JSON-safe.

    FastAPI's own handler echoes the input as is: a NaN ``top_n`` then cannot be encoded
    (a 500), and a large malformed body is sent back whole.
    """
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [
        {
            key: _json_safe(error[key])
            for key in ("type", "loc", "msg", "input", "ctx")
            if key in error
        }
        for error in errors[:_ECHO_ITEMS]
    ]
    # ASCII-escaped: an echoed lone surrogate ("\\ud800" in the request) cannot be UTF-8 encoded.
    body = json.dumps({"detail": detail}, ensure_ascii=True, allow_nan=False).encode()
    return Response(body, status_code=422, media_type="application/json")
