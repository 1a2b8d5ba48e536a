"""Dynamic micro-batching: concurrent requests' texts run through the model together.

Requests hand their texts to ``Batcher.submit`` (a coroutine) and wait; one worker thread takes
the queued requests in order, up to ``max_batch_size`` texts, calls ``run`` once on all their
texts, and gives each request its own slice of the results. The event loop never runs the
model, so it keeps answering (``/health``) while a batch runs. The queue is bounded: past
``max_queue`` waiting texts, ``submit`` raises ``Overloaded`` at once.

Waiting for a fuller batch (up to ``max_wait_ms``) happens only when the last batch was shared
by several requests: a lone client is answered without the wait, concurrent clients get
batches. If a shared batch fails, each of its requests is run again on its own, so one bad
request never fails the others.

Other jobs that use the model (``Batcher.call``, e.g. a reading trace) run on the same worker,
one at a time, so the model is only ever used by one thread of the service.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from passage._memory import release_free_memory

TRIM_EVERY = 64  # batches between returns of freed memory to the OS (a few ms each)


class Overloaded(Exception):
    """The queue is full: the client should retry later."""


@dataclass
class _Job:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    texts: list = field(default_factory=list)
    fn: Callable | None = None  # a job of its own instead of texts to batch


def _settle(future: asyncio.Future, result=None, error: BaseException | None = None) -> None:
    if future.done():  # the client went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Batcher:
    """Gathers texts from concurrent requests into batches for ``run`` (texts -> one result per
    text), on one worker thread. ``on_batch(n_texts, seconds)`` is told about every call."""

    def __init__(self, run: Callable[[list], list], max_batch_size: int = 64,
                 max_wait_ms: float = 5.0, max_queue: int = 1024,
                 on_batch: Callable[[int, float], None] | None = None):
        self.run = run
        self.max_batch_size = max_batch_size
        self.max_wait_ms = max_wait_ms
        self.max_queue = max_queue
        self.on_batch = on_batch
        self._jobs: deque[_Job] = deque()
        self._queued_texts = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._shared = False  # the last batch held several requests: wait to gather the next
        self._thread: threading.Thread | None = None
        self._batches = 0

    @property
    def depth(self) -> int:
        """Texts waiting in the queue (not yet in a batch)."""
        return self._queued_texts

    def start(self) -> None:
        """Start the worker thread (``submit`` does it too, if needed)."""
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._stopping = False
                self._thread = threading.Thread(target=self._work, name="passage-batcher",
                                                daemon=True)
                self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Finish the queued jobs, then end the worker thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    async def submit(self, texts: list) -> list:
        """The results of ``run`` for these texts, computed in some batch."""
        return await self._put(_Job(asyncio.get_running_loop(), None, list(texts)))

    async def call(self, fn: Callable[[], object]):
        """``fn()`` run on the worker thread, between batches."""
        return await self._put(_Job(asyncio.get_running_loop(), None, [], fn))

    async def _put(self, job: _Job):
        job.future = job.loop.create_future()
        if self._thread is None or not self._thread.is_alive():
            self.start()
        size = max(1, len(job.texts))
        with self._cond:
            if self._queued_texts + size > self.max_queue:
                raise Overloaded(f"{self._queued_texts} texts are already waiting")
            self._jobs.append(job)
            self._queued_texts += size
            self._cond.notify_all()
        return await job.future

    # -- the worker thread ---------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if batch[0].fn is not None:
                self._run_one(batch[0])
            else:
                self._run_batch(batch)

    def _next_batch(self) -> list[_Job] | None:
        with self._cond:
            while not self._jobs:
                if self._stopping:
                    return None
                self._cond.wait()
            if self._jobs[0].fn is None and self._shared and self.max_wait_ms > 0:
                deadline = time.monotonic() + self.max_wait_ms / 1000
                while self._batchable() < self.max_batch_size and not self._stopping:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            batch = [self._jobs.popleft()]
            if batch[0].fn is None:
                n = len(batch[0].texts)
                while (self._jobs and self._jobs[0].fn is None
                       and n + len(self._jobs[0].texts) <= self.max_batch_size):
                    n += len(self._jobs[0].texts)
                    batch.append(self._jobs.popleft())
            self._queued_texts -= sum(max(1, len(j.texts)) for j in batch)
            return batch

    def _batchable(self) -> int:
        """Texts at the front of the queue that could join the next batch."""
        n = 0
        for job in self._jobs:
            if job.fn is not None:
                break
            n += len(job.texts)
        return n

    def _run_one(self, job: _Job) -> None:
        try:
            result, error = job.fn(), None
        except Exception as e:  # handed to the request that asked
            result, error = None, e
        job.loop.call_soon_threadsafe(_settle, job.future, result, error)

    def _run_batch(self, batch: list[_Job]) -> None:
        self._shared = len(batch) > 1
        texts = [t for job in batch for t in job.texts]
        try:
            results = self._timed(texts)
        except Exception as e:
            if len(batch) == 1:
                batch[0].loop.call_soon_threadsafe(_settle, batch[0].future, None, e)
                return
            for job in batch:  # find which request fails; the others get their answers
                self._run_batch([job])
            return
        start = 0
        for job in batch:
            part = results[start:start + len(job.texts)]
            start += len(job.texts)
            job.loop.call_soon_threadsafe(_settle, job.future, part, None)

    def _timed(self, texts: list) -> list:
        began = time.perf_counter()
        self._batches += 1
        if self._batches % TRIM_EVERY == 0:  # freed pages of earlier batches back to the OS
            release_free_memory()
        results = self.run(texts)
        if len(results) != len(texts):
            raise RuntimeError(f"run gave {len(results)} results for {len(texts)} texts")
        if self.on_batch is not None:
            self.on_batch(len(texts), time.perf_counter() - began)
        return results
