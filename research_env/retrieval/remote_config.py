"""Where a retrieval server is and how hard :class:`~research_env.retrieval.RemoteRetriever` tries.

:class:`RemoteConfig` holds the server's base URL, its request shapes (``protocol``) and the
client's timeouts, retries, backoff, pool size and batch cap; :meth:`RemoteConfig.from_url` reads
any scalar field from the URL's query string, so a ``retriever=`` string can carry them
(``"remote:http://127.0.0.1:8000?timeout_s=5&retries=1&total_timeout_s=12"``). Sending requests
and reading the answers is :mod:`research_env.retrieval.remote`'s job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

__all__ = ["PROTOCOLS", "RemoteConfig", "RemoteProtocol"]

RemoteProtocol = Literal["research", "searchr1"]
PROTOCOLS: tuple[RemoteProtocol, ...] = ("research", "searchr1")


@dataclass(frozen=True)
class RemoteConfig:
    """Where the server is and how hard to try."""

    url: str
    """Base URL of the server, e.g. ``http://127.0.0.1:8000`` (no endpoint path)."""

    protocol: RemoteProtocol = "research"
    """``"research"`` (``/search``, ``/batch_search``) or ``"searchr1"`` (``/retrieve``)."""

    timeout_s: float = 10.0
    """Seconds to wait for a response (read, write and pool timeouts) per attempt."""

    connect_timeout_s: float = 5.0
    """Seconds to wait for a connection per attempt."""

    retries: int = 2
    """Attempts after the first one for connection errors, timeouts, 5xx and 429."""

    total_timeout_s: float | None = 30.0
    """Most seconds one call may take, attempts and waits between them included (each
    attempt's timeouts shrink to fit what is left); ``None``: no overall limit."""

    backoff_s: float = 0.5
    """Delay before the first retry; doubled before each further one."""

    max_backoff_s: float = 8.0
    """Longest delay between two attempts."""

    jitter: bool = True
    """Draw each delay uniformly from [delay / 2, delay], so many workers do not retry in step."""

    max_connections: int = 32
    """Connections the client keeps to the server (for threads sharing the retriever)."""

    max_batch: int = 1024
    """Most queries per request (``searchqa serve``'s default cap); a ``search_batch`` with more
    is sent as several consecutive requests, with one otherwise."""

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            raise ValueError(f"expected url to start with http:// or https://, got {self.url!r}")
        if "?" in self.url or "#" in self.url:
            raise ValueError(
                f"expected a base url without '?' or '#', got {self.url!r}: pass options as "
                "RemoteConfig fields, or the url to RemoteConfig.from_url / RemoteRetriever"
            )
        if self.total_timeout_s is not None and not (
            not isinstance(self.total_timeout_s, bool) and self.total_timeout_s > 0
        ):
            raise ValueError(f"expected total_timeout_s > 0 or None, got {self.total_timeout_s!r}")
        if self.url.rstrip("/") != self.url:
            object.__setattr__(self, "url", self.url.rstrip("/"))
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"expected protocol in {PROTOCOLS}, got {self.protocol!r}")
        for name in ("timeout_s", "connect_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"expected {name} > 0, got {getattr(self, name)!r}")
        for name in ("backoff_s", "max_backoff_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"expected {name} >= 0, got {getattr(self, name)!r}")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"expected retries >= 0 (int), got {self.retries!r}")
        for name in ("max_connections", "max_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"expected {name} >= 1 (int), got {value!r}")

    @classmethod
    def from_url(cls, url: str, protocol: RemoteProtocol = "research") -> RemoteConfig:
        """A config from a URL whose query string carries options.

        Args:
            url: ``http://host:port`` optionally followed by ``?name=value&...`` for any scalar
                field (``timeout_s``, ``connect_timeout_s``, ``total_timeout_s`` (``none`` for
                no limit), ``retries``, ``backoff_s``, ``max_backoff_s``, ``jitter``,
                ``max_connections``, ``max_batch``).
            protocol: The protocol (not an option of the URL).

        Raises:
            ValueError: On an unknown option or a value of the wrong type, naming both.

        >>> c = RemoteConfig.from_url("http://127.0.0.1:8000?timeout_s=2.5&retries=0")
        >>> c.url, c.timeout_s, c.retries
        ('http://127.0.0.1:8000', 2.5, 0)
        """
        if not isinstance(url, str):
            raise ValueError(f"expected url to be a string, got {url!r}")
        parts = urlsplit(url)
        options: dict[str, Any] = {}
        if parts.query:
            try:
                pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
            except ValueError as e:
                raise ValueError(f"{url!r}: malformed options {parts.query!r} ({e})") from e
            for name, text in pairs:
                options[name] = _option(url, name, text)
        base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        if parts.fragment:
            raise ValueError(f"{url!r}: expected no '#fragment' in a server url")
        if not options:
            return cls(url=base, protocol=protocol)
        try:
            return cls(url=base, protocol=protocol, **options)
        except ValueError as e:
            raise ValueError(f"{url!r}: {e}") from e


_OPTION_TYPES: dict[str, str] = {
    f.name: str(f.type) for f in fields(RemoteConfig) if f.name not in ("url", "protocol")
}


def _option(url: str, name: str, text: str) -> Any:
    """The value of option ``name`` given as ``text`` in ``url``."""
    kind = _OPTION_TYPES.get(name)
    if kind is None:
        raise ValueError(
            f"{url!r}: unknown option {name!r}; expected one of {', '.join(_OPTION_TYPES)}"
        )
    if kind == "bool":
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{url!r}: option {name}={text!r}: expected true or false")
    if kind.endswith("None") and text.lower() in ("none", "null", ""):
        return None
    try:
        value: float = int(text) if kind == "int" else float(text)
    except ValueError:
        expected = "an integer" if kind == "int" else "a number of seconds"
        raise ValueError(f"{url!r}: option {name}={text!r}: expected {expected}") from None
    if not math.isfinite(value):
        raise ValueError(f"{url!r}: option {name}={text!r}: expected a finite number")
    return value
