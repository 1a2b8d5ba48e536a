"""Text to token ids: ``Tokenizer`` (word or character level), ``LenFilter`` and ``Truncate``.

Ids follow the 2015 convention: PAD=0, END=1, UNK=2, then the vocabulary by document frequency.
Words are split on spaces and split from punctuation (each punctuation mark is its own token).

>>> tok = Tokenizer(min_df=1)
>>> tok.fit_transform(["This. is.", "Example TEXT", "is text"])
[[5, 6, 3, 6], [7, 4], [3, 4]]
>>> tok.inverse_transform([[5, 6, 3, 6]])
['this . is .']
>>> tok.transform(["is this text?"], as_array=True)
TokenArray(1 sequences, 4 tokens, dtype=int32)

How it is fast: a small C extension (``passage/_tokens.c``, built by ``pip install``) reads each
text's bytes, splits them and looks every token up in a hash table of byte strings, in one pass
with no Python object per token. Without a C compiler the extension is not built and a numpy engine
does the same work (see "the vectorised engine" below). Both give exactly the ids of the
plain-Python algorithm (``tokenize_reference`` and dict counting), which is kept as the reference.
"""

from __future__ import annotations

import functools
import os
import re
import string
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from passage._checks import check_int, check_real
from passage.sequences import (
    TokenArray,
    _as_lists,
    _gc_paused,
    _positions,
    _shared_ints,
    sequence_lengths,
)

PAD, END, UNK = 0, 1, 2
SPECIAL = ("PAD", "END", "UNK")

_PUNCTUATION = set(string.punctuation) | {
    "\n", "\t", "\u2019", "\u2018", "\u201c", "\u201d", "\u00b4"}
_PUNCT_CLASS = "".join(re.escape(c) for c in sorted(_PUNCTUATION))
# A word is a run of anything but punctuation and the plain space; each mark stands alone.
_TOKEN_RE = re.compile(f"[^{_PUNCT_CLASS} ]+|[{_PUNCT_CLASS}]")


def tokenize(text: str) -> list[str]:
    """Split ``text`` into words and punctuation marks, the 2015 way.

    >>> tokenize("Hello, world!  It's\\tme")
    ['Hello', ',', 'world', '!', 'It', "'", 's', '\\t', 'me']
    """
    return _TOKEN_RE.findall(text)


def tokenize_reference(text: str) -> list[str]:
    """The 2015 character loop, kept as the slow reference ``tokenize`` is tested against."""
    out, word = [], ""
    for ch in text:
        if ch in _PUNCTUATION:
            out += [word, ch]
            word = ""
        elif ch == " ":
            out.append(word)
            word = ""
        else:
            word += ch
    out.append(word)
    return [t for t in out if t]


def check_texts(texts: object, what: str = "texts") -> list[str]:
    """``texts`` as a list of str, or a TypeError naming the first bad item and the fix."""
    if isinstance(texts, str | bytes):
        raise TypeError(
            f"{what} must be a list of strings, got a single {type(texts).__name__}; "
            f"wrap it in a list: [{what[:-1] if what.endswith('s') else what}]"
        )
    if not isinstance(texts, Sequence | np.ndarray) and not hasattr(texts, "__iter__"):
        raise TypeError(f"{what} must be a list of strings, got {type(texts).__name__}")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            hint = (
                "missing values (None/NaN) must be dropped or replaced by '' first"
                if t is None or (isinstance(t, float) and t != t)
                else "convert every item to str first"
            )
            raise TypeError(f"{what}[{i}] is {t!r} ({type(t).__name__}), not a str: {hint}")
    return texts


# == counting tokens ==============================================================================
# The three engines below (compiled, numpy, plain Python) return the same ``_Counts``: every
# distinct token gets a dense id in order of first occurrence, with its document and term
# frequencies. ``Tokenizer`` picks its vocabulary from that; the ids of the engines are identical
# (tests/test_preprocessing.py checks it).

try:
    from passage._tokens import Lexicon as _CompiledLexicon
except ImportError:  # installed without a C compiler: the numpy engine does the work
    _CompiledLexicon = None

# "compiled", "numpy" or "python" (the tests compare the three)
_ENGINE = "compiled" if _CompiledLexicon is not None else "numpy"


@dataclass
class _Counts:
    """Distinct tokens of a corpus: ``codes`` (dense ids, first occurrence first) per document."""

    codes: TokenArray
    df: np.ndarray  # documents containing each distinct token
    tf: np.ndarray  # occurrences of each distinct token
    tokens: Callable[[np.ndarray], list[str]]  # dense ids -> the tokens
    find: Callable[[Sequence[str]], list[int]]  # tokens -> dense ids (-1 if never seen)


def _split(texts: list[str], lowercase: bool, character: bool) -> list[list[str]]:
    """Tokens of every text, the plain-Python way."""
    if lowercase:
        texts = [t.lower() for t in texts]
    if character:
        return [list(t) for t in texts]
    return [_TOKEN_RE.findall(t) for t in texts]


def _count_python(texts: list[str], lowercase: bool, character: bool) -> _Counts:
    """The reference engine: regex tokens and a dict from token to id (kept in insertion order)."""
    index: dict[str, int] = {}
    codes = [[index.setdefault(tok, len(index)) for tok in doc]
             for doc in _split(texts, lowercase, character)]
    flat = TokenArray.from_sequences(codes)
    df = np.zeros(len(index), np.int64)
    for doc in codes:
        df[list(set(doc))] += 1
    vocab = list(index)
    return _Counts(flat, df, np.bincount(flat.values, minlength=len(index)),
                   tokens=lambda ids: [vocab[i] for i in ids],
                   find=lambda toks: [index.get(t, -1) for t in toks])


def _count_tokens(texts: list[str], lowercase: bool, character: bool) -> _Counts:
    """``_Counts`` from the compiled engine, else the numpy one, or from the Python one if asked
    or if two different tokens ever share a numpy hash key (never seen; the check makes the
    result exact regardless)."""
    if _ENGINE == "compiled":
        return _count_compiled(texts, lowercase, character)
    if _ENGINE == "numpy":
        try:
            return _count_numpy(texts, lowercase, character)
        except _KeyCollision:
            pass
    return _count_python(texts, lowercase, character)


# == the compiled engine =========================================================================
# passage/_tokens.c splits with the byte classes and multi-byte marks defined below, and keys
# tokens by their whole bytes (no collisions to check).

def _compiled_lexicon():
    return _CompiledLexicon(_BYTE_CLASS_TABLE, tuple(_MULTIBYTE_MARKS))


def _parts(texts: list[str]) -> list[list[str]]:
    """``texts`` in runs of whole texts, one per worker thread, of about equal characters; a
    single run when there are fewer than ``_PART_CHARS`` characters per worker."""
    total = sum(map(len, texts))
    return _chunk_groups(texts, max(_PART_CHARS, -(-total // max(_WORKERS, 1)))) or [texts]


def _count_parts(lexicons: list, parts: list[list[str]], *args) -> list[tuple[np.ndarray, ...]]:
    """``lexicon.count(part, *args)`` for each pair, in threads: (ids, counts) arrays."""
    with _thread_pool(parts) as pool:
        done = [_submit(pool, lex.count, part, *args)
                for lex, part in zip(lexicons, parts, strict=True)]
        return [(np.frombuffer(ids, np.int32), np.frombuffer(counts, np.int64))
                for ids, counts in (d.result() for d in done)]


def _count_compiled(texts: list[str], lowercase: bool, character: bool) -> _Counts:
    """``_Counts`` of the texts with the compiled engine (ids identical to ``_count_python``).
    Each thread counts a part of the texts in its own lexicon; the others are merged into the
    first in order, which gives the ids of counting all the texts in one."""
    parts = _parts(texts)
    lexicons = [_compiled_lexicon() for _ in parts]
    results = _count_parts(lexicons, parts, lowercase, character, True)
    lex, ids = lexicons[0], [results[0][0]]
    for other, (part_ids, _) in zip(lexicons[1:], results[1:], strict=True):
        ids.append(np.frombuffer(lex.merge(other), np.int32)[part_ids])
    df, tf = (np.frombuffer(f, np.int64) for f in lex.frequencies())
    codes = TokenArray(np.concatenate(ids), _offsets([counts for _, counts in results]))
    return _Counts(codes, df, tf, tokens=lambda i: lex.tokens(np.asarray(i).tolist()),
                   find=lambda toks: lex.find(list(toks)))


def _encode_compiled(texts: list[str], encoder: dict[str, int], lowercase: bool,
                     character: bool, as_lists: bool = False) -> TokenArray | list[list[int]]:
    """Ids of the tokens of ``texts`` under a fitted vocabulary, UNK for the others (the
    threads look their parts up in one lexicon, which does not change)."""
    lex = _compiled_lexicon()
    tokens = [tok for tok in encoder if tok]  # '' is never a token
    lex.add(tokens)
    # the vocabulary id of each lexicon id; unknown tokens come back as -1: the last entry, UNK
    to_id = np.fromiter(map(encoder.__getitem__, tokens), np.int32, count=len(tokens))
    to_id = np.append(to_id, np.int32(UNK))
    parts = _parts(texts)
    results = _count_parts([lex] * len(parts), parts, lowercase, character, False)
    codes = TokenArray(np.concatenate([to_id[ids] for ids, _ in results]),
                       _offsets([counts for _, counts in results]))
    return codes.tolist() if as_lists else codes


# == the vectorised engine ========================================================================
# Documents are lowercased (``str.lower``, as the Python engine does), encoded to UTF-8 and joined,
# about ``_CHUNK_CHARS`` characters at a time so the per-byte arrays stay in cache. In UTF-8 every
# byte of a non-ASCII character is >= 0x80, so word boundaries can be found byte by byte: a word is
# a run of bytes that are neither the space, nor an ASCII mark, nor part of one of the multi-byte
# marks (the curly quotes and the acute accent, matched as byte sequences). Chunks are prepared
# (encode, split, key) in worker threads while the main thread turns keys into ids: numpy releases
# the GIL, so the two cores both work.

_CHUNK_CHARS = 1 << 20
_WORKERS = min(4, os.cpu_count() or 1)  # threads preparing chunks ahead (0: none)
_PART_CHARS = 1 << 18  # the compiled engine gives each thread at least this many characters
_U64 = np.uint64
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio: Fibonacci hashing
_SHORT = 8  # tokens below 8 bytes get their bytes as key; longer ones a hash
_HASHED = np.uint64(0xFF << 56)  # top byte of a hashed key; exact keys have their length (1-7)
# _KEEP[n]: the low n bytes of a 64-bit word (n = 0..8)
_KEEP = np.array([(1 << (8 * n)) - 1 for n in range(_SHORT + 1)], dtype=np.uint64)


class _KeyCollision(Exception):
    """Two different tokens got the same 64-bit key (the caller falls back to Python)."""


def _byte_classes() -> tuple[np.ndarray, list[bytes]]:
    """Per byte value: 0 word, 1 the space, 2 a one-byte mark, 3 first byte of a multi-byte mark
    (or of another character starting with the same byte); and the multi-byte marks' UTF-8."""
    classes = np.zeros(256, np.uint8)
    multibyte = []
    for mark in sorted(_PUNCTUATION):
        code = mark.encode("utf-8")
        if len(code) == 1:
            classes[code[0]] = 2
        else:
            multibyte.append(code)
            classes[code[0]] = 3
    classes[ord(" ")] = 1
    return classes, multibyte


_BYTE_CLASS, _MULTIBYTE_MARKS = _byte_classes()
_BYTE_CLASS_TABLE = _BYTE_CLASS.tobytes()  # for bytes.translate, twice as fast as np.take


def _words(buf) -> np.ndarray:
    """``buf`` (bytes or uint8 array, padded) as little-endian uint64 words, without a copy."""
    return np.frombuffer(buf, "<u8", count=len(buf) // 8)


def _bytes_at(words: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """The 8 bytes starting at each byte offset ``pos`` as a little-endian uint64, from two
    aligned words (``words`` must extend 8 bytes past every ``pos``)."""
    q = pos >> 3
    shift = (pos & 7).view(np.uint64)  # bits to drop from the first word: 8 per byte
    shift <<= _U64(3)
    out = np.take(words, q)
    out >>= shift
    q += 1
    high = np.take(words, q)
    np.subtract(_U64(63), shift, out=shift)  # the second shift is split in two so it never
    high <<= shift  # reaches 64 (undefined) when the first one is 0
    high <<= _U64(1)
    out |= high
    return out


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every input bit reaches every output bit."""
    h = (h ^ (h >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> _U64(27))) * _U64(0x94D049BB133111EB)
    return h ^ (h >> _U64(31))


def _token_keys(words: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
                long: np.ndarray | None = None) -> np.ndarray:
    """A nonzero uint64 key per token: exact (bytes and length) below 8 bytes, else a hash.
    ``long``: the tokens of 8 bytes or more, if known."""
    first = _bytes_at(words, starts)
    keys = first & np.take(_KEEP, np.minimum(lengths, _SHORT - 1))
    keys |= lengths.astype(np.uint64) << _U64(56)
    if long is None:
        long = np.flatnonzero(lengths >= _SHORT)
    if long.size:
        starts, lengths = starts[long], lengths[long]
        h = lengths.astype(np.uint64) * _GOLDEN
        rows, word, done = np.arange(len(long)), first[long], 0
        while True:  # one round per 8 bytes, over the tokens that are still that long
            h[rows] = _mix(h[rows] ^ word)
            done += 8
            rows = rows[lengths[rows] > done]
            if not rows.size:
                break
            word = _bytes_at(words, starts[rows] + done) & \
                np.take(_KEEP, np.minimum(lengths[rows] - done, _SHORT))
        keys[long] = (h >> _U64(8)) | _HASHED
    return keys


def _same_bytes(words_a, starts_a, words_b, starts_b, lengths) -> np.ndarray:
    """Whether the byte strings at ``starts_a`` and ``starts_b`` (in the ``_words`` of two
    buffers), all of ``lengths`` bytes, are equal, pair by pair."""
    same = np.ones(len(lengths), bool)
    rows, done = np.arange(len(lengths)), 0
    while rows.size:
        diff = _bytes_at(words_a, starts_a[rows] + done) ^ _bytes_at(words_b, starts_b[rows] + done)
        diff &= np.take(_KEEP, np.minimum(lengths[rows] - done, _SHORT))
        same[rows[diff != 0]] = False
        done += 8
        rows = rows[(lengths[rows] > done) & same[rows]]
    return same


@dataclass
class _Chunk:
    """Consecutive documents, encoded and cut into tokens."""

    buf: bytes  # their UTF-8, then 16 zero bytes (so 8-byte reads past a token stay inside)
    starts: np.ndarray  # byte offset of every token
    lengths: np.ndarray  # byte length of every token
    counts: np.ndarray  # tokens per document
    keys: np.ndarray | None = None  # uint64 key of every token (computed if not given)
    words: np.ndarray = field(init=False)  # _words(buf)
    long: np.ndarray = field(init=False)  # the tokens of 8 bytes or more (hashed keys)

    def __post_init__(self):
        self.words = _words(self.buf)
        self.long = np.flatnonzero(self.lengths >= _SHORT)
        if self.keys is None:
            self.keys = _token_keys(self.words, self.starts, self.lengths, self.long)


def _word_spans(buf: bytes, n: int, doc_starts: np.ndarray, ascii_only: bool):
    """(starts, ends) in bytes of the tokens of ``tokenize`` (``_TOKEN_RE``) in the UTF-8 text
    ``buf[:n]`` (zero bytes after it); ``doc_starts``: where each document begins (a word never
    runs across two documents)."""
    padded = np.frombuffer(buf, np.uint8)
    cls = np.frombuffer(buf.translate(_BYTE_CLASS_TABLE), np.uint8, count=n)
    word = cls == 0
    mark = cls == 2
    firsts, lasts = [], []  # first and last bytes of the multi-byte marks
    if not ascii_only:
        maybe = np.flatnonzero(cls == 3)  # lead byte shared by a multi-byte mark
        is_mark = np.zeros(len(maybe), bool)
        for code in _MULTIBYTE_MARKS:
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


def _prepare_chunk(texts: list[str], lowercase: bool, character: bool) -> _Chunk:
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
        return _Chunk(buf, starts, ends - starts, counts)
    # a character starts at every byte that is not a UTF-8 continuation byte; most are one
    # byte long, and their key is that byte and the length 1
    padded = np.frombuffer(buf, np.uint8)
    if ascii_only:
        starts, lengths = np.arange(n), np.ones(n, np.int64)
    else:
        starts = np.flatnonzero((padded[:n] & 0xC0) != 0x80)
        lengths = np.diff(starts, append=n)
    keys = np.take(padded, starts).astype(np.uint64)
    keys |= _U64(1 << 56)
    multi = np.flatnonzero(lengths > 1)
    if multi.size:
        keys[multi] = _token_keys(_words(buf), starts[multi], lengths[multi])
    counts = np.diff(np.searchsorted(starts, np.append(doc_starts, n)))
    return _Chunk(buf, starts, lengths, counts, keys)


def _chunk_groups(texts: list[str], chars: int | None = None) -> list[list[str]]:
    """``texts`` cut into runs of whole documents of about ``chars`` (default
    ``_CHUNK_CHARS``) characters."""
    chars = chars or _CHUNK_CHARS
    ends = np.cumsum(np.fromiter(map(len, texts), np.int64, count=len(texts)))
    total = int(ends[-1]) if len(ends) else 0
    cuts = np.searchsorted(ends, np.arange(chars, total, chars), side="right")
    bounds = np.unique(np.concatenate([[0], cuts, [len(texts)]])).tolist()
    return [texts[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


@contextmanager
def _thread_pool(groups: list) -> Iterator[ThreadPoolExecutor | None]:
    """Worker threads when there is more than one chunk of work (numpy releases the GIL)."""
    if len(groups) < 2 or _WORKERS < 1:
        yield None
        return
    with ThreadPoolExecutor(_WORKERS) as pool:
        yield pool


def _submit(pool: ThreadPoolExecutor | None, fn: Callable, *args) -> Future:
    """``fn(*args)`` in the pool, or right now if there is no pool."""
    if pool is not None:
        return pool.submit(fn, *args)
    done: Future = Future()
    done.set_result(fn(*args))
    return done


def _in_order(pool: ThreadPoolExecutor | None, fn: Callable, groups: list, *args) -> Iterator:
    """``fn(group, *args)`` for every group, in order, computed a few groups ahead by the pool
    (no further, so only a few chunks' arrays are alive at a time)."""
    ahead = _WORKERS + 1
    pending = deque(_submit(pool, fn, g, *args) for g in groups[:ahead])
    for i in range(len(groups)):
        result = pending.popleft().result()
        if i + ahead < len(groups):
            pending.append(_submit(pool, fn, groups[i + ahead], *args))
        yield result


class _KeyTable:
    """Token keys (uint64, never 0) to ids: open addressing with linear probing, in numpy.

    A lookup probes every token's slot at once, then the next slot for the few that met another
    key, and so on. The table is kept at most half full, so few tokens need a second probe.
    """

    def __init__(self, bits: int = 16):
        self._allocate(bits)

    def _allocate(self, bits: int) -> None:
        """An empty table of 2**bits slots."""
        self.bits = bits
        self.keys = np.zeros(1 << bits, np.uint64)  # 0: empty slot
        self.ids = np.full(1 << bits, -1, np.int32)
        self.count = 0

    def _home(self, keys: np.ndarray) -> np.ndarray:
        slot = keys * _GOLDEN
        slot >>= _U64(64 - self.bits)
        return slot.view(np.int64)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """The id of every key, -1 for keys not in the table."""
        slot = self._home(keys)
        out = np.take(self.ids, slot)
        held = np.take(self.keys, slot)
        miss = np.flatnonzero(held != keys)
        out[miss] = -1
        todo = miss[held[miss] != 0]  # their slot holds another key: probe the next slots
        wrap = (1 << self.bits) - 1
        while todo.size:
            slot_t = (slot[todo] + 1) & wrap
            slot[todo] = slot_t
            held = self.keys[slot_t]
            hit = held == keys[todo]
            out[todo[hit]] = self.ids[slot_t[hit]]
            todo = todo[~hit & (held != 0)]
        return out

    def insert(self, keys: np.ndarray, ids: np.ndarray) -> None:
        """Add distinct keys that are not in the table yet, with their ids. Earlier keys get
        the better slots (nearer their home): put the frequent tokens first."""
        if 2 * (self.count + len(keys)) > len(self.keys):
            held = np.flatnonzero(self.keys)
            held = held[np.argsort(self.ids[held], kind="stable")]  # by id: the earlier first
            old_keys, old_ids = self.keys[held], self.ids[held]
            self._allocate(max(self.bits + 1, (4 * (self.count + len(keys))).bit_length()))
            self._place(old_keys, old_ids)
        self._place(keys, ids)

    def _place(self, keys: np.ndarray, ids: np.ndarray) -> None:
        slot = self._home(keys)
        todo = np.arange(len(keys))
        wrap = (1 << self.bits) - 1
        while todo.size:
            s = slot[todo]
            free = np.flatnonzero(self.keys[s] == 0)
            # of the keys claiming one free slot, the first one gets it
            _, first = np.unique(s[free], return_index=True)
            won = free[first]
            self.keys[s[won]] = keys[todo[won]]
            self.ids[s[won]] = ids[todo[won]]
            placed = np.zeros(len(todo), bool)
            placed[won] = True
            todo = todo[~placed]
            slot[todo] = (slot[todo] + 1) & wrap  # past a slot that is taken: probe the next
        self.count += len(keys)


@dataclass(frozen=True)
class _LongTokens:
    """The bytes of the tokens with hashed keys (8 bytes or more), by id. Replaced, never
    changed, when tokens are added: a worker thread can keep checking against an older one."""

    start: np.ndarray  # per id: offset in data (-1: a short token, with an exact key)
    size: np.ndarray  # per id: length in bytes (-1: short)
    data: np.ndarray  # uint8, the tokens one after the other, then 16 zero bytes

    def mismatched(self, chunk: _Chunk, ids: np.ndarray) -> np.ndarray:
        """Tokens of 8 bytes or more whose id (>= 0) stands for other bytes: a key collision."""
        rows = chunk.long[ids[chunk.long] >= 0]
        if not rows.size:
            return rows
        starts, sizes = self.start[ids[rows]], self.size[ids[rows]]
        same = sizes == chunk.lengths[rows]
        same[same] = _same_bytes(chunk.words, chunk.starts[rows[same]], _words(self.data),
                                 starts[same], sizes[same])
        return rows[~same]


class _Lexicon:
    """Distinct tokens: a ``_KeyTable`` plus the bytes of the long ones (``_LongTokens``), so
    that equal keys can be checked to be equal tokens and ids decoded back to text."""

    def __init__(self):
        self.table = _KeyTable()
        self.n = 0  # ids given so far (0..n-1) by ``add``
        self.key_of: list[np.ndarray] = []  # keys of ids 0..n-1, for decoding short tokens
        self.long = _LongTokens(np.zeros(0, np.int64), np.zeros(0, np.int64),
                                np.zeros(16, np.uint8))

    @classmethod
    def of_vocabulary(cls, encoder: dict[str, int]) -> _Lexicon:
        """A lexicon holding the tokens of a fitted ``Tokenizer.encoder``, with its ids."""
        lex = cls()
        tokens = [tok for tok in encoder if tok]  # '' is never a token
        chunk = _chunk_of_tokens(tokens)
        if len(np.unique(chunk.keys)) < len(chunk.keys):
            raise _KeyCollision
        ids = np.fromiter(map(encoder.__getitem__, tokens), np.int64, count=len(tokens))
        lex.table.insert(chunk.keys, ids)
        size = int(ids.max(initial=-1)) + 1
        start, length = np.full(size, -1, np.int64), np.full(size, -1, np.int64)
        start[ids[chunk.long]] = chunk.starts[chunk.long]
        length[ids[chunk.long]] = chunk.lengths[chunk.long]
        lex.long = _LongTokens(start, length, np.frombuffer(chunk.buf, np.uint8))
        return lex

    def add(self, chunk: _Chunk, rows: np.ndarray) -> None:
        """Give the next ids, in order, to the tokens ``rows`` of ``chunk`` (new, distinct)."""
        keys = chunk.keys[rows]
        self.table.insert(keys, np.arange(self.n, self.n + len(rows), dtype=np.int32))
        self.key_of.append(keys)
        sizes = np.where(chunk.lengths[rows] >= _SHORT, chunk.lengths[rows], -1)
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
        chunk = _chunk_of_tokens(list(tokens))
        ids = self.table.lookup(chunk.keys)
        ids[self.long.mismatched(chunk, ids)] = -1
        ids[chunk.lengths == 0] = -1
        return ids.tolist()


def _chunk_of_tokens(tokens: list[str]) -> _Chunk:
    """A ``_Chunk`` in which each of ``tokens`` is taken whole as one token."""
    codes = [t.encode("utf-8", "surrogatepass") for t in tokens]
    sizes = np.fromiter(map(len, codes), np.int64, count=len(codes))
    return _Chunk(b"".join(codes) + bytes(16), np.cumsum(sizes) - sizes, sizes,
                  counts=np.ones(len(codes), np.int64))


def _doc_frequency(ids: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
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


def _offsets(counts: list[np.ndarray]) -> np.ndarray:
    """Offsets of documents from their token counts (chunk by chunk)."""
    lengths = np.concatenate(counts) if counts else np.zeros(0, np.int64)
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def _check_and_count(long: _LongTokens, chunk: _Chunk, ids: np.ndarray,
                     n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(document, term) frequencies of the ids 0..n-1 in a chunk; None if a hashed key
    collided."""
    if long.mismatched(chunk, ids).size:
        return None
    return _doc_frequency(ids, chunk.counts, n), np.bincount(ids, minlength=n)


def _give_new_ids(lex: _Lexicon, chunk: _Chunk, ids: np.ndarray) -> None:
    """The tokens of ``chunk`` not in ``lex`` (``ids`` -1) get the next ids, in order of first
    occurrence. (``np.unique(..., return_index=True)`` would do, but sorts with an argsort.)"""
    new = np.flatnonzero(ids < 0)
    if not new.size:
        return
    keys = chunk.keys[new]
    distinct = np.sort(keys)
    distinct = distinct[np.concatenate([[True], distinct[1:] != distinct[:-1]])]
    by_key = _KeyTable()
    by_key.insert(distinct, np.arange(len(distinct), dtype=np.int32))
    which = by_key.lookup(keys)  # each new token: its key's rank among the distinct ones
    first = np.full(len(distinct), len(new))
    np.minimum.at(first, which, np.arange(len(new)))
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    ids[new] = lex.n + rank[which]
    lex.add(chunk, new[first[order]])


def _count_numpy(texts: list[str], lowercase: bool, character: bool) -> _Counts:
    """``_Counts`` of the texts with the vectorised engine (ids identical to ``_count_python``).

    The main thread turns keys into ids (it alone changes the lexicon); the workers prepare the
    next chunks and check and count the previous ones, against the lexicon as it was then.
    """
    lex = _Lexicon()
    codes, counts, checks = [], [], []
    groups = _chunk_groups(texts)
    with _thread_pool(groups) as pool:
        for chunk in _in_order(pool, _prepare_chunk, groups, lowercase, character):
            ids = lex.table.lookup(chunk.keys)
            _give_new_ids(lex, chunk, ids)
            codes.append(ids)
            counts.append(chunk.counts)
            checks.append(_submit(pool, _check_and_count, lex.long, chunk, ids, lex.n))
        df, tf = np.zeros(lex.n, np.int64), np.zeros(lex.n, np.int64)
        for check in checks:
            parts = check.result()
            if parts is None:
                raise _KeyCollision
            df[:len(parts[0])] += parts[0]
            tf[:len(parts[1])] += parts[1]
    flat = TokenArray(np.concatenate(codes) if codes else np.zeros(0, np.int32),
                      _offsets(counts))
    return _Counts(flat, df, tf, tokens=lex.tokens, find=lex.find)


def _encode_chunk(texts: list[str], lowercase: bool, character: bool,
                  lex: _Lexicon) -> tuple[np.ndarray, np.ndarray]:
    """(ids, tokens per document) of some texts under a fixed lexicon, UNK for other tokens."""
    chunk = _prepare_chunk(texts, lowercase, character)
    ids = lex.table.lookup(chunk.keys)
    ids[lex.long.mismatched(chunk, ids)] = -1  # a vocabulary token's hash, but other bytes
    ids[ids < 0] = UNK
    return ids, chunk.counts


def _encode_numpy(texts: list[str], encoder: dict[str, int], lowercase: bool, character: bool,
                  as_lists: bool = False) -> TokenArray | list[list[int]]:
    """Ids of the tokens of ``texts`` under a fitted vocabulary, UNK for the others. The
    vocabulary does not change, so the workers do all the work; with ``as_lists`` this thread
    turns each chunk into lists of ints meanwhile."""
    lex = _Lexicon.of_vocabulary(encoder)
    groups = _chunk_groups(texts)
    parts, lists = [], []
    with _thread_pool(groups) as pool:  # (the caller, Tokenizer.transform, pauses the collector)
        for ids, counts in _in_order(pool, _encode_chunk, groups, lowercase, character, lex):
            if as_lists:
                lists += TokenArray(ids, _offsets([counts])).tolist()
            else:
                parts.append((ids, counts))
    if as_lists:
        return lists
    return TokenArray(np.concatenate([ids for ids, _ in parts]) if parts
                      else np.zeros(0, np.int32), _offsets([n for _, n in parts]))


def _collector_paused(method: Callable) -> Callable:
    """``method`` run with the cycle collector paused: tokenizing makes many lists but no cycles,
    and a collection triggered meanwhile walks every container alive (earlier results too)."""
    @functools.wraps(method)
    def run(*args, **kwargs):
        with _gc_paused():
            return method(*args, **kwargs)
    return run


class Tokenizer:
    """Turns a list of texts into lists of token ids (sklearn-style fit / transform).

    max_features: size of the id space including PAD, END and UNK (rarer tokens become UNK).
    min_df: a token must occur in at least this many documents to get its own id.
    lowercase: lowercase texts first (``str.lower``).  character: character tokens instead of words.

    ``transform`` and ``fit_transform`` return lists of lists of ints, as in 2015; with
    ``as_array=True`` they return a ``TokenArray`` (flat int32 ids and offsets: half the memory
    or less, faster minibatches), accepted by ``RNN.fit`` and ``predict`` like the lists.
    """

    def __init__(self, max_features: int = 9997, min_df: int = 10, lowercase: bool = True,
                 character: bool = False):
        self.max_features = max_features
        self.min_df = min_df
        self.lowercase = lowercase
        self.character = character

    # -- splitting (plain Python; the fast engine gives the same tokens) ------------------------
    def _split(self, texts: list[str]) -> list[list[str]]:
        return _split(texts, self.lowercase, self.character)

    # -- sklearn API -------------------------------------------------------------------------
    @_collector_paused
    def fit(self, texts: Sequence[str]) -> Tokenizer:
        """Learn the vocabulary: tokens by document frequency, ties by first occurrence."""
        self._choose_vocabulary(self._count(texts))
        return self

    def _check_fit(self, texts) -> list[str]:
        if not isinstance(self.max_features, int) or self.max_features < 4:
            raise ValueError(f"max_features must be an int >= 4 (3 ids are reserved), "
                             f"got {self.max_features!r}")
        if not isinstance(self.min_df, int) or self.min_df < 1:
            raise ValueError(f"min_df must be an int >= 1, got {self.min_df!r}")
        texts = check_texts(texts)
        if not texts:
            raise ValueError("cannot fit a Tokenizer on an empty list of texts")
        return texts

    def _count(self, texts) -> _Counts:
        return _count_tokens(self._check_fit(texts), self.lowercase, self.character)

    def _choose_vocabulary(self, counts: _Counts) -> np.ndarray:
        """Set encoder, decoder, n_features and unk_rate_ from the counts; returns the id of
        every distinct token (UNK for those left out).

        A token spelled like a special name (possible with lowercase=False, e.g. "END" in
        "THE END") keeps that special id, as ``encoder`` can hold the name once; it takes no
        vocabulary slot, so the ids stay 0..n_features-1.
        """
        df = counts.df
        candidates = np.flatnonzero(df >= self.min_df)
        # most documents first; ties in order of first occurrence, which is the id order
        candidates = candidates[np.argsort(-df[candidates], kind="stable")]
        n_kept = self.max_features - len(SPECIAL)
        top = candidates[:n_kept + len(SPECIAL)]
        names = counts.tokens(top)
        kept = [(i, tok) for i, tok in zip(top.tolist(), names, strict=True)
                if tok not in SPECIAL][:n_kept]
        self.encoder = {name: i for i, name in enumerate(SPECIAL)}
        self.encoder.update({tok: i for i, (_, tok) in enumerate(kept, start=len(SPECIAL))})
        self.decoder = {i: tok for tok, i in self.encoder.items()}
        self.n_features = len(self.encoder)
        to_id = np.full(len(df), UNK, np.int32)
        kept_ids = np.array([i for i, _ in kept], np.int64)
        to_id[kept_ids] = np.arange(len(SPECIAL), len(SPECIAL) + len(kept))
        for special, i in zip(SPECIAL, counts.find(SPECIAL), strict=True):
            if i >= 0:
                to_id[i] = self.encoder[special]
        n_tokens = int(counts.tf.sum())
        n_known = int(counts.tf[kept_ids].sum())
        self.unk_rate_ = 1.0 - n_known / n_tokens if n_tokens else 0.0
        if self.unk_rate_ > 0.5:
            warnings.warn(
                f"Tokenizer kept {len(kept)} tokens (min_df={self.min_df}, max_features="
                f"{self.max_features}): {self.unk_rate_:.0%} of the training tokens will be UNK. "
                "For a small corpus lower min_df (e.g. Tokenizer(min_df=1)).",
                UserWarning, stacklevel=3,  # the caller of fit / fit_transform
            )
        return to_id

    def _encode(self, docs: list[list[str]]) -> list[list[int]]:
        get = self.encoder.get
        return [[get(tok, UNK) for tok in doc] for doc in docs]

    @_collector_paused
    def transform(self, texts: Sequence[str],
                  as_array: bool = False) -> list[list[int]] | TokenArray:
        """Token ids for each text; tokens outside the vocabulary become UNK (2).

        as_array: return a ``TokenArray`` instead of lists of lists of ints.
        """
        if not hasattr(self, "encoder"):
            raise RuntimeError("this Tokenizer is not fitted yet: call fit(texts) first")
        texts = check_texts(texts)
        if _ENGINE == "compiled":
            return _encode_compiled(texts, self.encoder, self.lowercase, self.character,
                                    as_lists=not as_array)
        if _ENGINE == "numpy":
            try:
                return _encode_numpy(texts, self.encoder, self.lowercase, self.character,
                                     as_lists=not as_array)
            except _KeyCollision:  # two vocabulary entries share a key: never seen
                pass
        ids = self._encode(self._split(texts))
        return TokenArray.from_sequences(ids) if as_array else ids

    @_collector_paused
    def fit_transform(self, texts: Sequence[str],
                      as_array: bool = False) -> list[list[int]] | TokenArray:
        """``fit`` then ``transform``, splitting the texts only once."""
        counts = self._count(texts)
        to_id = self._choose_vocabulary(counts)
        codes = counts.codes
        if as_array:
            return TokenArray(to_id[codes.values], codes.offsets)
        # the int object of each token's final id, straight from its dense id
        return _as_lists(codes.values, codes.offsets, _shared_ints(self.n_features)[to_id])

    def inverse_transform(self, codes: Sequence[Sequence[int]]) -> list[str]:
        """Ids back to text (words joined by spaces, characters joined directly)."""
        if not hasattr(self, "decoder"):
            raise RuntimeError("this Tokenizer is not fitted yet: call fit(texts) first")
        joiner = "" if self.character else " "
        out = []
        for code in codes:
            try:
                out.append(joiner.join(self.decoder[int(i)] for i in code))
            except KeyError as e:
                raise ValueError(f"id {e.args[0]} is not in this tokenizer's vocabulary "
                                 f"(ids 0..{self.n_features - 1})") from None
        return out

    # -- persistence: plain data only -------------------------------------------------------------
    def get_config(self) -> dict:
        config = {"max_features": self.max_features, "min_df": self.min_df,
                  "lowercase": self.lowercase, "character": self.character}
        if hasattr(self, "encoder"):
            config["vocabulary"] = [self.decoder[i] for i in range(self.n_features)]
        return config

    @classmethod
    def from_config(cls, config: dict) -> Tokenizer:
        config = dict(config)
        vocab = config.pop("vocabulary", None)
        tok = cls(**config)
        if vocab is not None:
            tok.encoder = {t: i for i, t in enumerate(vocab)}
            tok.decoder = dict(enumerate(vocab))
            tok.n_features = len(vocab)
        return tok


class LenFilter:
    """Drops training sequences longer than a length limit, and says how many it dropped.

    With ``percentile > 0`` the limit is that percentile of the lengths, clipped to
    ``[min_max_len, max_len]``. Not needed for speed: padding costs nothing in Passage.
    """

    def __init__(self, max_len: int = 1000, min_max_len: int = 100, percentile: float = 99):
        self.max_len = max_len
        self.min_max_len = min_max_len
        self.percentile = percentile

    def _check(self) -> None:
        for name in ("max_len", "min_max_len"):
            check_int(name, getattr(self, name), hint=" (a length in tokens)")
        check_real("percentile", self.percentile, low=0.0, high=100.0)

    def limit(self, lengths: Sequence[int]) -> float:
        if self.percentile > 0:
            return float(np.clip(np.percentile(lengths, self.percentile), self.min_max_len,
                                 self.max_len))
        return float(self.max_len)

    def filter(self, *data):
        """(X, Y, ...) without the examples whose X is longer than the limit; a ValueError when
        that would leave none (nothing to train on)."""
        self._check()
        lens = sequence_lengths(data[0])
        if len(lens) == 0:
            return data[0] if len(data) == 1 else data
        max_len = self.limit(lens)
        keep = np.flatnonzero(lens <= max_len)
        if len(keep) == 0:
            raise ValueError(
                f"LenFilter would drop all {len(lens)} sequences (every one is longer than "
                f"{max_len:.0f} tokens), leaving nothing to train on: raise max_len (it is "
                f"{self.max_len}), or cut long sequences instead of dropping them with "
                f"len_filter=Truncate({self.max_len})")
        if len(keep) < len(lens):
            warnings.warn(
                f"LenFilter dropped {len(lens) - len(keep)} of {len(lens)} sequences longer than "
                f"{max_len:.0f} tokens (pass len_filter=None to keep them all)",
                UserWarning, stacklevel=2,
            )
        picked = tuple(d[keep] if isinstance(d, TokenArray) else [d[i] for i in keep]
                       for d in data)
        return picked[0] if len(data) == 1 else picked


class Truncate:
    """Shortens training sequences longer than ``max_len`` tokens rather than dropping them.

    ``keep`` says which tokens stay: ``'head'`` (the first ``max_len``), ``'tail'`` (the last) or
    ``'ends'`` (the first half and the last half, which for reviews holds the opening and the
    verdict; Sun et al. 2019 found head + tail best for long IMDB reviews; with ``max_len=1``
    it keeps the first token). Pass it to ``RNN.fit(..., len_filter=Truncate(256))`` to train on
    less text per epoch; ``predict`` still reads whole sequences. Per-token targets (one label
    per token, as in tagging) are cut the same way. After a call, ``n_cut_`` says how many
    sequences were cut and ``kept_`` which fraction of the tokens was kept.

    >>> Truncate(4, keep="ends").transform([[1, 2, 3, 4, 5, 6], [7, 8]])
    [[1, 2, 5, 6], [7, 8]]
    """

    KEEP = ("head", "tail", "ends")

    def __init__(self, max_len: int = 256, keep: str = "ends"):
        self.max_len = max_len
        self.keep = keep

    def _check(self) -> None:
        if isinstance(self.max_len, bool) or not isinstance(self.max_len, (int, np.integer)) \
                or self.max_len < 1:
            raise ValueError(f"max_len must be a positive int, got {self.max_len!r}")
        if self.keep not in self.KEEP:
            raise ValueError(f"keep must be one of {self.KEEP}, got {self.keep!r}")

    def _head(self) -> int:
        """Tokens kept from the start of a cut sequence (the rest come from its end)."""
        m = int(self.max_len)
        return {"head": m, "tail": 0, "ends": m - m // 2}[self.keep]

    def transform(self, X):
        """X (lists/arrays of ids, or a ``TokenArray``) with every sequence cut to max_len."""
        self._check()
        return self._cut_all(X, sequence_lengths(X))

    def _cut_all(self, X, lengths: np.ndarray):
        """transform, given the lengths of X (filter needs them for the targets too)."""
        long = lengths > self.max_len
        self.n_cut_ = int(long.sum())
        self.kept_ = float(np.minimum(lengths, self.max_len).sum() / max(1, lengths.sum()))
        if not isinstance(X, TokenArray):
            return [self._cut(x) for x in X]
        head = np.where(long, self._head(), lengths)
        tail = np.where(long, int(self.max_len) - head, 0)
        starts = np.stack([X.offsets[:-1], X.offsets[1:] - tail], axis=1).reshape(-1)
        offsets = np.zeros(len(X) + 1, dtype=np.int64)
        np.cumsum(head + tail, out=offsets[1:])
        pieces = np.stack([head, tail], axis=1).reshape(-1)
        return TokenArray(X.values[_positions(starts, pieces)], offsets)

    def _cut(self, x):
        n, m, h = len(x), int(self.max_len), self._head()
        if n <= m:
            return x
        if self.keep != "ends":
            return x[:m] if h else x[n - m:]
        if isinstance(x, np.ndarray):
            return np.concatenate([x[:h], x[n - (m - h):]])
        return list(x[:h]) + list(x[n - (m - h):])

    def filter(self, *data):
        """``fit``'s len_filter hook: (X, Y) with long sequences of X cut. Y is cut the same way
        when it holds one label per token, i.e. every target is as long as its sequence."""
        self._check()
        lengths = sequence_lengths(data[0])
        out = [self._cut_all(data[0], lengths)]
        for Y in data[1:]:
            per_token = self.n_cut_ and all(
                hasattr(y, "__len__") and not isinstance(y, str) and len(y) == n
                for y, n in zip(Y, lengths, strict=True))
            out.append([self._cut(y) for y in Y] if per_token else Y)
        return out[0] if len(data) == 1 else tuple(out)
