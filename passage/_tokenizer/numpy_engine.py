"""The numpy engine, used when the compiled one is not built: the same ids as the reference, in
vectorised numpy (about 2.5x slower than compiled, 3x faster than plain Python).

Texts are processed ``settings.chunk_chars`` characters at a time (``spans.prepare_chunk``:
encode, split, key every token), in worker threads while the calling thread turns keys into ids
with a ``Lexicon`` (a ``table.KeyTable`` plus the bytes of the tokens with hashed keys): numpy
releases the GIL, so the cores all work. Hashed keys are checked against the tokens' bytes; if
two different tokens ever share a key (never seen), the reference engine's result is returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from passage._tokenizer import reference
from passage._tokenizer.base import UNK, Counts, EngineSettings, VocabularyCache, offsets
from passage._tokenizer.chunks import chunk_groups, in_order, submit, thread_pool
from passage._tokenizer.keys import SHORT, KeyCollision, same_bytes, token_keys, words
from passage._tokenizer.spans import Chunk, KeyFunction, chunk_of_tokens, prepare_chunk
from passage._tokenizer.table import KeyTable
from passage.sequences import TokenArray


@dataclass(frozen=True)
class _LongTokens:
    """The bytes of the tokens with hashed keys (8 bytes or more), by id. Replaced, never
    changed, when tokens are added: a worker thread can keep checking against an older one."""

    start: np.ndarray  # per id: offset in data (-1: a short token, with an exact key)
    size: np.ndarray  # per id: length in bytes (-1: short)
    data: np.ndarray  # uint8, the tokens one after the other, then 16 zero bytes

    def mismatched(self, chunk: Chunk, ids: np.ndarray) -> np.ndarray:
        """Tokens of 8 bytes or more whose id (>= 0) stands for other bytes: a key collision."""
        rows = chunk.long[ids[chunk.long] >= 0]
        if not rows.size:
            return rows
        starts, sizes = self.start[ids[rows]], self.size[ids[rows]]
        same = sizes == chunk.lengths[rows]
        same[same] = same_bytes(chunk.words, chunk.starts[rows[same]], words(self.data),
                                starts[same], sizes[same])
        return rows[~same]


class Lexicon:
    """Distinct tokens: a ``KeyTable`` plus the bytes of the long ones (``_LongTokens``), so
    that equal keys can be checked to be equal tokens and ids decoded back to text."""

    def __init__(self, key_fn: KeyFunction = token_keys):
        self.key_fn = key_fn
        self.table = KeyTable()
        self.n = 0  # ids given so far (0..n-1) by ``add``
        self.key_of: list[np.ndarray] = []  # keys of ids 0..n-1, for decoding short tokens
        self.long = _LongTokens(np.zeros(0, np.int64), np.zeros(0, np.int64),
                                np.zeros(16, np.uint8))

    @classmethod
    def of_vocabulary(cls, encoder: dict[str, int], key_fn: KeyFunction = token_keys) -> Lexicon:
        """A lexicon holding the tokens of a fitted ``Tokenizer.encoder``, with its ids."""
        lex = cls(key_fn)
        tokens = [tok for tok in encoder if tok]  # '' is never a token
        chunk = chunk_of_tokens(tokens, key_fn)
        assert chunk.keys is not None  # set by Chunk.__post_init__
        if len(np.unique(chunk.keys)) < len(chunk.keys):
            raise KeyCollision
        ids = np.fromiter(map(encoder.__getitem__, tokens), np.int64, count=len(tokens))
        lex.table.insert(chunk.keys, ids)
        size = int(ids.max(initial=-1)) + 1
        start, length = np.full(size, -1, np.int64), np.full(size, -1, np.int64)
        start[ids[chunk.long]] = chunk.starts[chunk.long]
        length[ids[chunk.long]] = chunk.lengths[chunk.long]
        lex.long = _LongTokens(start, length, np.frombuffer(chunk.buf, np.uint8))
        return lex

    def add(self, chunk: Chunk, rows: np.ndarray) -> None:
        """Give the next ids, in order, to the tokens ``rows`` of ``chunk`` (new, distinct)."""
        assert chunk.keys is not None  # set by Chunk.__post_init__
        keys = chunk.keys[rows]
        self.table.insert(keys, np.arange(self.n, self.n + len(rows), dtype=np.int32))
        self.key_of.append(keys)
        sizes = np.where(chunk.lengths[rows] >= SHORT, chunk.lengths[rows], -1)
        long = np.flatnonzero(sizes > 0)
        starts = np.full(len(rows), -1, np.int64)
        data = self.long.data
        if long.size:  # append their bytes, in order, before the 16 zero bytes
            ends = np.cumsum(sizes[long])
            starts[long] = len(data) - 16 + ends - sizes[long]
            at = np.repeat(chunk.starts[rows[long]] - (ends - sizes[long]), sizes[long])
            at += np.arange(int(ends[-1]))
            data = np.concatenate([data[:-16], np.frombuffer(chunk.buf, np.uint8)[at],
                                   np.zeros(16, np.uint8)])
        self.long = _LongTokens(np.concatenate([self.long.start, starts]),
                                np.concatenate([self.long.size, sizes]), data)
        self.n += len(rows)

    def tokens(self, ids: np.ndarray) -> list[str]:
        """The text of the tokens with these ids (given by ``add``)."""
        keys = np.concatenate(self.key_of) if self.key_of else np.zeros(0, np.uint64)
        out = []
        for i in np.asarray(ids).tolist():
            start, size = int(self.long.start[i]), int(self.long.size[i])
            if start >= 0:
                code = self.long.data[start:start + size].tobytes()
            else:
                key = int(keys[i])
                code = (key & ((1 << 56) - 1)).to_bytes(key >> 56, "little")
            out.append(code.decode("utf-8", "surrogatepass"))
        return out

    def find(self, tokens: Sequence[str]) -> list[int]:
        """Ids of these tokens, -1 for those not in the lexicon."""
        chunk = chunk_of_tokens(list(tokens), self.key_fn)
        assert chunk.keys is not None  # set by Chunk.__post_init__
        ids = self.table.lookup(chunk.keys)
        ids[self.long.mismatched(chunk, ids)] = -1
        ids[chunk.lengths == 0] = -1
        return ids.tolist()


def doc_frequency(ids: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    """How many of the documents (``counts`` tokens each) hold each of the ids 0..n-1.

    The low ids (the frequent tokens: ids follow first occurrence) are marked in a table of
    documents x ids, at most 4 cells per token; the few other (document, id) pairs are sorted
    to drop repeats."""
    docs = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    k = min(n, 4 * len(ids) // max(len(counts), 1))
    low = ids < k
    seen = np.zeros(len(counts) * k, bool)
    seen[docs[low] * k + ids[low]] = True
    df = np.zeros(n, np.int64)
    df[:k] = np.count_nonzero(seen.reshape(len(counts), k), axis=0)
    pairs = docs[~low] << 32
    pairs |= ids[~low]  # (document, token) in one int64; np.sort is faster than np.unique here
    pairs.sort()
    first = np.ones(len(pairs), bool)
    np.not_equal(pairs[1:], pairs[:-1], out=first[1:])
    return df + np.bincount(pairs[first] & 0xFFFFFFFF, minlength=n)


def _check_and_count(long: _LongTokens, chunk: Chunk, ids: np.ndarray,
                     n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(document, term) frequencies of the ids 0..n-1 in a chunk; None if a hashed key
    collided."""
    if long.mismatched(chunk, ids).size:
        return None
    return doc_frequency(ids, chunk.counts, n), np.bincount(ids, minlength=n)


def _give_new_ids(lex: Lexicon, chunk: Chunk, ids: np.ndarray) -> None:
    """The tokens of ``chunk`` not in ``lex`` (``ids`` -1) get the next ids, in order of first
    occurrence. (``np.unique(..., return_index=True)`` would do, but sorts with an argsort.)"""
    new = np.flatnonzero(ids < 0)
    if not new.size:
        return
    assert chunk.keys is not None  # set by Chunk.__post_init__
    keys = chunk.keys[new]
    distinct = np.sort(keys)
    distinct = distinct[np.concatenate([[True], distinct[1:] != distinct[:-1]])]
    by_key = KeyTable()
    by_key.insert(distinct, np.arange(len(distinct), dtype=np.int32))
    which = by_key.lookup(keys)  # each new token: its key's rank among the distinct ones
    first = np.full(len(distinct), len(new))
    np.minimum.at(first, which, np.arange(len(new)))
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    ids[new] = lex.n + rank[which]
    lex.add(chunk, new[first[order]])


def _count(texts: list[str], lowercase: bool, character: bool,
           settings: EngineSettings) -> Counts:
    """The calling thread turns keys into ids (it alone changes the lexicon); the workers
    prepare the next chunks and check and count the previous ones, against the lexicon as it
    was then."""
    key_fn = settings.token_keys or token_keys
    lex = Lexicon(key_fn)
    codes, counts, checks = [], [], []
    groups = chunk_groups(texts, settings.chunk_chars)
    with thread_pool(groups, settings.workers) as pool:
        for chunk in in_order(pool, settings.workers + 1, prepare_chunk, groups, lowercase,
                              character, key_fn):
            ids = lex.table.lookup(chunk.keys)
            _give_new_ids(lex, chunk, ids)
            codes.append(ids)
            counts.append(chunk.counts)
            checks.append(submit(pool, _check_and_count, lex.long, chunk, ids, lex.n))
        df, tf = np.zeros(lex.n, np.int64), np.zeros(lex.n, np.int64)
        for check in checks:
            freqs = check.result()
            if freqs is None:
                raise KeyCollision
            df[:len(freqs[0])] += freqs[0]
            tf[:len(freqs[1])] += freqs[1]
    flat = TokenArray(np.concatenate(codes) if codes else np.zeros(0, np.int32),
                      offsets(counts))
    return Counts(flat, df, tf, tokens=lex.tokens, find=lex.find)


def count(texts: list[str], lowercase: bool, character: bool,
          settings: EngineSettings) -> Counts:
    """``Counts`` of the texts (ids identical to the reference engine's)."""
    try:
        return _count(texts, lowercase, character, settings)
    except KeyCollision:
        return reference.count(texts, lowercase, character)


def _encode_chunk(texts: list[str], lowercase: bool, character: bool,
                  lex: Lexicon) -> tuple[np.ndarray, np.ndarray]:
    """(ids, tokens per document) of some texts under a fixed lexicon, UNK for other tokens."""
    chunk = prepare_chunk(texts, lowercase, character, lex.key_fn)
    assert chunk.keys is not None  # set by Chunk.__post_init__
    ids = lex.table.lookup(chunk.keys)
    ids[lex.long.mismatched(chunk, ids)] = -1  # a vocabulary token's hash, but other bytes
    ids[ids < 0] = UNK
    return ids, chunk.counts


_VOCABULARIES = VocabularyCache()


def encode(texts: list[str], encoder: dict[str, int], lowercase: bool, character: bool,
           as_lists: bool, settings: EngineSettings) -> TokenArray | list[list[int]]:
    """Ids of the tokens of ``texts`` under a fitted vocabulary, UNK for the others. The
    vocabulary does not change, so the workers do all the work; with ``as_lists`` the calling
    thread turns each chunk into lists of ints meanwhile."""
    try:
        if settings.token_keys is None:  # (a key function of a test's own is never kept)
            lex = _VOCABULARIES.get(encoder, lambda: Lexicon.of_vocabulary(encoder))
        else:
            lex = Lexicon.of_vocabulary(encoder, settings.token_keys)
    except KeyCollision:  # two vocabulary entries share a key: never seen
        return reference.encode(texts, encoder, lowercase, character, as_lists)
    groups = chunk_groups(texts, settings.chunk_chars)
    chunks, lists = [], []
    with thread_pool(groups, settings.workers) as pool:  # (Tokenizer pauses the collector)
        for ids, counts in in_order(pool, settings.workers + 1, _encode_chunk, groups,
                                    lowercase, character, lex):
            if as_lists:
                lists += TokenArray(ids, offsets([counts])).tolist()
            else:
                chunks.append((ids, counts))
    if as_lists:
        return lists
    return TokenArray(np.concatenate([ids for ids, _ in chunks]) if chunks
                      else np.zeros(0, np.int32), offsets([n for _, n in chunks]))
