"""Weight initialisers by name: uniform, normal, orthogonal (the 2015 default), identity, zeros.

All draw from torch's global generator, so ``torch.manual_seed`` makes a model reproducible.
Each takes a shape ``(n_in, n_out)`` as in 2015 and returns a float32 tensor of that shape.

>>> import torch
>>> w = get("orthogonal")((4, 4))
>>> bool(torch.allclose(w @ w.T, 1.1 ** 2 * torch.eye(4), atol=1e-5))
True
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from passage.registry import lookup

Init = Callable[[tuple[int, ...]], torch.Tensor]


def uniform(shape: tuple[int, ...], scale: float = 0.05) -> torch.Tensor:
    return torch.empty(shape).uniform_(-scale, scale)


def normal(shape: tuple[int, ...], scale: float = 0.05) -> torch.Tensor:
    return torch.randn(shape) * scale


def orthogonal(shape: tuple[int, ...], scale: float = 1.1) -> torch.Tensor:
    """A (semi-)orthogonal matrix times ``scale``: keeps the recurrent signal's norm at first."""
    rows, cols = shape[0], int(torch.tensor(shape[1:]).prod())
    q, r = torch.linalg.qr(torch.randn(max(rows, cols), min(rows, cols)))
    q = q * torch.sign(torch.diagonal(r))  # a uniform draw over orthogonal matrices
    if rows < cols:
        q = q.T
    return (scale * q).reshape(shape).contiguous()


def identity(shape: tuple[int, ...], scale: float = 1.0) -> torch.Tensor:
    """``scale`` times the identity (IRNN-style init, for square recurrent weights)."""
    return scale * torch.eye(shape[0], shape[1])


def zeros(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.zeros(shape)


INITS: dict[str, Init] = {f.__name__: f for f in (uniform, normal, orthogonal, identity, zeros)}


def get(name: str) -> Init:
    """The initialiser called ``name`` (case-insensitive); a clear error lists the valid names."""
    return lookup(INITS, name, "init")
