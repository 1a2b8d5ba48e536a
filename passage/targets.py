"""Labels -> the arrays a cost expects, with errors that say how to fix a mismatch.

Binary labels go to BinaryCrossEntropy as floats; class labels go to CategoricalCrossEntropy as
integer indices (or rows of probabilities); hinge costs get -1/+1; regression gets floats. Per-step
labels (one list per sequence, for taggers) are prepared the same way, sequence by sequence.

>>> from passage import costs
>>> prepare([2, 0, 1], costs.get("cce"), out_size=3).tolist()
[2, 0, 1]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt

from passage import costs as C

if TYPE_CHECKING:
    from passage.costs import Cost


def _as_array(Y) -> np.ndarray:
    try:
        y = np.asarray(Y, dtype=np.float64)
    except (TypeError, ValueError):
        first = type(np.asarray(Y, dtype=object).flat[0]).__name__
        raise TypeError("labels must be numbers (a list or array of ints or floats); "
                        f"got {type(Y).__name__} holding {first}") from None
    if y.ndim == 0:
        raise TypeError("labels must be a list or array with one label per example, got a scalar")
    if not np.all(np.isfinite(y)):
        bad = int(np.flatnonzero((~np.isfinite(y.reshape(len(y), -1))).any(axis=1))[0])
        raise ValueError(f"label {bad} is {Y[bad]!r}: labels must be finite numbers "
                         "(drop or fill missing labels first)")
    return y


def prepare(Y: npt.ArrayLike, cost: Cost, out_size: int) -> np.ndarray:
    """Validate labels against the cost and the output layer's size; return the target array."""
    y = _as_array(Y)
    if cost in (C.CategoricalCrossEntropy,):
        if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1 and out_size != 1):
            y = y.reshape(-1)
            if not np.all(y == np.round(y)):
                raise ValueError("CategoricalCrossEntropy needs integer class labels "
                                 "(or one row of class probabilities per example)")
            hi = int(y.max(initial=0))
            if y.min(initial=0) < 0 or hi >= out_size:
                raise ValueError(
                    f"class label {hi if hi >= out_size else int(y.min())} does not fit an output "
                    f"layer of {out_size} units; use Dense(size={max(hi + 1, out_size)}, "
                    f"activation='softmax')")
            return y.astype(np.int64)
        return _check_width(y.astype(np.float32), out_size, cost)
    if y.ndim == 1:
        y = y.reshape(-1, 1)
    if cost is C.BinaryCrossEntropy:
        if y.min(initial=0) < 0 or y.max(initial=0) > 1:
            classes = np.unique(y)
            hint = (f"for {len(classes)} classes use Dense(size={len(classes)}, "
                    "activation='softmax') with cost='cce'" if len(classes) <= 100 and
                    np.all(classes == np.round(classes)) else "use cost='mse' for regression")
            raise ValueError(f"BinaryCrossEntropy needs labels in [0, 1], got values from "
                             f"{y.min():g} to {y.max():g}: {hint}")
    if cost in (C.Hinge, C.SquaredHinge):
        if y.shape[1] == 1 and out_size > 1:
            k = y.reshape(-1).astype(np.int64)
            if k.min() < 0 or k.max() >= out_size:
                raise ValueError(f"class labels must be in 0..{out_size - 1} for {out_size} "
                                 "output units")
            y = -np.ones((len(k), out_size))
            y[np.arange(len(k)), k] = 1.0
        else:
            y = np.where(y == 0, -1.0, y)
    return _check_width(y.astype(np.float32), out_size, cost)


def _check_width(y: np.ndarray, out_size: int, cost) -> np.ndarray:
    if y.shape[1] != out_size:
        classes = np.unique(y)
        hint = ""
        if out_size == 1 and len(classes) > 2:
            hint = (f": labels have {len(classes)} values; for classes use Dense(size="
                    f"{len(classes)}, activation='softmax') with cost='cce'")
        raise ValueError(f"labels have {y.shape[1]} columns but the output layer has {out_size} "
                         f"units ({cost.__name__}){hint}")
    return y


def prepare_per_step(Y: Sequence[Any] | np.ndarray, cost: Cost, out_size: int,
                     lengths: np.ndarray) -> list[np.ndarray]:
    """Per-step labels (one sequence per example) prepared like ``prepare``, checked for length."""
    if len(Y) != len(lengths):
        raise ValueError(f"got {len(lengths)} sequences but {len(Y)} label sequences")
    for i, (y, n) in enumerate(zip(Y, lengths, strict=True)):
        if np.ndim(y) == 0 or len(y) != n:
            got = "a single label" if np.ndim(y) == 0 else f"{len(y)} labels"
            raise ValueError(f"example {i} has {n} steps but {got}: a model whose output is a "
                             "sequence needs one label per step")
    flat = prepare(np.concatenate([np.asarray(y) for y in Y]) if len(Y) else [], cost, out_size)
    return np.split(flat, np.cumsum(lengths)[:-1])


def class_weights(class_weight: str | dict, Y: np.ndarray | list[np.ndarray], cost: Cost,
                  out_size: int, per_step: bool) -> np.ndarray:
    """One weight per class from ``class_weight`` ('balanced': n / (classes * count), or a dict
    {class index: weight}) for the prepared targets ``Y`` of a classifier's ``cost``."""
    if cost not in (C.BinaryCrossEntropy, C.CategoricalCrossEntropy) or (
            cost is C.BinaryCrossEntropy and out_size != 1):
        raise ValueError("class_weight needs a classifier: a 1-unit sigmoid output with "
                         "cost='bce', or a softmax output with cost='cce'")
    n = max(out_size, 2)
    flat = np.concatenate(Y) if per_step else cast(np.ndarray, Y)
    if flat.dtype.kind == "f" and flat.ndim == 2 and flat.shape[1] > 1:  # rows of probs
        classes = flat.argmax(1)
    else:
        classes = flat.reshape(len(flat), -1)[:, 0].round().astype(np.int64)
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight must be 'balanced' or a dict {{class: weight}}, "
                             f"got {class_weight!r}")
        counts = np.bincount(classes, minlength=n).astype(np.float64)
        return np.where(counts > 0, len(classes) / (n * np.maximum(counts, 1)), 1.0)
    if not isinstance(class_weight, dict):
        raise TypeError(f"class_weight must be 'balanced' or a dict, got "
                        f"{type(class_weight).__name__}")
    w = np.ones(n)
    for k, v in class_weight.items():
        if not isinstance(k, int | np.integer) or not 0 <= k < n:
            raise ValueError(f"class_weight key {k!r} is not a class index 0..{n - 1}: "
                             "keys are the integer labels given to fit")
        if not np.isfinite(v) or v < 0:
            raise ValueError(f"class_weight[{k}] = {v!r}: weights must be >= 0")
        w[k] = v
    return w
