"""Micro-batching for the retrieval server: many concurrent requests, few retriever calls.

Every request is queued; one background task takes all queued requests (up to
``max_queries_per_call`` queries), groups them by ``k``, drops duplicate queries and calls
``retriever.search_batch`` once per group **in a worker thread**, so the event loop keeps
accepting requests (and answering ``/health``) while the index works. Requests that arrive
during a retriever call form the next batch; an idle batcher can also wait ``batch_window_ms``
after the first request for others to join. One retriever call runs at a time, so retrievers
need not be thread-safe.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from research_env.data.types import Passage
from research_env.retrieval.base import RetrievalError, Retriever

if TYPE_CHECKING:
    from research_env.retrieval.server_config import ServerConfig


class ServerOverloaded(RuntimeError):
    """The batcher's queue is full; the request should be retried later."""


@dataclass
class BatchStats:
    """Counters of the batcher since the server started (reported by ``/health``)."""

    requests: int = 0
    """Requests answered or failed."""

    queries: int = 0
    """Queries in those requests."""

    retriever_calls: int = 0
    """``search_batch`` calls made (fewer than ``requests`` when batching merges them)."""

    retriever_queries: int = 0
    """Queries sent to the retriever (duplicates within a call are sent once)."""

    largest_call: int = 0
    """Most queries sent in one call."""


@dataclass
class _Job:
    queries: list[str]
    k: int
    future: asyncio.Future[list[list[Passage]]]


class MicroBatcher:
    """Merge concurrent requests into few ``search_batch`` calls, run off the event loop.

    Args:
        retriever: The index to query.
        config: ``batch_window_ms``, ``max_queries_per_call`` and ``max_pending_queries`` apply.
    """

    def __init__(self, retriever: Retriever, config: ServerConfig) -> None:
        self.retriever = retriever
        self.config = config
        self.stats = BatchStats()
        self._jobs: deque[_Job] = deque()
        self._pending = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="searchqa-retriever")

    @property
    def pending(self) -> int:
        """Queries queued or in flight."""
        return self._pending

    async def search(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        """Queue ``queries`` for the next retriever call and wait for their passages.

        Raises:
            RetrievalError: Raised by the retriever for the call this request joined.
            ServerOverloaded: When ``max_pending_queries`` would be exceeded.
        """
        if not queries:
            return []
        wakeup = self._start()
        if self._pending + len(queries) > self.config.max_pending_queries:
            raise ServerOverloaded(
                f"server overloaded: {self._pending} queries pending "
                f"(max_pending_queries={self.config.max_pending_queries}); retry later"
            )
        future: asyncio.Future[list[list[Passage]]] = asyncio.get_running_loop().create_future()
        self._jobs.append(_Job(list(queries), k, future))
        self._pending += len(queries)
        wakeup.set()
        return await future

    def _start(self) -> asyncio.Event:
        if self._wakeup is None or self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop(self._wakeup))
        return self._wakeup

    async def close(self) -> None:
        """Stop the batcher; queued requests fail with ``RetrievalError``."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._jobs:
            job = self._jobs.popleft()
            if not job.future.done():
                job.future.set_exception(RetrievalError("the retrieval server is shutting down"))
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _loop(self, wakeup: asyncio.Event) -> None:
        window = self.config.batch_window_ms / 1000.0
        while True:
            await wakeup.wait()
            wakeup.clear()
            if not self._jobs:
                continue
            if window > 0 and self._pending < self.config.max_queries_per_call:
                await asyncio.sleep(window)  # let concurrent requests join this call
            while self._jobs:  # requests that queued during a call form the next batch
                await self._run(self._take())

    def _take(self) -> list[_Job]:
        jobs: list[_Job] = []
        size = 0
        while self._jobs:
            job = self._jobs[0]
            if job.future.done():  # the client went away
                self._jobs.popleft()
                self._pending -= len(job.queries)
                continue
            if jobs and size + len(job.queries) > self.config.max_queries_per_call:
                break
            jobs.append(self._jobs.popleft())
            size += len(job.queries)
        return jobs

    async def _run(self, jobs: list[_Job]) -> None:
        groups: dict[int, list[_Job]] = {}
        for job in jobs:
            groups.setdefault(job.k, []).append(job)
        loop = asyncio.get_running_loop()
        try:
            for k, group in groups.items():
                unique = list(dict.fromkeys(q for job in group for q in job.queries))
                try:
                    results = await loop.run_in_executor(
                        self._executor, self.retriever.search_batch, unique, k
                    )
                    if len(results) != len(unique):
                        raise RetrievalError(
                            f"{type(self.retriever).__name__}.search_batch returned "
                            f"{len(results)} result lists for {len(unique)} queries"
                        )
                except Exception as e:  # RetrievalError -> 503, anything else -> 500
                    for job in group:
                        if not job.future.done():
                            job.future.set_exception(e)
                    continue
                finally:
                    self.stats.retriever_calls += 1
                    self.stats.retriever_queries += len(unique)
                    self.stats.largest_call = max(self.stats.largest_call, len(unique))
                by_query = dict(zip(unique, results))
                for job in group:
                    if not job.future.done():
                        job.future.set_result([by_query[q] for q in job.queries])
        finally:
            for job in jobs:
                self._pending -= len(job.queries)
                self.stats.requests += 1
                self.stats.queries += len(job.queries)
