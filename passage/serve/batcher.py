"""Dynamic micro-batching: concurrent requests' texts run through the model together.

Requests hand their texts to ``Batcher.submit`` (a coroutine) and wait. ``workers`` threads (one
per core) each take the queued texts in order, up to ``max_batch_size`` of them, call ``run``
once on them, and give each request its share of the results; while one worker runs a batch the
next forms, so the cores never wait for each other. A request of more than ``max_batch_size``
texts is queued as several pieces, which may run on several workers at once. The event loop
never runs the model, so it keeps answering (``/health``) while batches run. The queue is
bounded: past ``max_queue`` waiting texts, ``submit`` raises ``Overloaded`` at once.

A worker waits for a fuller batch (up to ``max_wait_ms``) only when its last batch was shared by
several requests (a lone client is answered without the wait, concurrent clients get batches)
and every other worker waits too (it stops waiting once another starts work): while another
works, the cores are busy enough that texts queue up by themselves, and a wait would only leave
this worker's core idle. A free worker takes what is queued, shared with the other free workers.
If a shared batch fails, each of its requests is run again on its own, so one bad request never
fails the others.

Other jobs that use the model (``Batcher.call``, e.g. a reading trace) run on a worker too,
between batches.
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
    """One request: its texts (or a function of its own), its future, and its results as the
    pieces come back."""

    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    texts: list = field(default_factory=list)
    fn: Callable | None = None
    results: list = field(default_factory=list)
    pending: int = 0  # pieces not yet back
    failed: bool = False


@dataclass
class _Piece:
    """Texts start..end of a job: what a batch is made of."""

    job: _Job
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def texts(self) -> list:
        return self.job.texts[self.start:self.end]


def _settle(future: asyncio.Future, result=None, error: BaseException | None = None) -> None:
    if future.done():  # the client went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _settle_all(answers: list[tuple[asyncio.Future, list]]) -> None:
    for future, result in answers:
        _settle(future, result)


class Batcher:
    """Gathers texts from concurrent requests into batches for ``run`` (texts -> one result per
    text), on ``workers`` threads, each started with ``initializer()`` if given (e.g. one
    intra-op thread per worker). ``on_batch(n_texts, seconds)`` is told about every call."""

    def __init__(self, run: Callable[[list], list], max_batch_size: int = 64,
                 max_wait_ms: float = 5.0, max_queue: int = 1024,
                 on_batch: Callable[[int, float], None] | None = None, workers: int = 1,
                 initializer: Callable[[], None] | None = None):
        self.run = run
        self.max_batch_size = max_batch_size
        self.max_wait_ms = max_wait_ms
        self.max_queue = max_queue
        self.on_batch = on_batch
        self.workers = max(1, int(workers))
        self.initializer = initializer
        self._queue: deque[_Piece] = deque()
        self._queued_texts = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._batches = 0
        self._idle = 0  # workers waiting for a first text
        self._live = 0  # worker threads started and not yet ended

    @property
    def depth(self) -> int:
        """Texts waiting in the queue (not yet in a batch)."""
        return self._queued_texts

    def start(self) -> None:
        """Start the worker threads (``submit`` does it too, if needed)."""
        with self._cond:
            if self._live:
                return
            self._stopping = False
            started = threading.Barrier(self.workers + 1)
            self._threads = [threading.Thread(target=self._work, args=(started,), daemon=True,
                                              name=f"passage-batcher-{i}")
                             for i in range(self.workers)]
            self._live = self.workers
            for t in self._threads:
                t.start()
        try:  # the initializers ran before anything is queued (they may change torch's
            started.wait(30)  # per-thread settings, which the caller may then put back)
        except threading.BrokenBarrierError:
            pass

    def stop(self, timeout: float | None = 30.0) -> None:
        """Finish the queued jobs, then end the worker threads."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)

    async def submit(self, texts: list) -> list:
        """The results of ``run`` for these texts, computed in some batches."""
        loop = asyncio.get_running_loop()
        return await self._put(_Job(loop, loop.create_future(), list(texts)))

    async def call(self, fn: Callable[[], object]):
        """``fn()`` run on a worker thread, between batches."""
        loop = asyncio.get_running_loop()
        return await self._put(_Job(loop, loop.create_future(), [], fn))

    async def _put(self, job: _Job):
        if not self._live:  # (a count: is_alive of every thread on each request costs)
            self.start()
        step = self.max_batch_size
        pieces = ([_Piece(job, i, min(i + step, len(job.texts)))
                   for i in range(0, len(job.texts), step)] if job.fn is None and job.texts
                  else [_Piece(job, 0, 0)])
        job.results, job.pending = [None] * len(job.texts), len(pieces)
        size = max(1, len(job.texts))
        with self._cond:
            if self._queued_texts + size > self.max_queue:
                raise Overloaded(f"{self._queued_texts} texts are already waiting")
            self._queue.extend(pieces)
            self._queued_texts += size
            self._cond.notify_all()
        return await job.future

    # -- the worker threads --------------------------------------------------------------------
    def _work(self, started: threading.Barrier) -> None:
        try:
            self._serve(started)
        finally:  # (also if it failed: the next submit starts the threads again)
            with self._cond:
                self._live -= 1

    def _serve(self, started: threading.Barrier) -> None:
        try:
            if self.initializer is not None:
                self.initializer()
        finally:
            try:
                started.wait(30)
            except threading.BrokenBarrierError:
                pass
        shared = False  # this worker's last batch held several requests: wait to gather
        while True:
            batch = self._next_batch(shared)
            if batch is None:
                return
            if batch[0].job.fn is not None:
                self._run_call(batch[0].job)
            else:
                shared = len({id(p.job) for p in batch}) > 1
                self._run_batch(batch)

    def _next_batch(self, shared: bool) -> list[_Piece] | None:
        with self._cond:
            while not self._queue:
                if self._stopping:
                    return None
                self._idle += 1
                try:
                    self._cond.wait()
                finally:
                    self._idle -= 1
            if (self._queue[0].job.fn is None and shared and self.max_wait_ms > 0
                    and self._idle == self.workers - 1):  # (a busy worker: no waiting, below)
                deadline = time.monotonic() + self.max_wait_ms / 1000
                while (self._batchable() < self.max_batch_size and not self._stopping
                       and self._idle == self.workers - 1):  # (until another starts work)
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._queue:
                        break
                    self._cond.wait(left)
                if not self._queue:  # another worker took them meanwhile
                    return self._next_batch(False)
            # what is waiting, shared with the workers that wait too: they get theirs at once
            # rather than after this batch; a worker still busy gets what arrives meanwhile
            share = min(self.max_batch_size, -(-self._batchable() // (1 + self._idle)))
            batch = [self._queue.popleft()]
            if batch[0].job.fn is None:
                n = batch[0].size
                while (self._queue and self._queue[0].job.fn is None
                       and n + self._queue[0].size <= share):
                    n += self._queue[0].size
                    batch.append(self._queue.popleft())
            self._queued_texts -= sum(max(1, p.size) for p in batch)
            return batch

    def _batchable(self) -> int:
        """Texts at the front of the queue that could join the next batch."""
        n = 0
        for piece in self._queue:
            if piece.job.fn is not None:
                break
            n += piece.size
        return n

    def _run_call(self, job: _Job) -> None:
        assert job.fn is not None
        try:
            result, error = job.fn(), None
        except Exception as e:  # handed to the request that asked
            result, error = None, e
        job.loop.call_soon_threadsafe(_settle, job.future, result, error)

    def _run_batch(self, batch: list[_Piece]) -> None:
        batch = [p for p in batch if not p.job.failed]  # a piece of a request already failed
        if not batch:
            return
        try:
            results = self._timed([t for p in batch for t in p.texts])
        except Exception as e:
            if len(batch) == 1:
                self._fail(batch[0], e)
                return
            for piece in batch:  # find which request fails; the others get their answers
                self._run_batch([piece])
            return
        # the requests this batch completes, answered in one call per event loop (one wake-up
        # of the loop for the whole batch, not one per request)
        answers: dict[asyncio.AbstractEventLoop, list] = {}
        start = 0
        with self._cond:
            for piece in batch:
                job = piece.job
                if not job.failed:
                    job.results[piece.start:piece.end] = results[start:start + piece.size]
                    job.pending -= 1
                    if not job.pending:
                        answers.setdefault(job.loop, []).append((job.future, job.results))
                start += piece.size
        for loop, done in answers.items():
            loop.call_soon_threadsafe(_settle_all, done)

    def _fail(self, piece: _Piece, error: BaseException) -> None:
        """The request of ``piece`` failed: answered with the error (once)."""
        job = piece.job
        with self._cond:
            if job.failed:
                return
            job.failed = True
        job.loop.call_soon_threadsafe(_settle, job.future, None, error)

    def _timed(self, texts: list) -> list:
        began = time.perf_counter()
        with self._cond:
            self._batches += 1
            trim = self._batches % TRIM_EVERY == 0
        if trim:  # freed pages of earlier batches back to the OS
            release_free_memory()
        results = self.run(texts)
        if len(results) != len(texts):
            raise RuntimeError(f"run gave {len(results)} results for {len(texts)} texts")
        if self.on_batch is not None:
            self.on_batch(len(texts), time.perf_counter() - began)
        return results
