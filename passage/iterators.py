"""Iterators decide which examples go into each minibatch; ``make_batch`` pads them.

``Padded`` keeps the data's order (shuffled for training); ``SortedPadded`` (the default) buckets
examples of similar length together so little time is spent on padding; ``Linear`` is ``Padded``
for real-valued sequences of one length (e.g. image rows).

Batches are right-padded, with each sequence's length alongside, so layers can mask exactly.

>>> x, lengths = make_batch([[5, 6, 7], [8]], [0, 1])
>>> x.tolist(), lengths.tolist()
([[5, 6, 7], [8, 0, 0]], [3, 1])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from passage.registry import lookup
from passage.sequences import TokenArray, sequence_lengths  # noqa: F401 (re-exported)


def make_batch(X, idx: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The examples ``idx`` of X, right-padded with zeros: (batch, time[, features]), lengths."""
    if isinstance(X, TokenArray):  # one vectorised gather, no loop over the sequences
        return X.padded(idx)
    if isinstance(X, np.ndarray) and X.dtype != object:
        xb = X[np.asarray(idx)]
        return xb, np.full(len(xb), xb.shape[1], dtype=np.int64)
    seqs = [X[i] for i in idx]
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    nonempty = [np.asarray(s) for s in seqs if len(s)]
    flat = np.concatenate(nonempty) if nonempty else np.zeros(0, dtype=np.int64)
    if flat.dtype.kind in "iub":
        flat = flat.astype(np.int64, copy=False)
    elif flat.dtype.kind == "f":
        flat = flat.astype(np.float32, copy=False)
    else:
        raise TypeError(f"sequences must hold numbers (token ids or real vectors), "
                        f"got dtype {flat.dtype}")
    out = np.zeros((len(seqs), max(1, int(lengths.max(initial=0)))) + flat.shape[1:], flat.dtype)
    out[np.arange(out.shape[1])[None, :] < lengths[:, None]] = flat
    return out, lengths


class Padded:
    """Minibatches in data order (shuffled when training), padded to their longest sequence."""

    def __init__(self, size: int = 64, shuffle: bool = True, x_dtype=None, y_dtype=None):
        self.size, self.shuffle = size, shuffle
        self.x_dtype, self.y_dtype = x_dtype, y_dtype  # kept for 2015 scripts; dtypes are inferred

    def get_config(self) -> dict:
        return {"size": self.size, "shuffle": self.shuffle}

    def batches(self, lengths: np.ndarray, train: bool = True,
                rng: np.random.Generator | None = None) -> Iterator[np.ndarray]:
        """Index arrays, one per minibatch, covering every example once."""
        order = np.arange(len(lengths))
        if train and self.shuffle:
            order = (rng or np.random.default_rng()).permutation(len(lengths))
        for start in range(0, len(order), self.size):
            yield order[start:start + self.size]


class Linear(Padded):
    """For real-valued data of shape (examples, time, features)."""


class SortedPadded(Padded):
    """Length bucketing: sort chunks of ``20 * size`` examples by length, batch, shuffle batches.

    At prediction time the whole set is sorted by length; outputs come back in the input order.
    """

    def batches(self, lengths, train=True, rng=None):
        if not train:
            order = np.argsort(lengths, kind="stable")
            for start in range(0, len(order), self.size):
                yield order[start:start + self.size]
            return
        rng = rng or np.random.default_rng()
        order = rng.permutation(len(lengths)) if self.shuffle else np.arange(len(lengths))
        chunk = self.size * 20
        for c in range(0, len(order), chunk):
            part = order[c:c + chunk]
            part = part[np.argsort(lengths[part], kind="stable")]
            mbs = [part[s:s + self.size] for s in range(0, len(part), self.size)]
            for i in (rng.permutation(len(mbs)) if self.shuffle else range(len(mbs))):
                yield mbs[i]


ITERATORS: dict[str, type[Padded]] = {c.__name__.lower(): c for c in (Linear, Padded, SortedPadded)}


def get(iterator: str | Padded) -> Padded:
    """A fresh iterator for a name (case-insensitive), or ``iterator`` itself."""
    if isinstance(iterator, Padded):
        return iterator
    return lookup(ITERATORS, iterator, "iterator")()
