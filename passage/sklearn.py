"""scikit-learn estimators that take raw text: ``RNNClassifier`` and ``RNNRegressor``.

Tokenizer and model in one estimator, following the estimator contract (constructor arguments
stored as given, work in ``fit``, fitted state ending in ``_``), so ``clone``, ``Pipeline`` and
``GridSearchCV`` work. Needs scikit-learn (``pip install 'passage[sklearn]'``). The defaults
are the recipe's (``passage.options.TextModelOptions``), the same as ``passage train``.

>>> clf = RNNClassifier(size=16, n_epochs=2, min_df=1, seed=0)
>>> clf = clf.fit(["good fun", "bad bore", "good good", "bad awful"] * 10, [1, 0, 1, 0] * 10)
>>> clf.predict(["good", "bad"]).tolist()
[1, 0]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import cast

import numpy as np
import numpy.typing as npt

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError
except ImportError:  # pragma: no cover - exercised by tests/test_sklearn.py in a subprocess
    raise ImportError("passage.sklearn needs scikit-learn: pip install 'passage[sklearn]'") \
        from None

from passage._checks import check_int, check_real, missing_positions, positions
from passage.exceptions import NotFittedError
from passage.options import TextModelOptions
from passage.preprocessing import check_texts
from passage.recipe import RECURRENT, fit_encoded

_D = TextModelOptions()  # the recipe's defaults (passage.options)


class _TextRNN(BaseEstimator):
    def __init__(self, size: int = _D.size, embedding_size: int = _D.embedding_size,
                 layer: str = _D.layer, direction: str = _D.direction, pool: str = _D.pool,
                 wide: bool = _D.wide, n_epochs: int = _D.n_epochs,
                 batch_size: int = _D.batch_size, lr: float = _D.lr,
                 lr_schedule: str = _D.lr_schedule, min_df: int = _D.min_df,
                 max_features: int = _D.max_features, character: bool = _D.character,
                 truncate: int | None = _D.truncate,
                 validation_split: float = _D.validation_split, refit: bool = _D.refit,
                 patience: int | None = _D.patience, monitor: str = _D.monitor,
                 seed: int | None = None, verbose: int = _D.verbose, class_weight=None,
                 precision: str = _D.precision):
        self.size, self.embedding_size, self.layer = size, embedding_size, layer
        self.direction, self.pool, self.wide = direction, pool, wide
        self.n_epochs, self.batch_size = n_epochs, batch_size
        self.lr, self.lr_schedule = lr, lr_schedule
        self.min_df, self.max_features, self.character = min_df, max_features, character
        self.truncate = truncate
        self.validation_split, self.patience, self.monitor = validation_split, patience, monitor
        self.refit = refit
        self.seed, self.verbose = seed, verbose
        self.class_weight = class_weight  # classifiers only: 'balanced' or {label: weight}
        self.precision = precision  # 'fp32', 'bf16', 'fp16' or 'auto' (see passage.precision)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # X is a list of raw texts, not a numeric matrix
        tags.input_tags.string = True
        return tags

    def _check_params(self) -> None:
        for name in ("size", "embedding_size", "n_epochs", "batch_size"):
            check_int(name, getattr(self, name))  # max_features, min_df: Tokenizer checks them
        if self.patience is not None:
            check_int("patience", self.patience, 0)
        if self.layer not in RECURRENT:
            raise ValueError(f"layer must be one of {sorted(RECURRENT)}, got {self.layer!r}")
        check_real("lr", self.lr, low=0.0, low_open=True, hint=" (the learning rate)")
        check_real("validation_split", self.validation_split, low=0.0, high=1.0,
                   high_open=True)

    def _options(self) -> TextModelOptions:
        known = {f.name for f in fields(TextModelOptions)}
        return TextModelOptions(**{k: v for k, v in self.get_params().items() if k in known})

    def _fit(self, texts, y, out_size: int, task: str, class_weight=None):
        """Tokenizer and model, set on the estimator only once training succeeded."""
        texts = check_texts(texts, "X")
        if len(texts) != len(y):
            raise ValueError(f"X has {len(texts)} texts but y has {len(y)} labels")
        model = fit_encoded(texts, y, task, out_size, self._options(), class_weight)
        self.tokenizer_, self.model_ = model.tokenizer, model
        return self

    def _raw(self, X) -> np.ndarray:
        _check_fitted(self, "model_")
        return cast(np.ndarray, self.model_.predict(check_texts(X, "X")))


class RNNClassifier(ClassifierMixin, _TextRNN):
    """Text classifier: binary (sigmoid, bce) or multi-class (softmax, cce) from the labels."""

    def fit(self, X: Iterable[str], y: npt.ArrayLike) -> RNNClassifier:
        _check_y(y)
        self._check_params()
        _check_missing(y, finite=False)
        classes, encoded = np.unique(np.asarray(y), return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"y has {len(classes)} class; a classifier needs at least 2")
        weights = self.class_weight
        if isinstance(weights, dict):  # keyed by the labels given; the model wants indices
            unknown = [k for k in weights if k not in set(classes.tolist())]
            if unknown:
                raise ValueError(f"class_weight has labels {unknown} that are not in y "
                                 f"(classes: {classes.tolist()})")
            weights = {int(np.flatnonzero(classes == k)[0]): v for k, v in weights.items()}
        if len(classes) == 2:
            self._fit(X, encoded, 1, "binary", weights)
        else:
            self._fit(X, encoded, len(classes), "multiclass", weights)
        self.classes_ = classes
        return self

    def predict_proba(self, X: Iterable[str]) -> np.ndarray:
        _check_fitted(self, "classes_")
        p = self._raw(X)
        return np.hstack([1 - p, p]) if len(self.classes_) == 2 else p

    def predict(self, X: Iterable[str]) -> np.ndarray:
        _check_fitted(self, "classes_")
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class RNNRegressor(RegressorMixin, _TextRNN):
    """Text regressor (linear output, mse; targets standardized internally)."""

    def fit(self, X: Iterable[str], y: npt.ArrayLike) -> RNNRegressor:
        _check_y(y)
        self._check_params()
        if self.class_weight is not None:
            raise ValueError("class_weight is for classifiers; RNNRegressor does not use it")
        try:
            y = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError("RNNRegressor needs numeric targets (a list or array of numbers); "
                            "for labels use RNNClassifier") from None
        _check_missing(y, finite=True)
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        self._fit(X, y, n_outputs, "regression")
        self.n_outputs_ = n_outputs
        return self

    def predict(self, X: Iterable[str]) -> np.ndarray:
        p = self._raw(X)
        return p[:, 0] if p.shape[1] == 1 and self.n_outputs_ == 1 else p


class _NotFitted(NotFittedError, SklearnNotFittedError):
    """Passage's NotFittedError that scikit-learn's tools recognise as theirs too."""


def _check_fitted(estimator, attribute: str) -> None:
    if not hasattr(estimator, attribute):
        raise _NotFitted(f"this {type(estimator).__name__} is not fitted yet: call "
                         "fit(texts, labels) first")


def _check_y(y) -> None:
    if y is None:
        raise ValueError("this estimator requires y to be passed, but the target y is None: "
                         "call fit(texts, labels)")


def _check_missing(y, finite: bool) -> None:
    """Refuse missing labels (None, NaN; for targets, ``finite``, also inf) with positions."""
    bad = missing_positions(y, finite=finite)
    if not bad:
        return
    if finite:
        raise ValueError(f"y has {len(bad)} target(s) that are not finite numbers (NaN, inf or "
                         f"None) at position(s) {positions(bad)}: drop those examples or fill "
                         "them in first")
    raise ValueError(f"y has {len(bad)} missing label(s) (NaN or None) at position(s) "
                     f"{positions(bad)}: a missing label must not become a class; drop those "
                     "examples or fill them in first")
