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
does the same work. Both give exactly the ids of the plain-Python algorithm (``tokenize_reference``
and dict counting), which is kept as the reference. The engines live in the private package
``passage._tokenizer``, which says how to choose one (``with passage._tokenizer.settings(...)``).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np

from passage import _tokenizer
from passage._checks import check_int, check_real
from passage._tokenizer import compiled
from passage._tokenizer.base import END, PAD, SPECIAL, UNK, Counts
from passage._tokenizer.rules import PUNCTUATION as _PUNCTUATION
from passage._tokenizer.rules import TOKEN_RE as _TOKEN_RE
from passage.exceptions import NotFittedError
from passage.sequences import (
    TokenArray,
    _as_lists,
    _gc_paused,
    _positions,
    _shared_ints,
    sequence_lengths,
)

__all__ = ["END", "PAD", "SPECIAL", "UNK", "LenFilter", "Tokenizer", "Truncate", "check_texts",
           "tokenize", "tokenize_reference"]

# None when passage/_tokens.c is not built (tests/conftest.py's ``compiled`` fixture reads it)
_CompiledLexicon = compiled.Lexicon


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

    The engine doing the work (compiled, numpy or plain Python: the same ids) is not a parameter:
    it is chosen per run, with ``passage._tokenizer.settings`` (see that module).
    """

    def __init__(self, max_features: int = 9997, min_df: int = 10, lowercase: bool = True,
                 character: bool = False):
        self.max_features = max_features
        self.min_df = min_df
        self.lowercase = lowercase
        self.character = character

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

    def _count(self, texts) -> Counts:
        return _tokenizer.count(self._check_fit(texts), self.lowercase, self.character)

    def _choose_vocabulary(self, counts: Counts) -> np.ndarray:
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

    @_collector_paused
    def transform(self, texts: Sequence[str],
                  as_array: bool = False) -> list[list[int]] | TokenArray:
        """Token ids for each text; tokens outside the vocabulary become UNK (2).

        as_array: return a ``TokenArray`` instead of lists of lists of ints.
        """
        if not hasattr(self, "encoder"):
            raise NotFittedError("this Tokenizer is not fitted yet: call fit(texts) first")
        return _tokenizer.encode(check_texts(texts), self.encoder, self.lowercase,
                                 self.character, as_lists=not as_array)

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
            raise NotFittedError("this Tokenizer is not fitted yet: call fit(texts) first")
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
        config: dict = {"max_features": self.max_features, "min_df": self.min_df,
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

    def limit(self, lengths: Sequence[int] | np.ndarray) -> float:
        if self.percentile > 0:
            return float(np.clip(np.percentile(lengths, self.percentile), self.min_max_len,
                                 self.max_len))
        return float(self.max_len)

    def filter(self, *data: Sequence[Any] | np.ndarray) -> Any:
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
        picked = tuple(d[keep] if isinstance(d, TokenArray) else [d[i] for i in cast(Any, keep)]
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

    def transform(self, X: Sequence[Any] | np.ndarray) -> list[Any] | TokenArray:
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

    def filter(self, *data: Sequence[Any] | np.ndarray) -> Any:
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
