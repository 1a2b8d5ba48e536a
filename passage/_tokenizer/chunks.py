"""Cutting the texts into runs of whole documents, and the worker threads that process them
(numpy and the compiled engine release the GIL, so the threads really work side by side)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from passage._tokenizer.base import EngineSettings


def chunk_groups(texts: list[str], chars: int) -> list[list[str]]:
    """``texts`` cut into runs of whole documents of about ``chars`` characters."""
    ends = np.cumsum(np.fromiter(map(len, texts), np.int64, count=len(texts)))
    total = int(ends[-1]) if len(ends) else 0
    cuts = np.searchsorted(ends, np.arange(chars, total, chars), side="right")
    bounds = np.unique(np.concatenate([[0], cuts, [len(texts)]])).tolist()
    return [texts[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def parts(texts: list[str], settings: EngineSettings) -> list[list[str]]:
    """``texts`` in runs of whole texts, one per worker thread, of about equal characters; a
    single run when there are fewer than ``settings.part_chars`` characters per worker."""
    total = sum(map(len, texts))
    per_worker = -(-total // max(settings.workers, 1))
    return chunk_groups(texts, max(settings.part_chars, per_worker)) or [texts]


@contextmanager
def thread_pool(groups: list, workers: int) -> Iterator[ThreadPoolExecutor | None]:
    """``workers`` threads when there is more than one group of work, else None."""
    if len(groups) < 2 or workers < 1:
        yield None
        return
    with ThreadPoolExecutor(workers) as pool:
        yield pool


def submit(pool: ThreadPoolExecutor | None, fn: Callable, *args) -> Future:
    """``fn(*args)`` in the pool, or right now if there is no pool."""
    if pool is not None:
        return pool.submit(fn, *args)
    done: Future = Future()
    done.set_result(fn(*args))
    return done


def in_order(pool: ThreadPoolExecutor | None, ahead: int, fn: Callable, groups: list,
             *args) -> Iterator:
    """``fn(group, *args)`` for every group, in order, computed ``ahead`` groups ahead by the
    pool (no further, so only a few chunks' arrays are alive at a time)."""
    pending = deque(submit(pool, fn, g, *args) for g in groups[:ahead])
    for i in range(len(groups)):
        result = pending.popleft().result()
        if i + ahead < len(groups):
            pending.append(submit(pool, fn, groups[i + ahead], *args))
        yield result
