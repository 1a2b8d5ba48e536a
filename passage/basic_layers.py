"""The layers other than the recurrent ones, and what every layer shares: the ``Layer`` base
class, the per-thread ``inference()`` switch, ``Embedding``, ``FeatureEmbedding``, ``OneHot``,
``Generic``, ``Dense`` and ``AdaptiveSoftmax``. Import them from ``passage.layers``."""

from __future__ import annotations

import contextlib
import inspect
import operator
import threading
from collections.abc import Iterable, Iterator
from typing import Any, SupportsIndex

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from passage import activations, inits
from passage._checks import check_dropout

_CALL = threading.local()  # per thread: is this thread running the layers for inference?


@contextlib.contextmanager
def inference() -> Iterator[None]:
    """Run the layers' inference behaviour in this thread (no dropout; the recurrent layers'
    padding-skipping path), whatever their modules' train/eval mode. ``RNN.predict`` runs in
    it rather than calling ``eval()``, so it never flips the mode that a ``fit`` running in
    another thread relies on. Thread-local: the other threads are untouched."""
    before = getattr(_CALL, "inference", False)
    _CALL.inference = True
    try:
        yield
    finally:
        _CALL.inference = before


def is_training(module: nn.Module) -> bool:
    """Whether ``module`` runs its training behaviour (dropout) in this call: it is in training
    mode and this thread is not in ``inference()``. A layer of your own should decide its
    dropout with it rather than with ``self.training``, to be safe from a concurrent predict."""
    return module.training and not getattr(_CALL, "inference", False)


class Layer(nn.Module):
    """Base class: constructor args are the config; ``connect`` makes the parameters."""

    is_input = False
    is_recurrent = False
    size: int
    weights: Any  # 2015-style initial weights: arrays in parameter order, or None
    # the recurrent layers' (is_recurrent): read by the stack and the model builders
    sequence_out: bool
    seq_output: bool
    pool: str | None

    def connect(self, n_in: int) -> None:
        self.n_in = n_in

    def get_config(self) -> dict:
        """Constructor arguments as plain data (no weights): what ``save`` stores."""
        names = inspect.signature(type(self).__init__).parameters
        return {k: getattr(self, k) for k in names if k not in ("self", "weights")}

    def _set_weights(self) -> None:
        """Copy the 2015-style ``weights`` list (arrays in parameter order) into the layer."""
        if self.weights is None:
            return
        given = self.weights
        if isinstance(given, np.ndarray | torch.Tensor):
            given = [given]
        given = list(given)
        params = list(self.parameters())
        if len(given) != len(params):
            raise ValueError(f"{type(self).__name__} has {len(params)} weight arrays, "
                             f"but weights= gives {len(given)}")
        with torch.no_grad():
            for i, (p, w) in enumerate(zip(params, given, strict=True)):
                w = torch.as_tensor(np.asarray(w), dtype=p.dtype)
                if w.shape != p.shape:
                    raise ValueError(f"{type(self).__name__} weights[{i}] has shape "
                                     f"{tuple(w.shape)}, expected {tuple(p.shape)}")
                p.copy_(w)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())


class Embedding(Layer):
    """Token ids -> learned vectors of ``size``. ``weights`` may be a (n_features, size) array,
    e.g. pretrained vectors from ``passage.vectors.load_vectors``; ``trainable=False`` freezes
    them."""

    is_input = True

    def __init__(self, size: int = 128, n_features: int = 256, init: str = "uniform",
                 weights: Iterable[Any] | None = None, trainable: bool = True):
        super().__init__()
        self.size, self.n_features, self.init, self.weights = size, n_features, init, weights
        self.trainable = trainable
        _check_positive(self, size=size, n_features=n_features)
        inits.get(init)  # an unknown name fails here, not at connect

    def connect(self, n_in: int = 0) -> None:
        super().connect(n_in)
        self.weight = nn.Parameter(inits.get(self.init)((self.n_features, self.size)),
                                   requires_grad=self.trainable)
        self._set_weights()

    def forward(self, x: torch.Tensor,
                lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        return F.embedding(x, self.weight), lengths


class FeatureEmbedding(Embedding):
    """Several ids per step -> their vectors concatenated: e.g. a word, its suffixes and its
    shape for a tagger (``passage.tagging.WordFeatures``). Input (batch, time, n_slots) ids,
    output ``size * n_slots`` features per step.

    >>> import torch
    >>> emb = FeatureEmbedding(size=4, n_features=20, n_slots=3)
    >>> emb.connect()
    >>> tuple(emb(torch.zeros(2, 5, 3, dtype=torch.long), torch.tensor([5, 2]))[0].shape)
    (2, 5, 12)
    """

    def __init__(self, size: int = 64, n_features: int = 256, n_slots: int = 1,
                 init: str = "uniform", weights: Iterable[Any] | None = None):
        super().__init__(size, n_features, init, weights)
        self.n_slots = n_slots
        _check_positive(self, n_slots=n_slots)

    @property
    def out_size(self) -> int:
        return self.size * self.n_slots

    def forward(self, x: torch.Tensor,
                lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if x.dim() != 3 or x.shape[-1] != self.n_slots:
            raise ValueError(f"FeatureEmbedding(n_slots={self.n_slots}) takes (examples, steps, "
                             f"{self.n_slots}) ids; got shape {tuple(x.shape)}")
        return F.embedding(x, self.weight).flatten(2), lengths


class OneHot(Layer):
    """Token ids -> one-hot vectors of ``n_features`` (no parameters)."""

    is_input = True

    def __init__(self, n_features: int, weights: Iterable[Any] | None = None):
        super().__init__()
        self.n_features, self.weights = n_features, weights
        _check_positive(self, n_features=n_features)
        self.size = n_features

    def forward(self, x: torch.Tensor,
                lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        return F.one_hot(x, self.n_features).float(), lengths


class Generic(Layer):
    """Real-valued input: one vector of ``size`` features per step (e.g. pixels of an image row)."""

    is_input = True

    def __init__(self, size: int, weights: Iterable[Any] | None = None):
        super().__init__()
        self.size, self.weights = size, weights
        _check_positive(self, size=size)

    def forward(self, x: torch.Tensor,
                lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        return x, lengths


class Dense(Layer):
    """Fully connected layer; applied at every step when its input is a sequence."""

    def __init__(self, size: int = 256, activation: str = "rectify", init: str = "orthogonal",
                 p_drop: float = 0.0, weights: Iterable[Any] | None = None):
        super().__init__()
        self.size, self.activation, self.init = size, activation, init
        self.p_drop, self.weights = p_drop, weights
        _check_positive(self, size=size)
        check_dropout("Dense(p_drop=...)", p_drop)
        self.act = activations.get(activation)
        inits.get(init)

    def connect(self, n_in: int) -> None:
        super().connect(n_in)
        self.w = nn.Parameter(inits.get(self.init)((n_in, self.size)).T.contiguous())
        self.b = nn.Parameter(torch.zeros(self.size))
        self._set_weights()

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None,
                pre_act: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = F.dropout(x, self.p_drop, is_training(self))
        y = F.linear(x, self.w, self.b)
        # under mixed precision the activation runs in float32: a bfloat16 sigmoid saturates
        # to exactly 1 (and a zero gradient) from pre-activations of about 6 up
        return (y if pre_act else self.act(full_precision(y))), lengths


class AdaptiveSoftmax(Layer):
    """A softmax over a large vocabulary at a fraction of the cost (Grave et al., 2017), as the
    output of a ``LanguageModel``: ids below ``cutoffs[0]`` get a full softmax, the rarer ones
    sit in clusters (one per further cutoff) behind a single head entry each, projected
    ``div_value`` times smaller per cluster. Ids must run from frequent to rare, as the
    Tokenizer's do. Outputs the probability of every id (``pre_act``: their logs).

    >>> import torch
    >>> out = AdaptiveSoftmax(size=50, cutoffs=(10, 30))
    >>> out.connect(32)
    >>> p, _ = out(torch.randn(2, 32), None)
    >>> tuple(p.shape), bool(torch.allclose(p.sum(1), torch.ones(2)))
    ((2, 50), True)
    """

    def __init__(self, size: int, cutoffs: Iterable[SupportsIndex] = (1000, 4000),
                 div_value: float = 4.0, p_drop: float = 0.0):
        super().__init__()
        _check_positive(self, size=size)
        try:
            self.cutoffs = [operator.index(c) for c in cutoffs]  # ints only: 10.7 is an error
            self.div_value = float(div_value)
        except TypeError:
            raise TypeError(f"AdaptiveSoftmax takes cutoffs as a list of ints, e.g. (1000, 4000), "
                            f"and div_value as a number; got {cutoffs!r}, {div_value!r}") from None
        self.size, self.p_drop = size, p_drop
        if not self.cutoffs or self.cutoffs != sorted(set(self.cutoffs)) or \
                self.cutoffs[0] < 1 or self.cutoffs[-1] >= size:
            raise ValueError(f"AdaptiveSoftmax cutoffs must be increasing ids between 1 and "
                             f"size - 1 = {size - 1}; got {list(cutoffs)!r} (for {size} ids, "
                             f"e.g. cutoffs=({size // 10 or 1},))")
        if not self.div_value >= 1:
            raise ValueError(f"AdaptiveSoftmax div_value must be >= 1, got {div_value!r}")
        check_dropout("AdaptiveSoftmax(p_drop=...)", p_drop)

    def connect(self, n_in: int) -> None:
        super().connect(n_in)
        if n_in // self.div_value ** len(self.cutoffs) < 1:
            raise ValueError(f"AdaptiveSoftmax: its last cluster would be projected to "
                             f"{n_in} / {self.div_value}^{len(self.cutoffs)} < 1 features; "
                             "use fewer cutoffs or a smaller div_value")
        self.asm = nn.AdaptiveLogSoftmaxWithLoss(n_in, self.size, self.cutoffs,
                                                 div_value=self.div_value)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None,
                pre_act: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = F.dropout(x, self.p_drop, is_training(self))
        logp = self.asm.log_prob(x.reshape(-1, self.n_in)).reshape(*x.shape[:-1], self.size)
        return (logp if pre_act else logp.exp()), lengths

    def cost(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean negative log-probability of ``target`` ids, computing only the clusters they
        fall in (what makes training cheap)."""
        x = F.dropout(x, self.p_drop, is_training(self))
        with torch.autocast(x.device.type, enabled=False):  # log-probabilities in float32
            return self.asm(full_precision(x).reshape(-1, self.n_in), target.reshape(-1)).loss


def full_precision(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 if it is a 16-bit float (mixed precision), else unchanged (so a float64
    model stays float64)."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def output_size(layer: Layer) -> int:
    """Number of features a connected layer outputs per example (or per step)."""
    return int(getattr(layer, "out_size", layer.size))


def _check_positive(layer: Layer, **sizes: int) -> None:
    for name, v in sizes.items():
        if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{type(layer).__name__}({name}=...) must be a positive int, "
                             f"got {v!r}")
