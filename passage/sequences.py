"""``TokenArray``: many token-id sequences in two flat arrays, instead of lists of Python ints.

A list of lists costs 8 bytes per token (a pointer) plus 28 for every int object above 256 that
is not shared (IMDB: 8.3 bytes per token as the Tokenizer returns them, 16.8 once copied, e.g.
through JSON), and padding a minibatch walks it in Python. A ``TokenArray`` holds every id in one
int32 array and where each sequence starts in one int64 array (``offsets``, one longer than the
number of sequences): 4 bytes per token plus 8 per sequence, and a padded minibatch is one
vectorised gather. It behaves like a read-only sequence of sequences, so it can be passed wherever
a list of token-id lists is accepted (``RNN.fit``, ``predict``, ``make_batch``, ...).

>>> ta = TokenArray.from_sequences([[5, 6, 7], [], [8]])
>>> len(ta), ta[0].tolist(), ta.lengths().tolist()
(3, [5, 6, 7], [3, 0, 1])
>>> ta[[2, 0]].tolist()
[[8], [5, 6, 7]]
>>> x, lengths = ta.padded([0, 2])
>>> x.tolist(), lengths.tolist()
([[5, 6, 7], [8, 0, 0]], [3, 1])
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt

try:
    from passage._tokens import to_lists as _compiled_lists
except ImportError:  # installed without a C compiler
    _compiled_lists = None


class TokenArray(Sequence):
    """Sequences of token ids stored as ``values`` (flat int32) and ``offsets`` (int64).

    Sequence ``i`` is ``values[offsets[i]:offsets[i + 1]]``. Indexing with an int returns that
    sequence as a numpy array (a view, not a copy); indexing with a slice, a list of ints, an int
    array or a boolean mask returns a new ``TokenArray``. ``tolist()`` gives the lists of ints.
    """

    __slots__ = ("values", "offsets")

    def __init__(self, values: np.ndarray, offsets: np.ndarray):
        values = np.asarray(values)
        offsets = np.asarray(offsets, dtype=np.int64)
        if values.ndim != 1 or values.dtype.kind not in "iu":
            raise ValueError(f"values must be a 1-d integer array, got {values.dtype} with shape "
                             f"{values.shape}")
        if offsets.ndim != 1 or len(offsets) == 0 or offsets[0] != 0 or \
                offsets[-1] != len(values) or np.any(np.diff(offsets) < 0):
            raise ValueError("offsets must start at 0, never decrease and end at len(values)")
        self.values = values
        self.offsets = offsets

    @classmethod
    def from_sequences(cls, sequences: Iterable[Sequence[int]],
                       dtype: npt.DTypeLike = np.int32) -> TokenArray:
        """Pack sequences of ints (lists, arrays, or another TokenArray) into a TokenArray."""
        if isinstance(sequences, TokenArray):
            return cls(sequences.values.astype(dtype, copy=False), sequences.offsets)
        seqs = [np.asarray(s) if len(s) else np.zeros(0, dtype) for s in sequences]
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.concatenate(seqs) if seqs else np.zeros(0, dtype)
        if values.dtype.kind not in "iu" and len(values):
            raise TypeError(f"sequences must hold integers (token ids), got {values.dtype}")
        return cls(values.astype(dtype, copy=False), offsets)

    @classmethod
    def concatenate(cls, arrays: Sequence[TokenArray]) -> TokenArray:
        """The sequences of several TokenArrays, one after the other."""
        if not arrays:
            return cls(np.zeros(0, np.int32), np.zeros(1, np.int64))
        values = np.concatenate([a.values for a in arrays])
        lengths = np.concatenate([a.lengths() for a in arrays])
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(values, offsets)

    # -- the sequence protocol ----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index):
        if isinstance(index, int | np.integer):
            i = int(index)
            n = len(self)
            if i < -n or i >= n:
                raise IndexError(f"index {i} out of range for a TokenArray of {n} sequences")
            i %= n
            return self.values[self.offsets[i]:self.offsets[i + 1]]
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:  # a contiguous range: views, no copy
                stop = max(stop, start)
                offsets = self.offsets[start:stop + 1]
                return TokenArray(self.values[offsets[0]:offsets[-1]], offsets - offsets[0])
            index = np.arange(start, stop, step)
        return self.take(index)

    def __iter__(self) -> Iterator[np.ndarray]:
        values, offsets = self.values, self.offsets.tolist()
        for a, b in zip(offsets[:-1], offsets[1:], strict=True):
            yield values[a:b]

    def __contains__(self, sequence) -> bool:
        return any(self._equal_to(sequence))

    def index(self, sequence: object, start: int = 0, stop: int | None = None) -> int:
        """Position of the first sequence equal to ``sequence`` (as for a list of lists)."""
        for i, equal in enumerate(self._equal_to(sequence)):
            if equal and start <= i and (stop is None or i < stop):
                return i
        raise ValueError("sequence is not in this TokenArray")

    def count(self, sequence: object) -> int:
        return sum(self._equal_to(sequence))

    def _equal_to(self, sequence) -> Iterator[bool]:
        # Sequence's own versions compare with ==, elementwise for arrays: not a bool
        target = np.asarray(sequence)
        return (np.array_equal(s, target) for s in self)

    def __add__(self, other):
        if isinstance(other, TokenArray):
            return TokenArray.concatenate([self, other])
        return NotImplemented

    def __eq__(self, other) -> bool:
        if not isinstance(other, TokenArray):
            return NotImplemented
        return bool(np.array_equal(self.offsets, other.offsets)
                    and np.array_equal(self.values, other.values))

    __hash__ = None  # type: ignore[assignment]  # mutable arrays inside: unhashable, as a list

    def __repr__(self) -> str:
        return (f"TokenArray({len(self)} sequences, {len(self.values)} tokens, "
                f"dtype={self.values.dtype})")

    # -- vectorised helpers -----------------------------------------------------------------
    def lengths(self) -> np.ndarray:
        """The length of every sequence (int64), from the offsets: no loop."""
        return np.diff(self.offsets)

    @property
    def nbytes(self) -> int:
        """Memory held by the two arrays, in bytes."""
        return int(self.values.nbytes + self.offsets.nbytes)

    def take(self, index: npt.ArrayLike) -> TokenArray:
        """The sequences at ``index`` (ints or a boolean mask), as a new TokenArray."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise IndexError(f"boolean index of shape {idx.shape} for {len(self)} sequences")
            idx = np.flatnonzero(idx)
        elif idx.size == 0:
            idx = idx.astype(np.int64)
        elif idx.dtype.kind not in "iu" or idx.ndim != 1:
            raise IndexError(f"index a TokenArray with an int, a slice, a list of ints or a "
                             f"boolean mask; got {type(index).__name__} of dtype {idx.dtype}")
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"index out of range for a TokenArray of {n} sequences")
        idx = idx.astype(np.int64) % max(n, 1)
        starts = self.offsets[idx]
        lengths = self.offsets[idx + 1] - starts
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return TokenArray(self.values[_positions(starts, lengths)], offsets)

    def padded(self, index: npt.ArrayLike,
               dtype: npt.DTypeLike = np.int64) -> tuple[np.ndarray, np.ndarray]:
        """Sequences ``index`` right-padded with 0: (len(index), longest) array, and lengths.

        What ``iterators.make_batch`` returns for lists, with one gather of the batch's tokens.
        """
        idx = np.asarray(index, dtype=np.int64)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"index out of range for a TokenArray of {len(self)} sequences")
        idx = np.where(idx < 0, idx + len(self), idx)
        starts = self.offsets[idx]
        lengths = self.offsets[idx + 1] - starts
        out = np.zeros((len(idx), max(1, int(lengths.max(initial=0)))), dtype)
        out[np.arange(out.shape[1]) < lengths[:, None]] = self.values[_positions(starts, lengths)]
        return out, lengths

    def tolist(self) -> list[list[int]]:
        """The sequences as lists of Python ints (the 2015 representation)."""
        return _as_lists(self.values, self.offsets)


def sequence_lengths(X: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Length of every sequence in X (a list of sequences, a ``TokenArray``, or an array of
    shape (n, time, ...))."""
    if isinstance(X, TokenArray):  # from the offsets, no loop
        return X.lengths()
    if isinstance(X, np.ndarray) and X.dtype != object:
        if X.ndim < 2:
            raise ValueError(f"X must hold one sequence per example; got an array of shape "
                             f"{X.shape}")
        return np.full(len(X), X.shape[1], dtype=np.int64)
    return np.fromiter((len(x) for x in X), dtype=np.int64, count=len(X))


def _as_lists(values: np.ndarray, offsets: np.ndarray,
              objects: np.ndarray | None = None) -> list[list]:
    """Lists of the sequences ``values[offsets[i]:offsets[i + 1]]``; ``objects``: an object
    array, the Python object standing for each value (default: the int itself).

    Equal ids share one int object, as in lists built from a dict of ids (8 bytes a token rather
    than up to 36), and the garbage collector is paused meanwhile: the new lists hold only ints,
    so they cannot form cycles, and collections triggered by creating them would otherwise take
    most of the time.
    """
    if objects is None and len(values) and values.min() >= 0:
        top = int(values.max())
        if top < _SHARED_MAX or top < len(values):
            objects = _shared_ints(top + 1)
    if objects is not None and _compiled_lists is not None and values.dtype == np.int32:
        with _gc_paused():
            return _compiled_lists(np.ascontiguousarray(values),
                                   np.ascontiguousarray(offsets, dtype=np.int64), objects.tolist())
    if objects is not None:
        values = objects[values]
    bounds = offsets.tolist()
    with _gc_paused():
        return [values[a:b].tolist() for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


_SHARED_MAX = 1 << 16
_shared: np.ndarray = np.zeros(0, dtype=object)


def _shared_ints(n: int) -> np.ndarray:
    """An object array of the ints 0..n-1 (at least); up to ``_SHARED_MAX`` the same objects
    are reused by every call, so lists from several calls share them too."""
    global _shared
    if len(_shared) >= n:
        return _shared
    ints = np.empty(max(n, min(2 * len(_shared), _SHARED_MAX)), dtype=object)
    ints[:len(_shared)] = _shared
    ints[len(_shared):] = range(len(_shared), len(ints))
    if len(ints) <= _SHARED_MAX:
        _shared = ints
    return ints


def _positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Indices of the tokens of sequences starting at ``starts`` with ``lengths``, one after the
    other: each token's rank among them, shifted by where its sequence starts."""
    ends = np.cumsum(lengths)
    shift = np.repeat(starts - (ends - lengths), lengths)
    return np.arange(len(shift)) + shift


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause automatic garbage collection (if on) for a burst of allocations without cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
