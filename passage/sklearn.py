"""scikit-learn estimators that take raw text: ``RNNClassifier`` and ``RNNRegressor``.

Tokenizer and model in one estimator, following the estimator contract (constructor arguments
stored as given, work in ``fit``, fitted state ending in ``_``), so ``clone``, ``Pipeline`` and
``GridSearchCV`` work. Needs scikit-learn (``pip install scikit-learn``).

>>> clf = RNNClassifier(size=16, n_epochs=2, min_df=1, seed=0)
>>> clf = clf.fit(["good fun", "bad bore", "good good", "bad awful"] * 10, [1, 0, 1, 0] * 10)
>>> clf.predict(["good", "bad"]).tolist()
[1, 0]
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from passage._checks import check_int, check_real, missing_positions, positions
from passage.layers import Dense, Embedding, GatedRecurrent, LstmRecurrent, SimpleRecurrent
from passage.models import RNN
from passage.preprocessing import Tokenizer, check_texts
from passage.updates import Adam

RECURRENT = {"gru": GatedRecurrent, "lstm": LstmRecurrent, "simple": SimpleRecurrent}


class _TextRNN(BaseEstimator):
    def __init__(self, size: int = 128, embedding_size: int = 128, layer: str = "gru",
                 direction: str = "forward", n_epochs: int = 5, batch_size: int = 64,
                 lr: float = 1e-3, min_df: int = 2, max_features: int = 20000,
                 character: bool = False, validation_split: float = 0.1, patience: int = 2,
                 seed: int | None = None, verbose: int = 0, class_weight=None,
                 precision: str = "fp32"):
        self.size, self.embedding_size, self.layer = size, embedding_size, layer
        self.direction, self.n_epochs, self.batch_size = direction, n_epochs, batch_size
        self.lr = lr
        self.min_df, self.max_features, self.character = min_df, max_features, character
        self.validation_split, self.patience = validation_split, patience
        self.seed, self.verbose = seed, verbose
        self.class_weight = class_weight  # classifiers only: 'balanced' or {label: weight}
        self.precision = precision  # 'fp32', 'bf16' or 'fp16' (mixed precision; see RNN)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # X is a list of raw texts, not a numeric matrix
        tags.input_tags.string = True
        return tags

    def _check_params(self) -> None:
        for name in ("size", "embedding_size", "n_epochs", "batch_size"):
            check_int(name, getattr(self, name))  # max_features, min_df: Tokenizer checks them
        check_int("patience", self.patience, 0)
        if self.layer not in RECURRENT:
            raise ValueError(f"layer must be one of {sorted(RECURRENT)}, got {self.layer!r}")
        check_real("lr", self.lr, low=0.0, low_open=True, hint=" (the learning rate)")
        check_real("validation_split", self.validation_split, low=0.0, high=1.0,
                   high_open=True)

    def _fit(self, texts, y, out_size: int, activation: str, cost: str, class_weight=None):
        """Tokenizer and model, set on the estimator only once training succeeded."""
        texts = check_texts(texts, "X")
        if len(texts) != len(y):
            raise ValueError(f"X has {len(texts)} texts but y has {len(y)} labels")
        tokenizer = Tokenizer(max_features=self.max_features, min_df=self.min_df,
                              character=self.character)
        tokens = tokenizer.fit_transform(texts)
        layers = [Embedding(self.embedding_size, tokenizer.n_features),
                  RECURRENT[self.layer](self.size, direction=self.direction),
                  Dense(out_size, activation)]
        model = RNN(layers, cost, updater=Adam(lr=self.lr), verbose=self.verbose,
                    seed=self.seed, tokenizer=tokenizer, precision=self.precision)
        use_val = self.validation_split > 0 and len(texts) >= 20
        model.fit(tokens, y, batch_size=self.batch_size, n_epochs=self.n_epochs,
                  validation_split=self.validation_split if use_val else 0.0,
                  patience=self.patience if use_val else None, class_weight=class_weight)
        self.tokenizer_, self.model_ = tokenizer, model
        return self

    def _raw(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.model_.predict(check_texts(X, "X"))


class RNNClassifier(ClassifierMixin, _TextRNN):
    """Text classifier: binary (sigmoid, bce) or multi-class (softmax, cce) from the labels."""

    def fit(self, X, y):
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
            self._fit(X, encoded, 1, "sigmoid", "bce", weights)
        else:
            self._fit(X, encoded, len(classes), "softmax", "cce", weights)
        self.classes_ = classes
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "classes_")
        p = self._raw(X)
        return np.hstack([1 - p, p]) if len(self.classes_) == 2 else p

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "classes_")
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class RNNRegressor(RegressorMixin, _TextRNN):
    """Text regressor (linear output, mse; targets standardized internally)."""

    def fit(self, X, y):
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
        self._fit(X, y, n_outputs, "linear", "mse")
        self.n_outputs_ = n_outputs
        return self

    def predict(self, X) -> np.ndarray:
        p = self._raw(X)
        return p[:, 0] if p.shape[1] == 1 and self.n_outputs_ == 1 else p


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
