"""Argument checks shared by ``RNN``, ``LanguageModel``, ``Tagger``, the scikit-learn estimators
and the layers: each raises a TypeError (wrong type) or ValueError (wrong value) that names the
argument, what it got and what it takes, before the caller changes anything.

>>> check_int("batch_size", 0)
Traceback (most recent call last):
...
ValueError: batch_size must be an int >= 1, got 0
>>> validation_size(16, 0.25)
4
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from passage import costs as cost_registry


def check_int(name: str, value, minimum: int = 1, *, optional: bool = False,
              hint: str = "") -> None:
    """``value`` is an int (not a bool) >= ``minimum`` (or None when ``optional``)."""
    if value is None and optional:
        return
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int{' or None' if optional else ''}, got "
                        f"{type(value).__name__} {value!r}{hint}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}{hint}")


def check_real(name: str, value, *, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False, optional: bool = False,
               hint: str = "") -> None:
    """``value`` is a finite real number in the interval given (ends closed unless open)."""
    if value is None and optional:
        return
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}{hint}")
    x = float(value)
    lo_ok = low is None or (x > low if low_open else x >= low)
    hi_ok = high is None or (x < high if high_open else x <= high)
    if not math.isfinite(value) or not (lo_ok and hi_ok):
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        interval = f"{'(' if low_open or low is None else '['}{lo}, {hi}" \
                   f"{')' if high_open or high is None else ']'}"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}{hint}")


def check_dropout(name: str, value) -> None:
    """A dropout probability: in [0, 1) (1 would drop everything)."""
    check_real(name, value, low=0.0, high=1.0, high_open=True,
               hint=" (the probability of dropping each input; 1 would drop them all)")


def check_fit_arguments(*, batch_size=None, n_epochs=1, validation_split=0.0, patience=None,
                        snapshot_freq=1, lr_schedule=None, len_filter=None) -> None:
    """The arguments of ``RNN.fit`` that can be checked without the data (``fit_distributed``
    and ``fit_ensemble`` can call it on their ``fit_kwargs`` before starting processes)."""
    check_int("batch_size", batch_size, optional=True,
              hint=" (examples per minibatch; None keeps the iterator's size)")
    check_int("n_epochs", n_epochs, hint=" (passes over the training data)")
    check_real("validation_split", validation_split, low=0.0, high=1.0, high_open=True)
    check_int("patience", patience, 0, optional=True,
              hint=" (epochs without improvement before stopping)")
    check_int("snapshot_freq", snapshot_freq, hint=" (save every snapshot_freq epochs)")
    if lr_schedule not in (None, "linear"):
        raise ValueError(f"lr_schedule must be None or 'linear', got {lr_schedule!r}")
    if len_filter is not None and not callable(getattr(len_filter, "filter", None)):
        raise TypeError(f"len_filter must be a LenFilter or Truncate (an object with a filter "
                        f"method) or None, got {type(len_filter).__name__}")


def check_fit_kwargs(fit_kwargs: dict) -> None:
    """``check_fit_arguments`` on the entries of a ``fit_kwargs`` dict it knows (the others are
    checked by ``fit`` itself): for callers that pass ``fit`` arguments along to processes."""
    names = ("batch_size", "n_epochs", "validation_split", "patience", "snapshot_freq",
             "lr_schedule", "len_filter")
    check_fit_arguments(**{k: fit_kwargs[k] for k in names if k in fit_kwargs})


def validation_size(n: int, validation_split: float) -> int:
    """How many of ``n`` examples ``validation_split`` holds out: at least 1, and at least 1
    left to train on, else a ValueError saying so."""
    if not validation_split:
        return 0
    n_val = max(1, int(round(validation_split * n)))
    if n_val >= n:
        raise ValueError(f"validation_split={validation_split!r} of {n} example(s) holds out "
                         f"{n_val}, leaving none to train on: lower validation_split, give more "
                         "data, or pass validation_data")
    return n_val


def metric_names(cost, out_size: int) -> list[str]:
    """The names ``RNN.evaluate`` can report for this cost and output size (what ``monitor``
    may be): ``passage.metrics.names``."""
    from passage import metrics

    return metrics.names(cost, out_size)


def check_monitor(monitor, names: list[str]) -> None:
    if not isinstance(monitor, str) or monitor not in names:
        raise ValueError(f"monitor={monitor!r} is not computed for this model; choose one of "
                         f"{sorted(names)}")


def warn_if_one_class(y: np.ndarray, cost) -> None:
    """Warn when every label of a classifier's training set is the same class: it can only
    learn to predict that class (not an error: a one-class fold can be intended)."""
    if cost not in (cost_registry.BinaryCrossEntropy, cost_registry.CategoricalCrossEntropy):
        return
    if not isinstance(y, np.ndarray) or len(y) < 2 or (y.ndim == 2 and y.shape[1] > 1):
        return  # rows of class probabilities, or too few labels to matter
    if y.min() == y.max():
        warnings.warn(f"every training label is {y.flat[0]:g}: the model can only learn to "
                      "predict that class; check the labels (and that a validation split or "
                      "length filter did not leave one class)", UserWarning, stacklevel=3)


def missing_positions(y, *, finite: bool = False) -> list[int]:
    """Rows of ``y`` holding a missing label: None, NaN or pandas' NA (with ``finite``, also
    +-inf). Strings such as 'NA' are labels here: reading a table decides what is missing."""
    arr = np.asarray(y) if not isinstance(y, np.ndarray) else y
    if arr.ndim == 0 or len(arr) == 0:
        return []
    rows = arr.reshape(len(arr), -1)
    if rows.dtype.kind in "fc":
        bad = ~np.isfinite(rows) if finite else np.isnan(rows)
        return np.flatnonzero(bad.any(axis=1)).tolist()
    if rows.dtype.kind != "O":
        return []
    return [i for i, row in enumerate(rows) if any(_missing(v, finite) for v in row)]


def _missing(v, finite: bool) -> bool:
    if v is None or type(v).__name__ in ("NAType", "NaTType"):
        return True
    if isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_):
        return not math.isfinite(v) if finite else math.isnan(v)
    return False


def positions(idx: list[int], limit: int = 5) -> str:
    """'3, 7, 9' or '3, 7, 9, 12, 15 and 4 more': indices for an error message."""
    shown = ", ".join(str(i) for i in idx[:limit])
    return shown + (f" and {len(idx) - limit} more" if len(idx) > limit else "")
