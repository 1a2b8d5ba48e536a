"""Sequence tagging: one label per token (part of speech, entities) with a bidirectional RNN.

``read_conllu`` reads Universal Dependencies files; ``WordFeatures`` turns tokens into a few ids
each (the lowercased word, its last characters, its shape), so words never seen in training
still get tagged from their endings and capitalisation; ``Tagger`` puts features, a
bidirectional recurrent stack and a per-token softmax together. Padding is masked in the loss,
the metrics and the predictions: a sentence gets the same tags alone or in a batch.

>>> X = [["The", "cat", "sat"], ["A", "dog", "ran"], ["The", "dog", "sat"]] * 20
>>> Y = [["DET", "NOUN", "VERB"]] * 60
>>> tagger = Tagger(size=16, embedding_size=8, n_epochs=3, seed=0).fit(X, Y)
>>> tagger.predict([["A", "cat", "ran"]])
[['DET', 'NOUN', 'VERB']]
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import numpy as np

from passage import io as model_io
from passage._checks import check_dropout, check_int, check_real, missing_positions, positions
from passage.exceptions import NotFittedError
from passage.files import open_text
from passage.layers import Dense, FeatureEmbedding, GatedRecurrent, Layer, LstmRecurrent
from passage.models import RNN
from passage.updates import Adam

if TYPE_CHECKING:
    from passage.training import Callback


def read_conllu(path: str | os.PathLike,
                column: str = "upos") -> tuple[list[list[str]], list[list[str]]]:
    """(sentences, tags) from a CoNLL-U file (gzip if .gz): token forms and the ``column``
    ('upos' or 'xpos') of every word; multiword-token ranges and empty nodes are skipped."""
    col = {"upos": 3, "xpos": 4}.get(column)
    if col is None:
        raise ValueError(f"column must be 'upos' or 'xpos', got {column!r}")
    sentences: list[list[str]] = []
    tags: list[list[str]] = []
    words: list[str] = []
    labels: list[str] = []
    with open_text(path, what="CoNLL-U file") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                if words:
                    sentences.append(words)
                    tags.append(labels)
                words, labels = [], []
                continue
            if line.startswith("#"):
                continue
            cells = line.split("\t")
            if len(cells) != 10:
                raise ValueError(f"{os.fspath(path)}:{n}: expected 10 tab-separated columns "
                                 f"(CoNLL-U), got {len(cells)}")
            if "-" in cells[0] or "." in cells[0]:
                continue
            words.append(cells[1])
            labels.append(cells[col])
    if words:
        sentences.append(words)
        tags.append(labels)
    return sentences, tags


def word_shape(word: str) -> str:
    """Capitalisation and character classes, runs collapsed: 'McDonald' -> 'XxXx',
    'U.S.' -> 'X.X.', '1,000' -> 'd,d'."""
    out: list[str] = []
    for ch in word[:12]:
        c = "X" if ch.isupper() else "x" if ch.islower() else "d" if ch.isdigit() else ch
        if not out or out[-1] != c:
            out.append(c)
    return "".join(out)


class WordFeatures:
    """Tokens -> ``n_slots`` ids each: lowercased word, suffixes of 1..``suffix`` characters,
    the first character and the word shape, in one id space (0 is padding; each slot has its
    own unknown id). Words rarer than ``min_df`` count as unknown, so the tagger learns what
    to do with words it has never seen.

    >>> f = WordFeatures(min_df=1).fit([["Dogs", "run"]])
    >>> f.transform([["dogs"]])[0].shape  # 1 token x (word, 3 suffixes, prefix, shape)
    (1, 6)
    """

    def __init__(self, min_df: int = 2, suffix: int = 3, min_df_affix: int = 2):
        self.min_df, self.suffix, self.min_df_affix = min_df, suffix, min_df_affix

    @property
    def n_slots(self) -> int:
        return self.suffix + 3

    def _slots(self, word: str) -> list[str]:
        low = word.lower()
        return [low, *(low[-k:] for k in range(1, self.suffix + 1)), low[:1], word_shape(word)]

    def fit(self, sentences: Sequence[Sequence[str]]) -> WordFeatures:
        _check_sentences(sentences)
        check_int("min_df", self.min_df)
        check_int("suffix", self.suffix, 0, hint=" (longest suffix used as a feature)")
        check_int("min_df_affix", self.min_df_affix)
        counts: list[Counter[str]] = [Counter() for _ in range(self.n_slots)]
        for sent in sentences:
            for word in sent:
                for c, key in zip(counts, self._slots(word), strict=True):
                    c[key] += 1
        self.vocab_: list[dict[str, int]] = []
        next_id = 1  # 0 is padding
        for i, c in enumerate(counts):
            least = self.min_df if i == 0 else self.min_df_affix
            keys = [k for k, n in c.items() if n >= least]
            vocab = {"\0unk": next_id}
            vocab.update({k: next_id + 1 + j for j, k in enumerate(keys)})
            next_id += len(vocab)
            self.vocab_.append(vocab)
        self.n_features_ = next_id
        return self

    def transform(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """One (tokens, n_slots) int array per sentence."""
        if not hasattr(self, "vocab_"):
            raise NotFittedError("WordFeatures is not fitted yet: call fit(sentences) first")
        _check_sentences(sentences)
        out = []
        for sent in sentences:
            rows = np.empty((len(sent), self.n_slots), dtype=np.int64)
            for t, word in enumerate(sent):
                rows[t] = [v.get(k, v["\0unk"]) for v, k in
                           zip(self.vocab_, self._slots(word), strict=True)]
            out.append(rows)
        return out

    def get_config(self) -> dict:
        return {"min_df": self.min_df, "suffix": self.suffix, "min_df_affix": self.min_df_affix,
                "vocab": getattr(self, "vocab_", None)}

    @classmethod
    def from_config(cls, config: dict) -> WordFeatures:
        config = dict(config)
        vocab = config.pop("vocab")
        f = cls(**config)
        if vocab is not None:
            f.vocab_ = vocab
            f.n_features_ = 1 + sum(len(v) for v in vocab)
        return f


class Tagger:
    """Word features -> bidirectional recurrent layers -> a softmax over tags at every token.

    size: recurrent units per direction; depth: stacked recurrent layers; layer: 'lstm' or
    'gru'; p_drop: dropout on each recurrent layer's input. fit takes lists of tokens and lists
    of tag strings; predict gives tag lists back in input order.
    """

    def __init__(self, size: int = 128, embedding_size: int = 32, depth: int = 1,
                 layer: str = "lstm", p_drop: float = 0.25, n_epochs: int = 10,
                 batch_size: int = 32, lr: float = 3e-3, min_df: int = 2, seed: int | None = None,
                 verbose: int = 0, precision: str = "fp32"):
        self.size, self.embedding_size, self.depth, self.layer = size, embedding_size, depth, layer
        self.p_drop, self.n_epochs, self.batch_size, self.lr = p_drop, n_epochs, batch_size, lr
        self.min_df, self.seed, self.verbose = min_df, seed, verbose
        self.precision = precision  # 'fp32', 'bf16' or 'fp16' (mixed precision; see RNN)

    def get_params(self) -> dict:
        """The constructor arguments (scikit-learn style)."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def _check_params(self) -> None:
        for name in ("size", "embedding_size", "depth", "n_epochs", "batch_size", "min_df"):
            check_int(name, getattr(self, name))
        if self.layer not in ("lstm", "gru"):
            raise ValueError(f"layer must be 'lstm' or 'gru', got {self.layer!r}")
        check_dropout("p_drop", self.p_drop)
        check_real("lr", self.lr, low=0.0, low_open=True, hint=" (the learning rate)")

    def fit(self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]],
            validation_data: Sequence[Sequence[Sequence[str]]] | None = None,
            patience: int | None = 2,
            callbacks: list[Callback] | tuple[Callback, ...] | None = None) -> Tagger:
        """Train on token lists and their tag lists; with ``validation_data`` ((sentences,
        tags)) the best epoch by validation accuracy is kept. Empty sentences are allowed
        (they teach nothing). Nothing is set on the tagger unless training succeeds.
        callbacks: ``passage.training.Callback`` objects for the model's training loop."""
        _check_sentences(sentences)
        if not hasattr(tags, "__len__") or len(sentences) != len(tags):
            raise ValueError(f"got {len(sentences)} sentences but "
                             f"{len(tags) if hasattr(tags, '__len__') else 'no'} tag lists")
        self._check_params()
        check_int("patience", patience, 0, optional=True)
        _check_tags(tags, "tags")
        names = sorted({t for ts in tags for t in ts})
        if not names:
            raise ValueError("every training sentence is empty: there are no tags to learn")
        if len(names) == 1:
            warnings.warn(f"every training token has the tag {names[0]!r}: the tagger can only "
                          "learn to predict it", UserWarning, stacklevel=2)
        features = WordFeatures(min_df=self.min_df).fit(sentences)
        val = None
        if validation_data is not None:
            vs, vt = validation_data
            _check_sentences(vs)
            _check_tags(vt, "validation tags")
            val = _nonempty(features.transform(vs), _encode(vt, names))
            if not val[0]:
                raise ValueError("every validation sentence is empty: give validation_data "
                                 "with tokens, or None")
        rec = LstmRecurrent if self.layer == "lstm" else GatedRecurrent
        layers: list[Layer] = [
            FeatureEmbedding(self.embedding_size, features.n_features_, features.n_slots)]
        layers += [rec(self.size, direction="bi", seq_output=True, p_drop=self.p_drop)
                   for _ in range(self.depth)]
        layers.append(Dense(len(names), "softmax", p_drop=self.p_drop))
        model = RNN(layers, "cce", updater=Adam(lr=self.lr), verbose=self.verbose,
                    seed=self.seed, precision=self.precision)
        model.fit(*_nonempty(features.transform(sentences), _encode(tags, names)),
                  batch_size=self.batch_size, n_epochs=self.n_epochs, validation_data=val,
                  patience=patience if val is not None else None, monitor="accuracy",
                  callbacks=callbacks)
        self.tags_, self.features_, self.model_ = names, features, model
        return self

    def _encode(self, tags) -> list[np.ndarray]:
        return _encode(tags, self.tags_)

    def predict_proba(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """One (tokens, tags) array of probabilities per sentence ((0, tags) for an empty one)."""
        if not hasattr(self, "model_"):
            raise NotFittedError("this Tagger is not fitted yet: call fit(sentences, tags) first")
        feats = self.features_.transform(sentences)
        full = [i for i, f in enumerate(feats) if len(f)]
        out = [np.zeros((0, len(self.tags_)), np.float32)] * len(feats)
        if full:
            for i, p in zip(full, self.model_.predict([feats[i] for i in full]), strict=True):
                out[i] = p
        return out

    def predict(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        return [[self.tags_[i] for i in p.argmax(-1)] for p in self.predict_proba(sentences)]

    def score(self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]]) -> float:
        """Token accuracy over real tokens."""
        pred = self.predict(sentences)
        hits = sum(p == t for ps, ts in zip(pred, tags, strict=True)
                   for p, t in zip(ps, ts, strict=True))
        return hits / max(1, sum(len(ts) for ts in tags))

    def save(self, path: str | os.PathLike) -> None:
        """One file: model, features and tag names (plain data, written atomically)."""
        from passage.io import save
        save(self.model_, path, extra={"tagger": {"tags": self.tags_,
                                                  "features": self.features_.get_config(),
                                                  "config": self.get_params()}})

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tagger:
        """The tagger saved at ``path`` (``passage.load`` gives it back too)."""
        from passage.io import load_model
        return cls._wrap(cast(RNN, load_model(path)), path)

    @classmethod
    def _wrap(cls, model: RNN, path: str | os.PathLike) -> Tagger:
        meta = (getattr(model, "extra_", None) or {}).get("tagger")
        if meta is None:
            raise ValueError(f"{os.fspath(path)!r} is a Passage model but not a Tagger")
        try:
            tagger = cls(**meta["config"])
            tagger.model_, tagger.tags_ = model, list(meta["tags"])
            tagger.features_ = WordFeatures.from_config(meta["features"])
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise ValueError(f"{os.fspath(path)!r} holds a damaged Tagger description "
                             f"({type(e).__name__}: {e}); save the tagger again") from None
        if len(tagger.tags_) != model.out_size:
            raise ValueError(f"{os.fspath(path)!r} names {len(tagger.tags_)} tags for an "
                             f"output of {model.out_size}: the file is damaged")
        return tagger


def _encode(tags, names: list) -> list[np.ndarray]:
    """Tag lists as arrays of indices into ``names``."""
    index = {t: i for i, t in enumerate(names)}
    try:
        return [np.array([index[t] for t in ts], dtype=np.int64) for ts in tags]
    except KeyError as e:
        raise ValueError(f"tag {e.args[0]!r} was not seen in training; known tags: "
                         f"{names}") from None


def _nonempty(feats: list, tags: list) -> tuple[list, list]:
    """The sentences that have tokens (a batch of only empty ones has nothing to run)."""
    keep = [i for i, f in enumerate(feats) if len(f)]
    return [feats[i] for i in keep], [tags[i] for i in keep]


def _check_tags(tags, what: str) -> None:
    """Tag lists hold tags (no None or NaN: a missing tag must not become a tag)."""
    if isinstance(tags, str) or not hasattr(tags, "__len__"):
        raise TypeError(f"{what} must be a list of tag lists, e.g. [['DET', 'NOUN']]")
    bad = [i for i, ts in enumerate(tags)
           if isinstance(ts, str) or missing_positions(list(ts))]
    if bad:
        raise ValueError(f"{what} of sentence(s) {positions(bad)} are missing or not a list "
                         "(None/NaN tags, or a str): give every token a tag")


def _check_sentences(sentences) -> None:
    if isinstance(sentences, str) or not hasattr(sentences, "__len__"):
        raise TypeError("sentences must be a list of token lists, e.g. [['The', 'cat']]")
    for i, s in enumerate(sentences):
        if isinstance(s, str) or not all(isinstance(w, str) for w in s):
            raise TypeError(f"sentences[{i}] must be a list of str tokens, got {s!r:.60}")


def _save(tagger: Tagger, path: str | os.PathLike, tokenizer=None, extra=None) -> None:
    if tokenizer is not None or extra is not None:
        raise TypeError("a Tagger is saved with its own features and tags: save(tagger, path)")
    tagger.save(path)


model_io.SAVERS[Tagger] = _save
model_io.WRAPPERS["tagger"] = Tagger._wrap
