"""Giving freed memory back to the operating system between the phases of a long fit.

glibc's allocator keeps the pages of freed blocks below its mmap threshold (which grows up to
32 MB as large blocks are freed) for reuse by the same thread's arena; a fit that allocates
tensors of a new size at every batch (length buckets) and whose phases run in different
threads (the linear term, training, prediction batches on the core threads) sees its resident
memory creep up by the freed-but-kept pages, though what it holds does not grow.
``release_free_memory`` asks glibc (``malloc_trim``) to return them; elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, Windows, musl)
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the allocator's free pages to the OS; True if the platform could (glibc)."""
    trim = _trim()
    if trim is None:
        return False
    trim(0)
    return True
