"""Micro-batching: concurrent requests share forward passes instead of queueing for one each.

A transformer embeds 32 short texts in little more time than one, so a server that runs each
request alone wastes most of its CPU under load. :class:`MicroBatcher` collects what arrives
while the model is busy (and up to ``max_wait_ms`` after the first text), embeds queries and
documents in one call each, and hands every request its rows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["MicroBatcher", "ServerBusyError", "TASKS"]

TASKS = ("query", "document")


class ServerBusyError(RuntimeError):
    """More texts are pending than the server accepts; the client should retry later (HTTP 503)."""


@dataclass
class _Job:
    task: str
    texts: list[str]
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Merge concurrent embedding requests into batches run on one worker thread.

    Args:
        embed: ``embed(task, texts) -> (len(texts), dim) float32``; ``task`` is ``"query"`` or
            ``"document"``. Called on a single worker thread, never concurrently, so it need not
            be thread-safe.
        max_batch_size: Texts per call to ``embed`` (a larger single request is embedded alone).
        max_wait_ms: How long a batch waits after its first request for more to arrive.
        max_pending: Most texts queued or in flight; :meth:`submit` raises
            :class:`ServerBusyError` beyond it.
        on_batch: Called with ``(task, n_texts, seconds)`` after each call to ``embed``
            (metrics).

    Example:
        >>> import asyncio, numpy as np
        >>> async def main():
        ...     batcher = MicroBatcher(lambda task, texts: np.ones((len(texts), 2), np.float32))
        ...     async with batcher:
        ...         return await batcher.submit("query", ["a", "b"])
        >>> asyncio.run(main()).shape
        (2, 2)
    """

    def __init__(
        self,
        embed: Callable[[str, list[str]], np.ndarray],
        *,
        max_batch_size: int = 64,
        max_wait_ms: float = 2.0,
        max_pending: int = 4096,
        on_batch: Callable[[str, int, float], None] | None = None,
    ) -> None:
        self._embed = embed
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_pending = max_pending
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Job] | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._carry: _Job | None = None
        self.pending = 0

    async def __aenter__(self) -> MicroBatcher:
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="queryshift-embed")
        self._worker = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._worker = self._executor = None

    async def submit(self, task: str, texts: list[str]) -> np.ndarray:
        """Queue ``texts`` and wait for their ``(len(texts), dim)`` vectors."""
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if self._queue is None:
            raise RuntimeError("MicroBatcher is not running; use it as `async with batcher:`")
        if self.pending + len(texts) > self.max_pending:
            raise ServerBusyError(
                f"{self.pending} texts are already pending (limit {self.max_pending}); retry later"
            )
        self.pending += len(texts)
        job = _Job(task, list(texts), asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(job)
            return await job.future
        finally:
            self.pending -= len(texts)

    async def _collect(self) -> list[_Job]:
        """The next batch: the first job, then whatever arrives within the wait, up to the size."""
        if self._carry is not None:
            jobs, self._carry = [self._carry], None
        else:
            jobs = [await self._queue.get()]
        size = len(jobs[0].texts)
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while size < self.max_batch_size:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if size + len(job.texts) > self.max_batch_size:
                self._carry = job  # too big to join: it starts the next batch
                break
            jobs.append(job)
            size += len(job.texts)
        return jobs

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect()
            for task in TASKS:
                group = [job for job in jobs if job.task == task and not job.future.done()]
                if not group:
                    continue
                texts = [text for job in group for text in job.texts]
                start = loop.time()
                try:
                    vectors = await loop.run_in_executor(self._executor, self._embed, task, texts)
                    vectors = np.asarray(vectors, dtype=np.float32)  # (n_texts, dim)
                    if vectors.ndim != 2 or len(vectors) != len(texts):
                        raise RuntimeError(
                            f"embed returned shape {vectors.shape} for {len(texts)} texts; expected (n, dim)"
                        )
                except Exception as exc:  # every waiting request gets the failure, none hangs
                    logger.exception("embedding a batch of %d %s texts failed", len(texts), task)
                    for job in group:
                        if not job.future.done():
                            job.future.set_exception(exc)
                    continue
                if self._on_batch is not None:
                    self._on_batch(task, len(texts), loop.time() - start)
                offset = 0
                for job in group:
                    rows = vectors[offset : offset + len(job.texts)]  # (len(job.texts), dim)
                    offset += len(job.texts)
                    if not job.future.done():
                        job.future.set_result(rows)
