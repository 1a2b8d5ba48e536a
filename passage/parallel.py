"""Inference batches side by side: a batch per core.

A recurrent scan is a chain of small matmuls, which run faster side by side on one core each
than each split over all of them. ``map_batches`` runs one ``predict``'s batches that way;
``one_core`` sets up such a thread (the service's batch workers use it too).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from passage.layers import inference


def one_core(started: threading.Barrier | None = None) -> None:
    """Thread initializer: this thread runs torch on one core (one intra-op thread); then
    waits at ``started`` if given (so the caller can put back the count new threads get)."""
    torch.get_num_threads()  # torch sets up this thread's count first, then we lower it
    torch.set_num_threads(1)
    if started is not None:
        try:
            started.wait(timeout=10)
        except threading.BrokenBarrierError:
            pass


@contextlib.contextmanager
def thread_count_kept() -> Iterator[None]:
    """Put back torch's thread count after the block: ``one_core`` in new threads also sets
    the count that threads new to torch start with."""
    main = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(main)


_MAP_LOCK = threading.Lock()


def map_batches(fn: Callable[[Any], object], batches: list, device: torch.device) -> None:
    """Call ``fn`` on every batch in inference mode and the layers' ``inference()`` (whatever
    the module's train/eval mode, in whichever thread runs the batch). On a CPU with n threads,
    n worker threads each run whole batches on one core (torch releases the GIL inside its
    kernels): a recurrent scan is a chain of small matmuls, which run faster side by side than
    each split in n.
    One call at a time uses workers; a concurrent call (another thread's predict) runs in its
    own thread, so the cores are never oversubscribed."""
    threads = min(torch.get_num_threads() if device.type == "cpu" else 1, len(batches))
    if threads <= 1 or not _MAP_LOCK.acquire(blocking=False):
        with torch.inference_mode(), inference():
            for b in batches:
                fn(b)
        return
    main_threads = torch.get_num_threads()
    started = threading.Barrier(threads + 1)

    def guarded(b):
        with torch.inference_mode(), inference():
            fn(b)

    try:
        with ThreadPoolExecutor(threads, initializer=one_core, initargs=(started,)) as pool:
            # longest batches first (they come sorted by length), so neither core waits at the end
            futures = [pool.submit(guarded, b) for b in batches[::-1]]
            try:
                started.wait(timeout=10)
            except threading.BrokenBarrierError:
                pass
            # set_num_threads also set the count that threads new to torch start with: put back
            torch.set_num_threads(main_threads)
            try:
                for done in futures:
                    done.result()  # re-raises a worker's error here
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    finally:
        torch.set_num_threads(main_threads)
        _MAP_LOCK.release()
