"""Updaters (optimizers) with the 2015 names and arguments, run by ``torch.optim``.

Every updater takes ``regularizer=Regularizer(l1, l2, maxnorm)`` and ``clipnorm``: the global
gradient norm is clipped to this value, 1.0 by default (2015: 0, off), because it is one of the
talk's tricks and it matters: IMDB after one epoch, 78.9% test accuracy without, 89.0% with
(benchmarks/imdb.py). ``clipnorm=0`` turns it off. The 2015 ``Adam(lr, b1, b2)`` counts b1 and b2 as
1 - beta, so ``Adam(b1=0.1, b2=0.001)`` is Adam with betas (0.9, 0.999).

>>> import torch
>>> w = torch.nn.Parameter(torch.tensor([3.0]))
>>> opt = Adam(lr=0.1)
>>> for _ in range(100):
...     (w ** 2).sum().backward()
...     _ = opt.step([w])
>>> abs(w.item()) < 0.5
True
"""

from __future__ import annotations

import torch

from passage._checks import check_real
from passage.registry import lookup


class Regularizer:
    """l1 / l2 penalties added to the gradient; ``maxnorm`` caps each unit's incoming weights."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0, maxnorm: float = 0.0):
        self.l1, self.l2, self.maxnorm = l1, l2, maxnorm

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2, "maxnorm": self.maxnorm}

    def gradient_regularize(self, params: list[torch.Tensor]) -> None:
        if not (self.l1 or self.l2):
            return
        for p in params:
            if p.grad is not None:
                p.grad.add_(p.detach(), alpha=self.l2).add_(torch.sign(p.detach()), alpha=self.l1)

    @torch.no_grad()
    def weight_regularize(self, params: list[torch.Tensor]) -> None:
        if self.maxnorm <= 0:
            return
        for p in params:
            if p.dim() >= 2:  # rows are units in PyTorch's (out, in) layout
                norms = p.norm(dim=1, keepdim=True)
                p.mul_(norms.clamp(max=self.maxnorm) / (norms + 1e-7))


class Update:
    """Base updater: builds its ``torch.optim`` optimizer on first use, then steps it."""

    defaults: dict = {}

    def __init__(self, regularizer: Regularizer | None = None, clipnorm: float = 1.0, **hyper):
        self.regularizer = regularizer if regularizer is not None else Regularizer()
        self.clipnorm = clipnorm
        settings = {**self.defaults, **hyper}
        for k, v in settings.items():
            setattr(self, k, v)
        if "lr" in settings:  # 0 would train nothing, silently; below 0 climbs the cost
            check_real(f"{type(self).__name__}(lr=...)", settings["lr"], low=0.0, low_open=True,
                       hint=" (the learning rate: a small positive number such as 1e-3)")
        self.optimizer: torch.optim.Optimizer | None = None

    def get_config(self) -> dict:
        return {**{k: getattr(self, k) for k in self.defaults}, "clipnorm": self.clipnorm,
                "regularizer": self.regularizer.get_config()}

    def make_optimizer(self, params: list[torch.Tensor]) -> torch.optim.Optimizer:
        raise NotImplementedError

    def load_state(self, params: list[torch.Tensor], state: dict) -> None:
        """Restore the optimizer's state (moments, step counts) from a checkpoint."""
        params = [p for p in params if p.requires_grad]
        if self.optimizer is None:
            self.optimizer = self.make_optimizer(params)
        self.optimizer.load_state_dict(state)

    def step(self, params: list[torch.Tensor]) -> float:
        """Apply one update from the gradients in ``params``; returns the gradient norm."""
        params = [p for p in params if p.requires_grad]
        if self.optimizer is None:
            self.optimizer = self.make_optimizer(params)
        optimizer = self.optimizer
        grads = [p for p in params if p.grad is not None]
        limit = self.clipnorm if self.clipnorm > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(grads, limit)
        self.regularizer.gradient_regularize(grads)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        self.regularizer.weight_regularize(params)
        return float(norm)


class SGD(Update):
    defaults = {"lr": 0.01}
    lr: float  # (set from defaults by Update.__init__)

    def __init__(self, lr: float = 0.01, *args, **kwargs):
        super().__init__(*args, lr=lr, **kwargs)

    def make_optimizer(self, params: list[torch.Tensor]) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=self.lr)


class Momentum(Update):
    defaults = {"lr": 0.01, "momentum": 0.9}
    lr: float  # (set from defaults by Update.__init__)
    momentum: float

    def __init__(self, lr: float = 0.01, momentum: float = 0.9, *args, **kwargs):
        super().__init__(*args, lr=lr, momentum=momentum, **kwargs)

    def make_optimizer(self, params: list[torch.Tensor]) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum)


class NAG(Update):
    """Nesterov momentum."""

    defaults = {"lr": 0.01, "momentum": 0.9}
    lr: float  # (set from defaults by Update.__init__)
    momentum: float

    def __init__(self, lr: float = 0.01, momentum: float = 0.9, *args, **kwargs):
        super().__init__(*args, lr=lr, momentum=momentum, **kwargs)

    def make_optimizer(self, params: list[torch.Tensor]) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, nesterov=True)


class RMSprop(Update):
    defaults = {"lr": 0.001, "rho": 0.9, "epsilon": 1e-6}
    lr: float  # (set from defaults by Update.__init__)
    rho: float
    epsilon: float

    def __init__(self, lr: float = 0.001, rho: float = 0.9, epsilon: float = 1e-6, *args,
                 **kwargs):
        super().__init__(*args, lr=lr, rho=rho, epsilon=epsilon, **kwargs)

    def make_optimizer(self, params: list[torch.Tensor]) -> torch.optim.Optimizer:
        return torch.optim.RMSprop(params, lr=self.lr, alpha=self.rho, eps=self.epsilon)


class Adam(Update):
    """Adam; ``b1``, ``b2`` are 1 - beta1, 1 - beta2 as in 2015 Passage."""

    defaults = {"lr": 0.0002, "b1": 0.1, "b2": 0.001, "e": 1e-8}
    lr: float  # (set from defaults by Update.__init__)
    b1: float
    b2: float
    e: float

    def __init__(self, lr: float = 0.0002, b1: float = 0.1, b2: float = 0.001, e: float = 1e-8,
                 *args, **kwargs):
        super().__init__(*args, lr=lr, b1=b1, b2=b2, e=e, **kwargs)

    def make_optimizer(self, params: list[torch.Tensor]) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=self.lr, betas=(1 - self.b1, 1 - self.b2), eps=self.e)


class Adagrad(Update):
    defaults = {"lr": 0.01, "epsilon": 1e-6}
    lr: float  # (set from defaults by Update.__init__)
    epsilon: float

    def __init__(self, lr: float = 0.01, epsilon: float = 1e-6, *args, **kwargs):
        super().__init__(*args, lr=lr, epsilon=epsilon, **kwargs)

    def make_optimizer(self, params: list[torch.Tensor]) -> torch.optim.Optimizer:
        return torch.optim.Adagrad(params, lr=self.lr, eps=self.epsilon)


class Adadelta(Update):
    defaults = {"lr": 0.5, "rho": 0.95, "epsilon": 1e-6}
    lr: float  # (set from defaults by Update.__init__)
    rho: float
    epsilon: float

    def __init__(self, lr: float = 0.5, rho: float = 0.95, epsilon: float = 1e-6, *args,
                 **kwargs):
        super().__init__(*args, lr=lr, rho=rho, epsilon=epsilon, **kwargs)

    def make_optimizer(self, params: list[torch.Tensor]) -> torch.optim.Optimizer:
        return torch.optim.Adadelta(params, lr=self.lr, rho=self.rho, eps=self.epsilon)


UPDATERS: dict[str, type[Update]] = {
    c.__name__.lower(): c for c in (SGD, Momentum, NAG, RMSprop, Adam, Adagrad, Adadelta)
}


def get(updater: str | Update) -> Update:
    """A fresh updater for a name (case-insensitive), or ``updater`` itself."""
    if isinstance(updater, Update):
        return updater
    return lookup(UPDATERS, updater, "updater")()


def from_config(name: str, config: dict) -> Update:
    config = dict(config)
    reg = Regularizer(**config.pop("regularizer", {}))
    return UPDATERS[name.lower()](regularizer=reg, **config)


class LossScale:
    """Dynamic loss scaling for float16 training (``RNN(precision='fp16')``).

    The loss is multiplied by ``scale`` before backward, so that small gradients do not round to
    zero in float16, and the gradients are divided back before the update. A step whose
    gradients overflowed (inf or NaN) is skipped and the scale halved; after ``interval`` good
    steps in a row the scale doubles.

    >>> scaler = LossScale(scale=8.0)
    >>> w = torch.ones(1, requires_grad=True)
    >>> scaler.backward(w.sum() * 3)
    >>> scaler.unscale([w]), w.grad.item()
    (True, 3.0)
    """

    def __init__(self, scale: float = 2.0 ** 16, interval: int = 2000):
        self.scale, self.interval, self.good_steps = float(scale), interval, 0

    def backward(self, loss: torch.Tensor) -> None:
        (loss * self.scale).backward()

    def unscale(self, params: list[torch.Tensor]) -> bool:
        """Divide the gradients by the scale; False (gradients cleared, scale halved) if any
        of them overflowed, in which case the step must be skipped."""
        grads = [p.grad for p in params if p.grad is not None]
        norms = torch.stack([torch.linalg.vector_norm(g) for g in grads]) if grads else None
        if norms is not None and not bool(torch.isfinite(norms).all()):
            for p in params:
                p.grad = None
            self.scale, self.good_steps = self.scale / 2, 0
            return False
        if grads:
            torch._foreach_mul_(grads, 1.0 / self.scale)
        self.good_steps += 1
        if self.good_steps >= self.interval:
            self.scale, self.good_steps = self.scale * 2, 0
        return True
