"""Costs by name (case-insensitive; aliases bce, cce, mse, mae): ``cost(y_true, y_pred)``.

``y_pred`` is the model's output after its activation. When the output layer is a sigmoid with
BinaryCrossEntropy, or a softmax with CategoricalCrossEntropy, the model trains on the
pre-activations instead (``logits_cost``): same value, no overflow, faster.

>>> import torch
>>> round(float(get("bce")(torch.tensor([1.0, 0.0]), torch.tensor([0.8, 0.2]))), 4)
0.2231
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Cost = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_EPS = 1e-7


def BinaryCrossEntropy(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    p = y_pred.clamp(_EPS, 1 - _EPS)
    return -(y_true * torch.log(p) + (1 - y_true) * torch.log(1 - p)).mean()


def CategoricalCrossEntropy(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """``y_true`` holds class indices (integer dtype) or one row of probabilities per example."""
    logp = torch.log(y_pred.clamp_min(_EPS))
    if not torch.is_floating_point(y_true):
        return -logp.gather(-1, y_true.long().unsqueeze(-1)).mean()
    return -(y_true * logp).sum(-1).mean()


def MeanSquaredError(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    return ((y_pred - y_true) ** 2).mean()


def MeanAbsoluteError(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    return (y_pred - y_true).abs().mean()


def Hinge(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Targets in {-1, 1} (the model maps 0/1 and class labels there for you)."""
    return torch.clamp(1.0 - y_true * y_pred, min=0.0).mean()


def SquaredHinge(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    return (torch.clamp(1.0 - y_true * y_pred, min=0.0) ** 2).mean()


COSTS: dict[str, Cost] = {
    f.__name__.lower(): f
    for f in (BinaryCrossEntropy, CategoricalCrossEntropy, MeanSquaredError, MeanAbsoluteError,
              Hinge, SquaredHinge)
}
ALIASES = {"bce": BinaryCrossEntropy, "cce": CategoricalCrossEntropy, "mse": MeanSquaredError,
           "mae": MeanAbsoluteError}
bce = BCE = BinaryCrossEntropy
cce = CCE = CategoricalCrossEntropy
mse = MSE = MeanSquaredError
mae = MAE = MeanAbsoluteError


def get(cost: str | Cost) -> Cost:
    """The cost called ``cost`` (or ``cost`` itself if callable); errors list valid names."""
    if callable(cost):
        return cost
    if not isinstance(cost, str):
        raise TypeError(f"cost must be a name or a callable, got {type(cost).__name__}")
    key = cost.lower()
    found = COSTS.get(key) or ALIASES.get(key)
    if found is None:
        names = sorted([f.__name__ for f in COSTS.values()] + list(ALIASES))
        raise ValueError(f"unknown cost {cost!r}; valid names: {', '.join(names)}")
    return found


def name_of(cost: Cost) -> str:
    """The registered name of a cost function (what a saved model stores)."""
    for f in COSTS.values():
        if f is cost:
            return f.__name__
    raise ValueError(f"cost {cost!r} is not a registered Passage cost, so the model cannot be "
                     f"saved by name; add it with passage.costs.register(fn)")


def register(fn: Cost) -> Cost:
    """Make a custom cost usable by name and savable (use as a decorator)."""
    COSTS[fn.__name__.lower()] = fn
    return fn


def logits_cost(cost: Cost, activation: str) -> Cost | None:
    """A cost on pre-activations equal to ``cost`` after ``activation``, where one exists."""
    if cost is BinaryCrossEntropy and activation.lower() == "sigmoid":
        return lambda y, z: F.binary_cross_entropy_with_logits(z, y)
    if cost is CategoricalCrossEntropy and activation.lower() == "softmax":
        return lambda y, z: F.cross_entropy(z, y.long() if not torch.is_floating_point(y) else y)
    return None


def class_weighted(cost: Cost, weights: torch.Tensor, logits: bool) -> Cost:
    """``cost`` (binary or categorical cross-entropy) with each example's loss multiplied by the
    weight of its class: ``weights[c]`` for class index c (binary: ``[w0, w1]``).

    ``logits``: the model passes pre-activations (sigmoid/softmax not yet applied).

    >>> w = torch.tensor([1.0, 3.0])
    >>> y, p = torch.tensor([[1.0], [0.0]]), torch.tensor([[0.8], [0.2]])
    >>> round(float(class_weighted(BinaryCrossEntropy, w, logits=False)(y, p)), 4)
    0.4463
    """
    if cost is BinaryCrossEntropy:
        def per_example(y, out):
            if logits:
                return F.binary_cross_entropy_with_logits(out, y, reduction="none"), y
            p = out.clamp(_EPS, 1 - _EPS)
            return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)), y

        def weight_of(y):  # soft labels interpolate between the two class weights
            return weights[0] + (weights[1] - weights[0]) * y
    elif cost is CategoricalCrossEntropy:
        def per_example(y, out):
            target = y if torch.is_floating_point(y) else y.long()
            if logits:
                return F.cross_entropy(out, target, reduction="none"), y
            logp = torch.log(out.clamp_min(_EPS))
            if torch.is_floating_point(y):
                return -(y * logp).sum(-1), y
            return -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1), y

        def weight_of(y):
            return (y * weights).sum(-1) if torch.is_floating_point(y) else weights[y.long()]
    else:
        raise ValueError("class weights need a classification cost (BinaryCrossEntropy or "
                         f"CategoricalCrossEntropy), not {getattr(cost, '__name__', cost)}")

    def weighted(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        loss, y = per_example(y_true, y_pred)
        return (loss * weight_of(y).to(loss.dtype)).mean()

    return weighted
