"""Labels: infer the task from them and map class names to ids and back.

Two distinct values make a binary task (the larger one, in sorted order, is the positive class);
a few distinct integers or any strings make classes; floats or many integers make a regression.
Class names are kept as they were given (``"pos"``, ``7``), so a saved model predicts them back.

>>> coding = LabelCoding.fit(["pos", "neg", "pos"])
>>> coding.task, coding.classes
('binary', ['neg', 'pos'])
>>> coding.encode(["pos", "neg"]).tolist()
[1, 0]
>>> infer_task(["1", "2", "3", "2"]), infer_task([0.5, 1.5, 2.25])
('multiclass', 'regression')
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, SupportsInt, cast

import numpy as np

if TYPE_CHECKING:
    from passage.models import RNN

TASKS = ("binary", "multiclass", "regression")
MAX_CLASSES = 20  # integer labels with at most this many distinct values are classes
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def canonical(value: object) -> int | float | str:
    """The comparable form of a label: numbers (also numbers written as text) or a stripped str.

    >>> canonical(" 7 "), canonical("2.50"), canonical(3.0), canonical("pos")
    (7, 2.5, 3, 'pos')
    """
    if isinstance(value, bool | int | np.integer):
        return value if isinstance(value, bool) else int(value)
    if isinstance(value, float | np.floating):
        if not math.isfinite(value):
            raise ValueError(f"label {value!r} is not a finite number")
        return int(value) if float(value).is_integer() else float(value)
    if isinstance(value, str):
        text = value.strip()
        if _INT.fullmatch(text):
            return int(text)
        if _FLOAT.fullmatch(text):
            return canonical(float(text))
        return text
    raise ValueError(f"label {value!r} ({type(value).__name__}) is neither a number nor a string")


def _is_number(key) -> bool:
    return isinstance(key, int | float)


def _sort_key(key):
    return (0, float(key), "") if _is_number(key) else (1, 0.0, str(key))


def _show(values, limit: int = 6) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def infer_task(labels: Iterable[object]) -> str:
    """'binary', 'multiclass' or 'regression' from the labels alone."""
    distinct = {canonical(v) for v in labels}
    if len(distinct) < 2:
        raise ValueError(f"every label is {next(iter(distinct), None)!r}: a model needs at "
                         "least 2 different labels")
    if len(distinct) == 2:
        return "binary"
    if all(_is_number(k) for k in distinct):
        if all(isinstance(k, int) for k in distinct) and len(distinct) <= MAX_CLASSES:
            return "multiclass"
        return "regression"
    return "multiclass"


@dataclass
class LabelCoding:
    """A task and, for classification, its class names (index = class id)."""

    task: str
    classes: list | None = None

    @classmethod
    def fit(cls, labels: Iterable[object], task: str = "auto") -> LabelCoding:
        """Infer the task (unless given) and collect the classes, sorted."""
        if task not in (*TASKS, "auto"):
            raise ValueError(f"task must be 'auto' or one of {', '.join(TASKS)}; got {task!r}")
        labels = list(labels)
        if not labels:
            raise ValueError("no labels to learn from")
        task = infer_task(labels) if task == "auto" else task
        if task == "regression":
            bad = [v for v in labels if not _is_number(canonical(v))]
            if bad:
                raise ValueError(f"regression needs numeric labels, found {bad[0]!r}; use "
                                 "--task multiclass (or binary) for class names")
            return cls("regression")
        names: dict = {}
        for v in labels:
            k = canonical(v)  # plain Python numbers, so the names can be saved as JSON
            names.setdefault(k, v.strip() if isinstance(v, str) else k)
        keys = sorted(names, key=_sort_key)
        if task == "binary" and len(keys) != 2:
            raise ValueError(f"a binary task needs exactly 2 different labels, found "
                             f"{len(keys)}: {_show(keys)}; use --task multiclass or regression")
        if len(keys) < 2:
            raise ValueError(f"every label is {keys[0]!r}: a classifier needs at least 2 "
                             "different labels")
        return cls(task, [names[k] for k in keys])

    @property
    def n_outputs(self) -> int:
        if self.task != "multiclass":
            return 1
        assert self.classes is not None  # a classification coding has its class names
        return len(self.classes)

    def encode(self, labels: Sequence[object] | np.ndarray) -> np.ndarray:
        """Class ids (int64) for classification, float32 values for regression."""
        if self.task == "regression":
            keys = [canonical(v) for v in labels]
            for v, k in zip(labels, keys, strict=True):
                if not _is_number(k):
                    raise ValueError(f"label {v!r} is not a number, but this model does "
                                     "regression")
            return np.asarray(keys, dtype=np.float32)
        assert self.classes is not None  # a classification coding has its class names
        index = {canonical(c): i for i, c in enumerate(self.classes)}
        ids = np.empty(len(labels), dtype=np.int64)
        for i, v in enumerate(labels):
            k = canonical(v)
            if k not in index:
                raise ValueError(f"label {v!r} (text {i + 1}) is not one of the model's classes: "
                                 f"{_show(self.classes)}")
            ids[i] = index[k]
        return ids

    def decode(self, ids: Iterable[SupportsInt]) -> list:
        """Class names for class ids."""
        classes = cast(list, self.classes)  # set for classification; a cast, so decode([]) is []
        return [classes[int(i)] for i in ids]

    def output_ids(self, outputs: np.ndarray) -> np.ndarray:
        """Model outputs (examples, units) -> class ids, or the predicted values (regression)."""
        outputs = np.asarray(outputs)
        if self.task == "regression":
            return outputs[:, 0]
        if self.task == "binary":
            return (outputs[:, -1] > 0.5).astype(np.int64)
        return outputs.argmax(axis=1)

    def probabilities(self, outputs: np.ndarray) -> np.ndarray | None:
        """(examples, classes) probabilities for classification; None for regression."""
        outputs = np.asarray(outputs, dtype=np.float64)
        if self.task == "regression":
            return None
        if self.task == "binary":
            p = outputs[:, -1]
            return np.stack([1.0 - p, p], axis=1)
        return outputs

    @classmethod
    def _checked(cls, task: str, classes) -> LabelCoding:
        """A coding read from a file: classification needs 2+ distinct JSON scalar names."""
        if task == "regression":
            return cls(task)
        if not isinstance(classes, list) or len(classes) < 2 or not all(
                isinstance(c, str | int | float) and not isinstance(c, bool) for c in classes):
            raise ValueError(f"the model's metadata says {task} but its classes are "
                             f"{_show(classes) if isinstance(classes, list) else repr(classes)}"
                             ": a list of at least 2 class names is needed")
        try:
            keys = [canonical(c) for c in classes]
        except ValueError as e:
            raise ValueError(f"the model's class names are not usable: {e}") from None
        if len(set(keys)) != len(keys):
            raise ValueError(f"the model's class names repeat: {_show(classes)}")
        if task == "binary" and len(classes) != 2:
            raise ValueError(f"the model's metadata says binary but names {len(classes)} "
                             f"classes: {_show(classes)}")
        return cls(task, list(classes))

    def check_outputs(self, n_outputs: int) -> None:
        """Refuse a model whose output layer cannot give this coding's predictions (e.g. a
        metadata of 3 classes on a layer with 1 output)."""
        classes = cast(list, self.classes)  # None for a regression, which does not read it
        expected = 1 if self.task in ("binary", "regression") else len(classes)
        if n_outputs != expected and not (self.task == "binary" and n_outputs == 2):
            what = ("1 output" if self.task == "regression" else
                    f"{len(classes)} classes ({_show(classes)})")
            raise ValueError(f"the model's metadata says {self.task} with {what}, but its "
                             f"output layer has {n_outputs} unit(s): the file is inconsistent;"
                             " train the model again")

    def to_dict(self) -> dict:
        return {"task": self.task, "classes": self.classes}

    @classmethod
    def from_model(cls, model: RNN) -> LabelCoding:
        """The coding saved with a model (``model.extra_``), or one read off its output layer."""
        extra = getattr(model, "extra_", None) or {}
        if not isinstance(extra, dict):
            raise ValueError(f"the model's extra metadata is a {type(extra).__name__}, not a "
                             "JSON object: the file was not written by 'passage train'")
        if extra.get("task") in TASKS:
            return cls._checked(extra["task"], extra.get("classes"))
        last = model.layers[-1]
        activation = str(getattr(last, "activation", "")).lower()
        size = getattr(last, "size", 0)
        if activation == "sigmoid" and size == 1:
            return cls("binary", [0, 1])
        if activation == "softmax" and size > 1:
            return cls("multiclass", list(range(size)))
        if activation == "linear" and size == 1:
            return cls("regression")
        raise ValueError(f"cannot tell what this model predicts (output {type(last).__name__} "
                         f"size {size}, activation {activation!r}); the command line handles "
                         "single-output text models (sigmoid, softmax or linear)")
