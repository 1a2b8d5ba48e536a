"""The linear baseline the 2015 talk measured RNNs against: TF-IDF uni+bigrams + a linear model.

LogisticRegression for classes, Ridge for regression, with a small grid over the vectorizer's
``min_df`` and the regularisation (``C`` or ``alpha``), chosen by 3-fold cross-validation on the
training texts only. Needs scikit-learn.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

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


def make_pipeline(task: str):
    """Unfitted TF-IDF (word uni+bigrams, sublinear tf) -> LogisticRegression or Ridge."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline

    model = Ridge() if task == "regression" else LogisticRegression(max_iter=1000)
    return Pipeline([("tfidf", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
                     ("model", model)])


def default_grid(task: str) -> dict:
    return dict(REGRESSOR_GRID if task == "regression" else CLASSIFIER_GRID)


def fit_baseline(texts, y, task: str, grid: dict | None = None, cv: int = 3,
                 n_jobs: int = 1) -> BaselineResult:
    """Grid-search the pipeline on (texts, y) and refit the best on all of them.

    task: 'binary', 'multiclass' or 'regression'; y: class ids or numbers (see ``LabelCoding``).
    Scored by accuracy (classes) or RMSE (regression). ``seconds`` is the whole search + refit.
    """
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
