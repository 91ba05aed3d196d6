"""Helpers for tests that run ``searchqa serve`` as a real process and poke it with sockets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx

from research_env.data.types import Passage

SERVE = [sys.executable, "-m", "research_env.cli", "serve", "--log-level", "warning"]


def write_corpus(path: Path, passages: Iterable[Passage]) -> Path:
    """Write ``passages`` as a FlashRAG jsonl corpus (``{"id", "contents"}`` per line)."""
    with path.open("w", encoding="utf-8") as f:
        for p in passages:
            f.write(json.dumps({"id": p.id, "contents": p.contents}) + "\n")
    return path


def start_serve(
    args: list[str],
    log: Path,
    *,
    preexec_fn: Callable[[], None] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``searchqa serve --port 0 ARGS`` (``python -m research_env.cli``); return it and
    its URL once ``/health`` answers."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*SERVE, "--port", "0", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
            preexec_fn=preexec_fn,
        )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if " at http://" in line:
                url = line.split(" at ", 1)[1].split(" ", 1)[0]
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        return proc, url
                except httpx.TransportError:
                    pass
        if proc.poll() is not None:
            raise AssertionError(f"searchqa serve exited: {log.read_text(errors='replace')}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"searchqa serve did not start: {log.read_text(errors='replace')}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate ``proc`` and wait for it (kill it if it does not exit)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB, from ``/proc/<pid>/status``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def address(url: str) -> tuple[str, int]:
    """``(host, port)`` of ``http://host:port``."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def connect(url: str, timeout_s: float = 5.0) -> socket.socket:
    """A raw TCP connection to the server at ``url``."""
    return socket.create_connection(address(url), timeout=timeout_s)


def read_until_closed(sock: socket.socket, timeout_s: float) -> tuple[bytes, bool]:
    """Read from ``sock`` for up to ``timeout_s``; return the bytes and whether the peer closed."""
    sock.settimeout(0.1)
    data = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False
