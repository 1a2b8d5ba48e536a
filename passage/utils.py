"""The 2015 ``passage.utils`` names: ``save``, ``load`` and small data helpers.

``save(model, path)`` writes weights and plain config (no pickle); ``load(path)`` rebuilds it.
"""

from __future__ import annotations

import numpy as np

from passage.io import load, save

__all__ = ["save", "load", "iter_data", "shuffle"]


def iter_data(*data, size: int = 128):
    """Consecutive slices of ``size`` items of each of ``data``."""
    for start in range(0, len(data[0]), size):
        chunk = tuple(d[start:start + size] for d in data)
        yield chunk[0] if len(data) == 1 else chunk


def shuffle(*data, seed: int | None = None):
    """The lists in ``data`` shuffled with one shared permutation."""
    idx = np.random.default_rng(seed).permutation(len(data[0]))
    out = [[d[i] for i in idx] for d in data]
    return out[0] if len(data) == 1 else out
