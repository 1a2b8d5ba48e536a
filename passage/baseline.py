"""The linear baseline the 2015 talk measured RNNs against: TF-IDF uni+bigrams + a linear model.

LogisticRegression for classes, Ridge for regression, with a small grid over the vectorizer's
``min_df`` and the regularisation (``C`` or ``alpha``), chosen by 3-fold cross-validation on the
training texts (``fit_baseline``) or on a held-out validation split (``fit_on_split``, what
``passage train --baseline`` compares the RNN with). Needs scikit-learn
(``pip install 'passage[sklearn]'``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

CLASSIFIER_GRID = {"tfidf__min_df": [1, 2, 5], "model__C": [1.0, 10.0, 100.0]}
REGRESSOR_GRID = {"tfidf__min_df": [1, 2, 5], "model__alpha": [0.1, 1.0, 10.0]}
NAMES = {"classification": "tfidf+logreg", "regression": "tfidf+ridge"}


@dataclass
class BaselineResult:
    """The refitted best pipeline, its parameters, cross-validation score and wall time."""

    model: object
    best_params: dict
    cv_score: float
    seconds: float
    name: str


def _sklearn():
    try:
        import sklearn
    except ImportError:
        raise ImportError("the linear baseline needs scikit-learn: pip install "
                          "'passage[sklearn]'") from None
    return sklearn


def make_pipeline(task: str) -> Pipeline:
    """Unfitted TF-IDF (word uni+bigrams, sublinear tf) -> LogisticRegression or Ridge."""
    _sklearn()
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline

    model = Ridge() if task == "regression" else LogisticRegression(max_iter=1000)
    return Pipeline([("tfidf", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
                     ("model", model)])


def default_grid(task: str) -> dict:
    return dict(REGRESSOR_GRID if task == "regression" else CLASSIFIER_GRID)


def fit_baseline(texts: Iterable[str], y: npt.ArrayLike, task: str, grid: dict | None = None,
                 cv: int = 3, n_jobs: int = 1) -> BaselineResult:
    """Grid-search the pipeline on (texts, y) and refit the best on all of them.

    task: 'binary', 'multiclass' or 'regression'; y: class ids or numbers (see ``LabelCoding``).
    Scored by accuracy (classes) or RMSE (regression). ``seconds`` is the whole search + refit.
    """
    _sklearn()
    from sklearn.model_selection import GridSearchCV

    texts, y = list(texts), np.asarray(y)
    if len(texts) != len(y):
        raise ValueError(f"{len(texts)} texts but {len(y)} labels: they must match")
    regression = task == "regression"
    if not regression:
        counts = np.unique(y, return_counts=True)[1]
        if len(counts) < 2:
            raise ValueError("the training texts hold a single class: the baseline needs 2+")
        if counts.min() < cv:
            raise ValueError(f"{cv}-fold grid search needs at least {cv} training texts of "
                             f"every class; the rarest class has {counts.min()}")
    elif len(texts) < 2 * cv:
        raise ValueError(f"{cv}-fold grid search needs at least {2 * cv} training texts")
    search = GridSearchCV(make_pipeline(task), grid or default_grid(task), cv=cv,
                          scoring="neg_root_mean_squared_error" if regression else "accuracy",
                          n_jobs=n_jobs)
    start = time.perf_counter()
    search.fit(texts, y)
    seconds = time.perf_counter() - start
    score = float(search.best_score_)
    return BaselineResult(search.best_estimator_, dict(search.best_params_),
                          -score if regression else score, seconds,
                          NAMES["regression" if regression else "classification"])


def validation_score(task: str, y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Accuracy of class ids, or R^2 of values (what ``passage train`` monitors by default)."""
    y_true = np.asarray(y_true, dtype=float).ravel()
    y_pred = np.asarray(y_pred, dtype=float).ravel()
    if task != "regression":
        return float(np.mean(y_true == y_pred))
    total = float(((y_true - y_true.mean()) ** 2).sum())
    return 1.0 - float(((y_true - y_pred) ** 2).sum()) / total if total > 0 else 0.0


def fit_on_split(texts: Iterable[str], y: npt.ArrayLike, val_texts: Iterable[str],
                 val_y: npt.ArrayLike, task: str, grid: dict | None = None) -> BaselineResult:
    """Fit the pipeline on (texts, y) for every grid point and keep the one that scores best on
    (val_texts, val_y) by ``validation_score``; ``cv_score`` is that validation score and
    ``seconds`` the whole search."""
    _sklearn()
    from sklearn.model_selection import ParameterGrid

    texts, y, val_texts = list(texts), np.asarray(y), list(val_texts)
    if not len(texts) or not len(val_texts):
        raise ValueError("the baseline needs training and validation texts")
    start = time.perf_counter()
    best = None
    for params in ParameterGrid(grid or default_grid(task)):
        pipe = make_pipeline(task).set_params(**params)
        try:
            pipe.fit(texts, y)
        except ValueError:  # e.g. min_df=5 keeps no term of a tiny corpus: skip that point
            continue
        got = validation_score(task, val_y, pipe.predict(val_texts))
        if best is None or got > best[0]:
            best = (got, params, pipe)
    if best is None:
        raise ValueError("the linear baseline could not be fitted at any grid point (too few "
                         "words in the training texts?)")
    seconds = time.perf_counter() - start
    return BaselineResult(best[2], dict(best[1]), best[0], seconds,
                          NAMES["regression" if task == "regression" else "classification"])
