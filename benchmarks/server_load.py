"""Load and fault figures of ``searchqa serve`` (docs/reliability.md, issue 15).

Every figure comes from a real ``searchqa serve`` process (BM25 over the Factbook world, or a
small corpus where the index does not matter) on 127.0.0.1; memory is the server's RSS from
``/proc``. Sections:

* **load**: ``--clients`` concurrent clients (asyncio + httpx, one process) post Factbook
  questions to ``/retrieve`` (1-4 queries, k=5) for ``--seconds``; every answer is compared with
  a sequential reference taken first. Requests, errors, differing results, p50 / p99 latency.
* **idle**: a server allowed 256 open files, 300 connections that send nothing, then
  ``GET /health`` (its status and latency); with the idle timeout left long, only the connection
  cap keeps it answering.
* **chunked**: a 256 MiB chunked body sent to a server with the default 16 MiB cap: bytes the
  client got to send before the 413, and the server's RSS growth.
* **words**: 48 requests of 1,024 distinct 4,000-character words (issue 15's 192 MiB of text):
  the server's RSS growth.
* **health**: ``/health`` latency while ``--heavy-clients`` clients send maximal requests (1,024
  queries, k=100): responses encoded off the event loop (as served) side by side with the same
  server forced to encode them on the loop.

Run: ``.venv/bin/python benchmarks/server_load.py`` (about 3 minutes on 2 shared cores);
``--quick`` for a shorter load phase; ``--only load idle`` for some sections.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

SERVE = [sys.executable, "-m", "research_env.cli", "serve", "--log-level", "warning"]
SECTIONS = ("load", "idle", "chunked", "words", "health")

# The same server, but responses encoded on the event loop (as before issue 15), to compare.
_ON_LOOP_SERVER = """
import sys
from research_env.retrieval import server
server._INLINE_PASSAGES = 10**12
from research_env.cli import main
sys.exit(main(["serve", "--log-level", "warning", "--port", "0"]))
"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def start(
    cmd: list[str], log: Path, preexec_fn: Callable[[], None] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start a server command; return it and its URL once /health answers (and a search has
    paid the index's one-off costs)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, preexec_fn=preexec_fn)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if " at http://" in line:
                url = line.split(" at ", 1)[1].split(" ", 1)[0]
                try:
                    httpx.get(f"{url}/health", timeout=2).raise_for_status()
                except httpx.HTTPError:
                    continue
                httpx.post(f"{url}/retrieve", json={"queries": ["warm up"]}, timeout=300)
                return proc, url
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text(errors='replace')}")
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server did not start: {log.read_text(errors='replace')}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(15)


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def small_corpus(directory: Path) -> Path:
    path = directory / "corpus.jsonl"
    rows = [
        {"id": "peru", "contents": '"Peru — Capital"\nname: Lima'},
        {"id": "japan", "contents": '"Japan — Capital"\nname: Tokyo'},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ---------------------------------------------------------------------------- sections
def load(workdir: Path, clients: int, seconds: float) -> dict[str, Any]:
    from research_env.data.factbook import load_factbook_world

    questions = [e.question for e in load_factbook_world().examples]
    rng = random.Random(0)
    batches = [rng.sample(questions, rng.randint(1, 4)) for _ in range(400)]
    proc, url = start([*SERVE, "--port", "0"], workdir / "load.log")
    try:
        with httpx.Client(timeout=60) as client:  # the sequential reference
            reference = [
                client.post(f"{url}/retrieve", json={"queries": b, "topk": 5}).json()
                for b in batches
            ]
        rss_before = rss_mb(proc.pid)
        latencies: list[float] = []
        counts = {"requests": 0, "errors": 0, "differing": 0}

        async def one_client(seed: int, until: float) -> None:
            pick = random.Random(seed)
            async with httpx.AsyncClient(timeout=60) as ac:
                while time.monotonic() < until:
                    i = pick.randrange(len(batches))
                    t0 = time.perf_counter()
                    try:
                        r = await ac.post(
                            f"{url}/retrieve", json={"queries": batches[i], "topk": 5}
                        )
                    except httpx.HTTPError:
                        counts["errors"] += 1
                        continue
                    latencies.append(time.perf_counter() - t0)
                    counts["requests"] += 1
                    if r.status_code != 200:
                        counts["errors"] += 1
                    elif r.json() != reference[i]:
                        counts["differing"] += 1

        async def run() -> None:
            until = time.monotonic() + seconds
            await asyncio.gather(*(one_client(s, until) for s in range(clients)))

        start_t = time.perf_counter()
        asyncio.run(run())
        elapsed = time.perf_counter() - start_t
        return {
            "clients": clients,
            "seconds": round(elapsed, 1),
            **counts,
            "requests_per_s": round(counts["requests"] / elapsed, 1),
            "p50_ms": round(1000 * percentile(latencies, 0.50), 1),
            "p99_ms": round(1000 * percentile(latencies, 0.99), 1),
            "server_rss_mb": [round(rss_before), round(rss_mb(proc.pid))],
        }
    finally:
        stop(proc)


def idle(workdir: Path, connections: int = 300, files: int = 256) -> dict[str, Any]:
    def limit_files() -> None:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (files, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        )

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * connections)), hard))
    corpus = small_corpus(workdir)
    cmd = [*SERVE, "--port", "0", "--corpus", str(corpus), "--idle-timeout", "120"]
    proc, url = start([*cmd, "--header-timeout", "120"], workdir / "idle.log", limit_files)
    sockets: list[socket.socket] = []
    try:
        for _ in range(connections):
            sockets.append(socket.create_connection(address(url), timeout=5))
        time.sleep(0.5)
        t0 = time.perf_counter()
        r = httpx.get(f"{url}/health", timeout=30)
        health_s = time.perf_counter() - t0
        body = r.json()
        return {
            "open_file_limit": files,
            "idle_connections": connections,
            "health_status": r.status_code,
            "health_ms": round(1000 * health_s, 1),
            "max_connections": body["limits"]["max_connections"],
            "evicted": body["connections"]["evicted"],
            "open_after": body["connections"]["open"],
        }
    finally:
        for s in sockets:
            s.close()
        stop(proc)


def chunked(workdir: Path, total: int = 256 * 1024 * 1024) -> dict[str, Any]:
    proc, url = start(
        [*SERVE, "--port", "0", "--corpus", str(small_corpus(workdir))], workdir / "chunked.log"
    )
    try:
        before = rss_mb(proc.pid)
        sock = socket.create_connection(address(url), timeout=5)
        sock.setblocking(False)
        piece = b"a" * 65536
        frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        head = b"POST /retrieve HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        pending, sent, answer = head + b'e\r\n{"queries": ["\r\n' + frame, 0, b""
        peak = before
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock] if pending else [], [], 1)
            peak = max(peak, rss_mb(proc.pid))
            if readable:
                data = sock.recv(65536)
                answer += data
                if not data or b"\r\n\r\n" in answer:
                    break
            elif writable:
                try:
                    n = sock.send(pending)
                except OSError:
                    break
                sent += n
                pending = pending[n:] or (frame if sent < total else b"")
        sock.close()
        return {
            "offered_mb": total // 2**20,
            "sent_before_answer_mb": round(sent / 2**20, 1),
            "answer": answer.split(b"\r\n", 1)[0].decode(errors="replace"),
            "server_rss_growth_mb": round(max(peak, rss_mb(proc.pid)) - before, 1),
        }
    finally:
        stop(proc)


def words(workdir: Path, requests: int = 48) -> dict[str, Any]:
    proc, url = start(
        [*SERVE, "--port", "0", "--corpus", str(small_corpus(workdir))], workdir / "words.log"
    )
    rng = random.Random(0)
    try:
        before = rss_mb(proc.pid)
        with httpx.Client(timeout=120) as client:
            for _ in range(requests):
                batch = [rng.randbytes(2000).hex() for _ in range(1024)]
                client.post(f"{url}/retrieve", json={"queries": batch, "topk": 1})
        return {
            "requests": requests,
            "text_mb": round(requests * 1024 * 4000 / 2**20),
            "server_rss_growth_mb": round(rss_mb(proc.pid) - before, 1),
        }
    finally:
        stop(proc)


_HEAVY_CLIENT = """
import json, sys, time, httpx
url, seconds = sys.argv[1], float(sys.argv[2])
queries = json.loads(open(sys.argv[3], encoding="utf-8").read())
done, stop_at = 0, time.monotonic() + seconds
with httpx.Client(timeout=300) as c:
    while time.monotonic() < stop_at:
        c.post(url + "/retrieve", json={"queries": queries, "topk": 100}).raise_for_status()
        done += 1
print(done)
"""


def health_under_heavy(workdir: Path, clients: int, seconds: float) -> dict[str, Any]:
    """``/health`` latency from a quiet process while heavy clients (each its own process, so
    their JSON parsing does not slow the prober) send maximal requests."""
    from research_env.data.factbook import load_factbook_world

    questions = [e.question for e in load_factbook_world().examples][:1024]
    batch = workdir / "heavy-queries.json"
    batch.write_text(json.dumps(questions), encoding="utf-8")
    out: dict[str, Any] = {"heavy_clients": clients, "request": "1,024 queries, k=100"}
    for name, cmd in (
        ("off_loop", [*SERVE, "--port", "0"]),
        ("on_loop", [sys.executable, "-c", _ON_LOOP_SERVER]),
    ):
        proc, url = start(cmd, workdir / f"health-{name}.log")
        heavy = [
            subprocess.Popen(
                [sys.executable, "-c", _HEAVY_CLIENT, url, str(seconds), str(batch)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(clients)
        ]
        probes: list[float] = []
        stop_at = time.monotonic() + seconds
        with httpx.Client(timeout=60) as c:
            time.sleep(1.0)
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                c.get(f"{url}/health").raise_for_status()
                probes.append(time.perf_counter() - t0)
                time.sleep(0.05)
        done = sum(int(h.communicate(timeout=600)[0].strip() or 0) for h in heavy)
        stop(proc)
        out[name] = {
            "heavy_requests": done,
            "health_probes": len(probes),
            "health_p50_ms": round(1000 * statistics.median(probes), 1),
            "health_p99_ms": round(1000 * percentile(probes, 0.99), 1),
            "health_max_ms": round(1000 * max(probes), 1),
        }
    out["health_p99_ratio_on_over_off"] = round(
        out["on_loop"]["health_p99_ms"] / out["off_loop"]["health_p99_ms"], 1
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--heavy-clients", type=int, default=4)
    parser.add_argument("--heavy-seconds", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="8 clients x 5 s, heavy 2 x 8 s")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.seconds, args.heavy_clients, args.heavy_seconds = 8, 5.0, 2, 8.0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    python = platform.python_version()
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {python}"
    }
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for section in args.only:
            print(f"[{section}] ...", file=sys.stderr, flush=True)
            if section == "load":
                report[section] = load(workdir, args.clients, args.seconds)
            elif section == "idle":
                report[section] = idle(workdir)
            elif section == "chunked":
                report[section] = chunked(workdir)
            elif section == "words":
                report[section] = words(workdir)
            else:
                report[section] = health_under_heavy(
                    workdir, args.heavy_clients, args.heavy_seconds
                )
            print(json.dumps({section: report[section]}), flush=True)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
