"""The numpy engine's token keys: a nonzero uint64 per token, its bytes and length when it is
shorter than 8 bytes (exact), else a hash of its bytes (so two tokens may share one, which the
engine checks by comparing bytes: ``same_bytes``)."""

from __future__ import annotations

import numpy as np

U64 = np.uint64
GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio: Fibonacci hashing
SHORT = 8  # tokens below 8 bytes get their bytes as key; longer ones a hash
HASHED = np.uint64(0xFF << 56)  # top byte of a hashed key; exact keys have their length (1-7)
# _KEEP[n]: the low n bytes of a 64-bit word (n = 0..8)
_KEEP = np.array([(1 << (8 * n)) - 1 for n in range(SHORT + 1)], dtype=np.uint64)


class KeyCollision(Exception):
    """Two different tokens got the same 64-bit key (the caller falls back to Python)."""


def words(buf) -> np.ndarray:
    """``buf`` (bytes or uint8 array, padded) as little-endian uint64 words, without a copy."""
    return np.frombuffer(buf, "<u8", count=len(buf) // 8)


def _bytes_at(words: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """The 8 bytes starting at each byte offset ``pos`` as a little-endian uint64, from two
    aligned words (``words`` must extend 8 bytes past every ``pos``)."""
    q = pos >> 3
    shift = (pos & 7).view(np.uint64)  # bits to drop from the first word: 8 per byte
    shift <<= U64(3)
    out = np.take(words, q)
    out >>= shift
    q += 1
    high = np.take(words, q)
    np.subtract(U64(63), shift, out=shift)  # the second shift is split in two so it never
    high <<= shift  # reaches 64 (undefined) when the first one is 0
    high <<= U64(1)
    out |= high
    return out


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every input bit reaches every output bit."""
    h = (h ^ (h >> U64(30))) * U64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> U64(27))) * U64(0x94D049BB133111EB)
    return h ^ (h >> U64(31))


def token_keys(words: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
               long: np.ndarray | None = None) -> np.ndarray:
    """A nonzero uint64 key per token: exact (bytes and length) below 8 bytes, else a hash.
    ``long``: the tokens of 8 bytes or more, if known."""
    first = _bytes_at(words, starts)
    keys = first & np.take(_KEEP, np.minimum(lengths, SHORT - 1))
    keys |= lengths.astype(np.uint64) << U64(56)
    if long is None:
        long = np.flatnonzero(lengths >= SHORT)
    if long.size:
        starts, lengths = starts[long], lengths[long]
        h = lengths.astype(np.uint64) * GOLDEN
        rows, word, done = np.arange(len(long)), first[long], 0
        while True:  # one round per 8 bytes, over the tokens that are still that long
            h[rows] = _mix(h[rows] ^ word)
            done += 8
            rows = rows[lengths[rows] > done]
            if not rows.size:
                break
            word = _bytes_at(words, starts[rows] + done) & \
                np.take(_KEEP, np.minimum(lengths[rows] - done, SHORT))
        keys[long] = (h >> U64(8)) | HASHED
    return keys


def same_bytes(words_a, starts_a, words_b, starts_b, lengths) -> np.ndarray:
    """Whether the byte strings at ``starts_a`` and ``starts_b`` (in the ``words`` of two
    buffers), all of ``lengths`` bytes, are equal, pair by pair."""
    same = np.ones(len(lengths), bool)
    rows, done = np.arange(len(lengths)), 0
    while rows.size:
        diff = _bytes_at(words_a, starts_a[rows] + done) ^ _bytes_at(words_b, starts_b[rows] + done)
        diff &= np.take(_KEEP, np.minimum(lengths[rows] - done, SHORT))
        same[rows[diff != 0]] = False
        done += 8
        rows = rows[(lengths[rows] > done) & same[rows]]
    return same
