"""Evaluation metrics on numpy arrays: accuracy, ROC AUC, macro F1, MSE, MAE, R^2.

>>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
0.75
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from passage.costs import Cost


def _labels(y_true, y_pred):
    """Predicted class per example: argmax of several columns, threshold 0.5 of one column."""
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == 2 and y_pred.shape[1] > 1:
        pred = y_pred.argmax(axis=1)
    else:
        pred = (y_pred.reshape(-1) > 0.5).astype(np.int64)
    return np.asarray(y_true).reshape(len(pred), -1).argmax(1) if np.ndim(y_true) == 2 and \
        np.shape(y_true)[1] > 1 else np.asarray(y_true).reshape(-1), pred


def accuracy(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Fraction of examples whose predicted class (argmax, or > 0.5 for one column) is right."""
    t, p = _labels(y_true, y_pred)
    return float(np.mean(t == p))


def roc_auc(y_true: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve of binary labels (the Mann-Whitney U statistic, ties averaged)."""
    y = np.asarray(y_true).reshape(-1).astype(bool)
    s = np.asarray(scores, dtype=np.float64).reshape(len(y), -1)[:, -1]
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs both classes among the labels")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def f1_macro(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Unweighted mean over classes of F1 (classes seen in labels or predictions)."""
    t, p = _labels(y_true, y_pred)
    scores = []
    for c in np.union1d(t, p):
        tp = np.sum((t == c) & (p == c))
        denom = np.sum(t == c) + np.sum(p == c)
        scores.append(2.0 * tp / denom if denom else 0.0)
    return float(np.mean(scores))


def mse(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    return float(np.mean((np.asarray(y_pred, float).reshape(-1) -
                          np.asarray(y_true, float).reshape(-1)) ** 2))


def mae(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    return float(np.mean(np.abs(np.asarray(y_pred, float).reshape(-1) -
                                np.asarray(y_true, float).reshape(-1))))


def r2(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Coefficient of determination: 1 - residual / total sum of squares."""
    t = np.asarray(y_true, float).reshape(-1)
    resid = np.sum((np.asarray(y_pred, float).reshape(-1) - t) ** 2)
    total = np.sum((t - t.mean()) ** 2)
    return float(1.0 - resid / total) if total > 0 else 0.0


# -- the one table of what a model reports: which scores each cost gets --------------------
def names(cost: Cost, out_size: int) -> list[str]:
    """The scores ``scores`` gives (and ``RNN.fit(monitor=...)`` may watch) for a cost and an
    output size."""
    from passage import costs

    if cost in (costs.MeanSquaredError, costs.MeanAbsoluteError):
        return ["cost", "mse", "mae", "r2"]
    if cost is costs.BinaryCrossEntropy and out_size == 1:
        return ["cost", "accuracy", "roc_auc"]
    if cost is costs.CategoricalCrossEntropy:
        return ["cost", "accuracy", "f1_macro"]
    return ["cost"]


def scores(cost: Cost, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """The cost and the metrics of ``names`` for targets and predictions (probabilities, or
    values for regression); ROC AUC only when both classes occur."""
    import torch

    with torch.no_grad():
        out = {"cost": float(cost(torch.from_numpy(np.asarray(y_true)),
                                  torch.from_numpy(np.asarray(y_pred))))}
    wanted = names(cost, np.shape(y_pred)[-1] if np.ndim(y_pred) > 1 else 1)
    if "r2" in wanted:
        out.update(mse=mse(y_true, y_pred), mae=mae(y_true, y_pred), r2=r2(y_true, y_pred))
    if "accuracy" in wanted:
        out["accuracy"] = accuracy(y_true, y_pred)
    if "roc_auc" in wanted and len(np.unique(y_true)) == 2:
        out["roc_auc"] = roc_auc(y_true, y_pred)
    if "f1_macro" in wanted:
        out["f1_macro"] = f1_macro(y_true, y_pred)
    return out
