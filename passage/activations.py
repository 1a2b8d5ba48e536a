"""Activation functions by name (the 2015 names, case-insensitive).

Gates default to ``steeper_sigmoid``: sigmoid(3.75 * x). It is a plain sigmoid of a scaled
pre-activation, which is why the fused recurrent kernels can still run it (see ``GATE_SCALES``).

>>> import torch
>>> float(get("Steeper_Sigmoid")(torch.tensor(0.4)))  # sigmoid(1.5)
0.8175744414329529
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from passage.registry import lookup

Activation = Callable[[torch.Tensor], torch.Tensor]


def linear(x: torch.Tensor) -> torch.Tensor:
    return x


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(x)


def steeper_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(3.75 * x)


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x + 0.5, 0.0, 1.0)


def tanh(x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x)


def hard_tanh(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x, -1.0, 1.0)


def rectify(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x)


def clipped_rectify(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x, 0.0, 5.0)


def elu(x: torch.Tensor) -> torch.Tensor:
    return F.elu(x)


def softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x, dim=-1)


relu = rectify

ACTIVATIONS: dict[str, Activation] = {
    f.__name__: f
    for f in (linear, sigmoid, steeper_sigmoid, hard_sigmoid, tanh, hard_tanh, rectify,
              clipped_rectify, elu, softmax)
}
ACTIVATIONS["relu"] = rectify

# Gate activations that are sigmoid(scale * x): the fused kernels run them by scaling weights.
GATE_SCALES: dict[str, float] = {"sigmoid": 1.0, "steeper_sigmoid": 3.75}


def get(name: str) -> Activation:
    """The activation called ``name`` (case-insensitive); a clear error lists the valid names."""
    return lookup(ACTIVATIONS, name, "activation")
