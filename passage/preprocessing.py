"""Text to token ids: ``Tokenizer`` (word or character level) and ``LenFilter``.

Ids follow the 2015 convention: PAD=0, END=1, UNK=2, then the vocabulary by document frequency.
Words are split on spaces and split from punctuation (each punctuation mark is its own token).

>>> tok = Tokenizer(min_df=1)
>>> tok.fit_transform(["This. is.", "Example TEXT", "is text"])
[[5, 6, 3, 6], [7, 4], [3, 4]]
>>> tok.inverse_transform([[5, 6, 3, 6]])
['this . is .']
"""

from __future__ import annotations

import re
import string
import warnings
from collections import Counter
from collections.abc import Sequence

import numpy as np

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


class Tokenizer:
    """Turns a list of texts into lists of token ids (sklearn-style fit / transform).

    max_features: size of the id space including PAD, END and UNK (rarer tokens become UNK).
    min_df: a token must occur in at least this many documents to get its own id.
    lowercase: lowercase texts first.  character: character tokens instead of words.
    """

    def __init__(self, max_features: int = 9997, min_df: int = 10, lowercase: bool = True,
                 character: bool = False):
        self.max_features = max_features
        self.min_df = min_df
        self.lowercase = lowercase
        self.character = character

    # -- splitting -------------------------------------------------------------------------
    def _split(self, texts: list[str]) -> list[list[str]]:
        if self.lowercase:
            texts = [t.lower() for t in texts]
        if self.character:
            return [list(t) for t in texts]
        return [_TOKEN_RE.findall(t) for t in texts]

    # -- sklearn API -------------------------------------------------------------------------
    def fit(self, texts: Sequence[str]) -> Tokenizer:
        """Learn the vocabulary: tokens by document frequency, ties by first occurrence."""
        self._fit_docs(self._split(self._check_fit(texts)))
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

    def _fit_docs(self, docs: list[list[str]]) -> None:
        tf: Counter[str] = Counter()  # a dict: its keys stay in order of first occurrence
        df: Counter[str] = Counter()
        for doc in docs:
            tf.update(doc)
            df.update(set(doc))
        order = {tok: i for i, tok in enumerate(tf)}
        kept = [t for t, n in df.items() if n >= self.min_df]
        kept.sort(key=lambda t: (-df[t], order[t]))
        kept = kept[: self.max_features - len(SPECIAL)]
        self.encoder = {tok: i for i, tok in enumerate(kept, start=len(SPECIAL))}
        for i, name in enumerate(SPECIAL):
            self.encoder[name] = i
        self.decoder = {i: tok for tok, i in self.encoder.items()}
        self.n_features = len(self.encoder)
        n_tokens = sum(tf.values())
        self.unk_rate_ = 1.0 - sum(tf[t] for t in kept) / n_tokens if n_tokens else 0.0
        if self.unk_rate_ > 0.5:
            warnings.warn(
                f"Tokenizer kept {len(kept)} tokens (min_df={self.min_df}, max_features="
                f"{self.max_features}): {self.unk_rate_:.0%} of the training tokens will be UNK. "
                "For a small corpus lower min_df (e.g. Tokenizer(min_df=1)).",
                UserWarning, stacklevel=3,
            )

    def _encode(self, docs: list[list[str]]) -> list[list[int]]:
        get = self.encoder.get
        return [[get(tok, UNK) for tok in doc] for doc in docs]

    def transform(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids for each text; tokens outside the vocabulary become UNK (2)."""
        if not hasattr(self, "encoder"):
            raise RuntimeError("this Tokenizer is not fitted yet: call fit(texts) first")
        return self._encode(self._split(check_texts(texts)))

    def fit_transform(self, texts: Sequence[str]) -> list[list[int]]:
        """``fit`` then ``transform``, splitting the texts only once."""
        docs = self._split(self._check_fit(texts))
        self._fit_docs(docs)
        return self._encode(docs)

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

    def limit(self, lengths: Sequence[int]) -> float:
        if self.percentile > 0:
            return float(np.clip(np.percentile(lengths, self.percentile), self.min_max_len,
                                 self.max_len))
        return float(self.max_len)

    def filter(self, *data):
        lens = [len(seq) for seq in data[0]]
        max_len = self.limit(lens)
        keep = [i for i, n in enumerate(lens) if n <= max_len]
        if len(keep) < len(lens):
            warnings.warn(
                f"LenFilter dropped {len(lens) - len(keep)} of {len(lens)} sequences longer than "
                f"{max_len:.0f} tokens (pass len_filter=None to keep them all)",
                UserWarning, stacklevel=2,
            )
        picked = tuple([d[i] for i in keep] for d in data)
        return picked[0] if len(data) == 1 else picked
