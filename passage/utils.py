"""The 2015 ``passage.utils`` names: ``save``, ``load`` and small data helpers.

``save(model, path)`` writes weights and plain config (no pickle); ``load(path)`` rebuilds it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from passage.io import load, save

__all__ = ["save", "load", "iter_data", "shuffle"]


def iter_data(*data: Sequence[Any] | np.ndarray, size: int = 128) -> Iterator[Any]:
    """Consecutive slices of ``size`` items of each of ``data``."""
    for start in range(0, len(data[0]), size):
        chunk = tuple(d[start:start + size] for d in data)
        yield chunk[0] if len(data) == 1 else chunk


def shuffle(*data: Sequence[Any] | np.ndarray, seed: int | None = None) -> list[Any]:
    """The lists in ``data`` shuffled with one shared permutation."""
    idx = np.random.default_rng(seed).permutation(len(data[0]))
    out = [[d[i] for i in idx] for d in data]
    return out[0] if len(data) == 1 else out
