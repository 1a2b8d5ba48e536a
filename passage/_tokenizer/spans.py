"""The numpy engine's first step: a run of documents encoded to UTF-8, joined, and cut into
tokens (a ``Chunk``: where each token starts, its length in bytes, and its key).

Documents are lowercased with ``str.lower`` (as the reference engine does), and words are found
byte by byte with ``rules.BYTE_CLASS_TABLE``: a word is a run of bytes that are neither the
space, nor an ASCII mark, nor part of one of the multi-byte marks (matched as byte sequences).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import InitVar, dataclass, field

import numpy as np

from passage._tokenizer.keys import SHORT, U64, words
from passage._tokenizer.rules import BYTE_CLASS_TABLE, MULTIBYTE_MARKS

KeyFunction = Callable[..., np.ndarray]  # (words, starts, lengths[, long]) -> keys


@dataclass
class Chunk:
    """Consecutive documents, encoded and cut into tokens."""

    buf: bytes  # their UTF-8, then 16 zero bytes (so 8-byte reads past a token stay inside)
    starts: np.ndarray  # byte offset of every token
    lengths: np.ndarray  # byte length of every token
    counts: np.ndarray  # tokens per document
    key_fn: InitVar[KeyFunction]  # gives the keys when they are not given
    keys: np.ndarray | None = None  # uint64 key of every token
    words: np.ndarray = field(init=False)  # keys.words(buf)
    long: np.ndarray = field(init=False)  # the tokens of 8 bytes or more (hashed keys)

    def __post_init__(self, key_fn: KeyFunction) -> None:
        self.words = words(self.buf)
        self.long = np.flatnonzero(self.lengths >= SHORT)
        if self.keys is None:
            self.keys = key_fn(self.words, self.starts, self.lengths, self.long)


def _word_spans(buf: bytes, n: int, doc_starts: np.ndarray, ascii_only: bool):
    """(starts, ends) in bytes of the tokens of ``tokenize`` (``rules.TOKEN_RE``) in the UTF-8
    text ``buf[:n]`` (zero bytes after it); ``doc_starts``: where each document begins (a word
    never runs across two documents)."""
    padded = np.frombuffer(buf, np.uint8)
    cls = np.frombuffer(buf.translate(BYTE_CLASS_TABLE), np.uint8, count=n)
    word = cls == 0
    mark = cls == 2
    firsts, lasts = [], []  # first and last bytes of the multi-byte marks
    if not ascii_only:
        maybe = np.flatnonzero(cls == 3)  # lead byte shared by a multi-byte mark
        is_mark = np.zeros(len(maybe), bool)
        for code in MULTIBYTE_MARKS:
            hit = np.ones(len(maybe), bool)
            for k, byte in enumerate(code):
                hit &= np.take(padded, maybe + k) == byte
            at = maybe[hit]
            firsts.append(at)
            lasts.append(at + len(code) - 1)
            for k in range(1, len(code)):
                word[at + k] = False
            is_mark |= hit
        word[maybe[~is_mark]] = True  # another character with the same lead byte
    inner = doc_starts[doc_starts < n]
    begin = np.empty(n, bool)  # a word byte after a non-word byte, or a mark
    begin[:1] = word[:1]
    np.greater(word[1:], word[:-1], out=begin[1:])
    begin[inner] = word[inner]  # a document's first word starts there whatever came before
    begin |= mark
    end = np.empty(n, bool)  # a word byte before a non-word byte, or a mark
    end[-1:] = word[-1:]
    np.greater(word[:-1], word[1:], out=end[:-1])
    before = inner[inner > 0] - 1
    end[before] = word[before]
    end |= mark
    for at in firsts:
        begin[at] = True
    for at in lasts:
        end[at] = True
    return np.flatnonzero(begin), np.flatnonzero(end) + 1


def prepare_chunk(texts: list[str], lowercase: bool, character: bool,
                  key_fn: KeyFunction) -> Chunk:
    """Encode ``texts`` and cut them into tokens (word or character), with their keys."""
    # str.encode, not t.encode: a str subclass's own encode() is not how the reference splits it
    parts = [str.encode(t.lower() if lowercase else t, "utf-8", "surrogatepass") for t in texts]
    sizes = np.fromiter(map(len, parts), np.int64, count=len(parts))
    buf = b"".join(parts) + bytes(16)
    n = len(buf) - 16
    doc_starts = np.cumsum(sizes) - sizes
    ascii_only = buf.isascii()
    if not character:
        starts, ends = _word_spans(buf, n, doc_starts, ascii_only)
        counts = np.diff(np.searchsorted(starts, np.append(doc_starts, n)))
        return Chunk(buf, starts, ends - starts, counts, key_fn)
    # a character starts at every byte that is not a UTF-8 continuation byte; most are one
    # byte long, and their key is that byte and the length 1
    padded = np.frombuffer(buf, np.uint8)
    if ascii_only:
        starts, lengths = np.arange(n), np.ones(n, np.int64)
    else:
        starts = np.flatnonzero((padded[:n] & 0xC0) != 0x80)
        lengths = np.diff(starts, append=n)
    keys = np.take(padded, starts).astype(np.uint64)
    keys |= U64(1 << 56)
    multi = np.flatnonzero(lengths > 1)
    if multi.size:
        keys[multi] = key_fn(words(buf), starts[multi], lengths[multi])
    counts = np.diff(np.searchsorted(starts, np.append(doc_starts, n)))
    return Chunk(buf, starts, lengths, counts, key_fn, keys)


def chunk_of_tokens(tokens: list[str], key_fn: KeyFunction) -> Chunk:
    """A ``Chunk`` in which each of ``tokens`` is taken whole as one token."""
    codes = [t.encode("utf-8", "surrogatepass") for t in tokens]
    sizes = np.fromiter(map(len, codes), np.int64, count=len(codes))
    return Chunk(b"".join(codes) + bytes(16), np.cumsum(sizes) - sizes, sizes,
                 np.ones(len(codes), np.int64), key_fn)
