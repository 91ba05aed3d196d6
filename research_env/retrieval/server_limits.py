"""What one request may make the retrieval server hold, and for how long.

:class:`BodyLimit` is ASGI middleware that reads the request body itself, before the app sees
it:

* it counts bytes **as they arrive**, so a ``Transfer-Encoding: chunked`` body (which has no
  ``Content-Length``) is cut off at ``max_bytes`` like any other: **413**, connection closed,
  at most ``max_bytes`` plus one read chunk held;
* a ``Content-Length`` above ``max_bytes`` is refused before any of the body is read (413);
* the whole body must arrive within ``body_timeout_s`` of the request head (**408** otherwise).

(A client that stops *reading* a response is cut off at the connection layer:
:mod:`research_env.retrieval.server_connections`.)

Error answers are ``{"detail": "..."}`` with ``Connection: close``.
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class BodyLimit:
    """Read each request body under a byte cap and a deadline, then hand it to ``app``.

    Args:
        app: The ASGI app.
        max_bytes: Largest body, counted as it arrives.
        body_timeout_s: Seconds from the request head to the body's last byte.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, body_timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse, time out, or pass the request on with its body read."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _answer(
                    send,
                    413,
                    f"request body of {int(value)} bytes exceeds max_body_bytes={self.max_bytes}",
                )
                return
        body = await self._read_body(receive, send)
        if body is None:
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later calls wait for the disconnect, as ASGI apps expect

        await self.app(scope, replay, send)

    async def _read_body(self, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or ``None`` once an error was answered (or the client left)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout_s
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message: Message = await asyncio.wait_for(
                    receive(), max(0.0, deadline - loop.time())
                )
            except asyncio.TimeoutError:
                await _answer(
                    send,
                    408,
                    f"request body not complete after body_timeout_s={self.body_timeout_s} s "
                    f"({size} bytes received)",
                )
                return None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _answer(
                    send,
                    413,
                    f"request body exceeds max_body_bytes={self.max_bytes} "
                    f"({size} bytes received before it was cut off)",
                )
                return None
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
