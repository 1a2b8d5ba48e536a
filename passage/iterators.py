"""Iterators decide which examples go into each minibatch; ``make_batch`` pads them.

``Padded`` keeps the data's order (shuffled for training); ``SortedPadded`` (the default) buckets
examples of similar length together so little time is spent on padding; ``Linear`` is ``Padded``
for real-valued sequences of one length (e.g. image rows).

Every iterator builds batches under a token budget, as fairseq's ``max_tokens``: a batch holds at
most ``size`` sequences and at most ``max_tokens`` padded positions (rows x its longest length), so
a batch of very long documents holds fewer of them and memory does not grow with the longest
document. A single sequence longer than the budget gets a batch of its own; ``RNN.fit`` trains it
in chunks (truncated BPTT, see ``passage.long_documents.ChunkedStack``). ``max_tokens=None``:
no budget.
The default (``DEFAULT_MAX_TOKENS``, 64 x 2048) leaves 64-review IMDB batches as they were except
the few that hold a review of more than 2,048 tokens (see docs/memory.md).

>>> [b.tolist() for b in Padded(size=4, shuffle=False, max_tokens=8).batches(
...     np.array([2, 2, 2, 5, 9, 1]), train=False)]
[[0, 1, 2], [3], [4], [5]]

Batches are right-padded, with each sequence's length alongside, so layers can mask exactly.

>>> x, lengths = make_batch([[5, 6, 7], [8]], [0, 1])
>>> x.tolist(), lengths.tolist()
([[5, 6, 7], [8, 0, 0]], [3, 1])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from passage.registry import lookup
from passage.sequences import TokenArray, sequence_lengths  # noqa: F401 (re-exported)


def make_batch(X: Sequence[Any] | np.ndarray,
               idx: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


DEFAULT_MAX_TOKENS = 64 * 2048  # padded positions per batch; see the module docstring


def check_max_tokens(max_tokens: object) -> None:
    """A ValueError unless ``max_tokens`` is None or a positive int."""
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(
            max_tokens, int | np.integer) or max_tokens < 1):
        raise ValueError(f"max_tokens must be a positive int (padded positions per batch, e.g. "
                         f"{DEFAULT_MAX_TOKENS}) or None for no budget; got {max_tokens!r}")


def budget_batches(order: np.ndarray, lengths: np.ndarray, size: int,
                   max_tokens: int | None) -> list[np.ndarray]:
    """``order`` cut into batches of ``size`` examples, each split further (in order) when it
    holds more than ``max_tokens`` padded positions (rows x longest); an example longer than
    the budget alone. Batches within the budget are exactly those without one.

    >>> [b.tolist() for b in budget_batches(np.arange(5), np.array([1, 3, 3, 7, 2]), 3, 8)]
    [[0, 1], [2], [3], [4]]
    """
    batches = [order[s:s + size] for s in range(0, len(order), size)]
    if max_tokens is None:
        return batches
    out = []
    for batch in batches:
        lens = lengths[batch]
        if len(batch) * int(lens.max(initial=1)) <= max_tokens:
            out.append(batch)
            continue
        start, longest = 0, 0
        for i, n in enumerate(lens.tolist()):
            wider = max(longest, n, 1)
            if i > start and (i - start + 1) * wider > max_tokens:
                out.append(batch[start:i])
                start, wider = i, max(n, 1)
            longest = wider
        out.append(batch[start:])
    return out


class Padded:
    """Minibatches in data order (shuffled when training), padded to their longest sequence,
    of at most ``size`` sequences and ``max_tokens`` padded positions (None: no budget)."""

    def __init__(self, size: int = 64, shuffle: bool = True, x_dtype: object = None,
                 y_dtype: object = None,
                 max_tokens: int | None = DEFAULT_MAX_TOKENS):
        check_max_tokens(max_tokens)
        self.size, self.shuffle = size, shuffle
        self.x_dtype, self.y_dtype = x_dtype, y_dtype  # kept for 2015 scripts; dtypes are inferred
        self.max_tokens = max_tokens

    def get_config(self) -> dict:
        """The constructor arguments to save; ``max_tokens`` when it is not the default (a
        file without it loads with the default)."""
        config: dict = {"size": self.size, "shuffle": self.shuffle}
        if getattr(self, "max_tokens", DEFAULT_MAX_TOKENS) != DEFAULT_MAX_TOKENS:
            config["max_tokens"] = self.max_tokens
        return config

    def batches(self, lengths: np.ndarray, train: bool = True,
                rng: np.random.Generator | None = None) -> Iterator[np.ndarray]:
        """Index arrays, one per minibatch, covering every example once."""
        order = np.arange(len(lengths))
        if train and self.shuffle:
            order = (rng or np.random.default_rng()).permutation(len(lengths))
        yield from budget_batches(order, np.asarray(lengths), self.size, self.max_tokens)


class Linear(Padded):
    """For real-valued data of shape (examples, time, features)."""


class SortedPadded(Padded):
    """Length bucketing: sort chunks of ``20 * size`` examples by length, batch (under the
    ``max_tokens`` budget), shuffle batches.

    At prediction time the whole set is sorted by length; outputs come back in the input order.
    """

    def batches(self, lengths: Sequence[int] | np.ndarray, train: bool = True,
                rng: np.random.Generator | None = None) -> Iterator[np.ndarray]:
        lengths = np.asarray(lengths)
        if not train:
            order = np.argsort(lengths, kind="stable")
            yield from budget_batches(order, lengths, self.size, self.max_tokens)
            return
        rng = rng or np.random.default_rng()
        order = rng.permutation(len(lengths)) if self.shuffle else np.arange(len(lengths))
        chunk = self.size * 20
        for c in range(0, len(order), chunk):
            part = order[c:c + chunk]
            part = part[np.argsort(lengths[part], kind="stable")]
            mbs = budget_batches(part, lengths, self.size, self.max_tokens)
            for i in (rng.permutation(len(mbs)) if self.shuffle else range(len(mbs))):
                yield mbs[i]


ITERATORS: dict[str, type[Padded]] = {c.__name__.lower(): c for c in (Linear, Padded, SortedPadded)}


def get(iterator: str | Padded) -> Padded:
    """A fresh iterator for a name (case-insensitive), or ``iterator`` itself."""
    if isinstance(iterator, Padded):
        return iterator
    return lookup(ITERATORS, iterator, "iterator")()
