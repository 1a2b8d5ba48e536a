"""Layers: a model is a list of them, input layer first.

Input: ``Embedding`` (token ids), ``OneHot`` (token ids), ``Generic`` (real vectors per step).
Recurrent: ``SimpleRecurrent``, ``GatedRecurrent`` (GRU), ``LstmRecurrent``; forward, backward or
bidirectional (``direction='bi'``, outputs concatenated). Output: ``Dense`` (or, for a language
model over a large vocabulary, ``AdaptiveSoftmax``).

Each layer takes its config in the constructor (names and defaults of 2015 Passage) and makes its
parameters in ``connect(n_in)``, once the size of its input is known. Every layer maps
``(x, lengths) -> (x, lengths)``, where x is (batch, time, features) for sequences or (batch,
features) after a recurrent layer that returns only its last state.

>>> import torch
>>> gru = GatedRecurrent(size=4, direction="bi")
>>> gru.connect(3)
>>> out, _ = gru(torch.randn(2, 5, 3), torch.tensor([5, 2]))
>>> tuple(out.shape)
(2, 8)
"""

from __future__ import annotations

import contextlib
import inspect
import operator
import threading

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from passage import activations, inits, skip_padding
from passage._checks import check_dropout, check_int
from passage.recurrent import (
    GATES,
    gate_scale_vector,
    last_step,
    pool_steps,
    reverse_padded,
    scan_fused,
    scan_reference,
)

DIRECTIONS = {"forward": (False,), "backward": (True,), "bi": (False, True),
              "bidirectional": (False, True)}


_CALL = threading.local()  # per thread: is this thread running the layers for inference?


@contextlib.contextmanager
def inference():
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
                 weights=None, trainable: bool = True):
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

    def forward(self, x, lengths):
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
                 init: str = "uniform", weights=None):
        super().__init__(size, n_features, init, weights)
        self.n_slots = n_slots
        _check_positive(self, n_slots=n_slots)

    @property
    def out_size(self) -> int:
        return self.size * self.n_slots

    def forward(self, x, lengths):
        if x.dim() != 3 or x.shape[-1] != self.n_slots:
            raise ValueError(f"FeatureEmbedding(n_slots={self.n_slots}) takes (examples, steps, "
                             f"{self.n_slots}) ids; got shape {tuple(x.shape)}")
        return F.embedding(x, self.weight).flatten(2), lengths


class OneHot(Layer):
    """Token ids -> one-hot vectors of ``n_features`` (no parameters)."""

    is_input = True

    def __init__(self, n_features: int, weights=None):
        super().__init__()
        self.n_features, self.weights = n_features, weights
        _check_positive(self, n_features=n_features)
        self.size = n_features

    def forward(self, x, lengths):
        return F.one_hot(x, self.n_features).float(), lengths


class Generic(Layer):
    """Real-valued input: one vector of ``size`` features per step (e.g. pixels of an image row)."""

    is_input = True

    def __init__(self, size: int, weights=None):
        super().__init__()
        self.size, self.weights = size, weights
        _check_positive(self, size=size)

    def forward(self, x, lengths):
        return x, lengths


class Dense(Layer):
    """Fully connected layer; applied at every step when its input is a sequence."""

    def __init__(self, size: int = 256, activation: str = "rectify", init: str = "orthogonal",
                 p_drop: float = 0.0, weights=None):
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

    def forward(self, x, lengths, pre_act: bool = False):
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

    def __init__(self, size: int, cutoffs=(1000, 4000), div_value: float = 4.0,
                 p_drop: float = 0.0):
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

    def forward(self, x, lengths, pre_act: bool = False):
        x = F.dropout(x, self.p_drop, is_training(self))
        logp = self.asm.log_prob(x.reshape(-1, self.n_in)).reshape(*x.shape[:-1], self.size)
        return (logp if pre_act else logp.exp()), lengths

    def cost(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean negative log-probability of ``target`` ids, computing only the clusters they
        fall in (what makes training cheap)."""
        x = F.dropout(x, self.p_drop, is_training(self))
        with torch.autocast(x.device.type, enabled=False):  # log-probabilities in float32
            return self.asm(full_precision(x).reshape(-1, self.n_in), target.reshape(-1)).loss


class _Direction(nn.Module):
    """The parameters of one direction of a recurrent layer (PyTorch's weight layout)."""

    def __init__(self, kind: str, n_in: int, size: int, init: str):
        super().__init__()
        make = inits.get(init)
        g = GATES[kind]
        # As in 2015, every gate's input and recurrent matrix is initialised on its own.
        self.h0 = nn.Parameter(torch.zeros(size))
        if kind == "lstm":
            self.c0 = nn.Parameter(torch.zeros(size))
        self.w_ih = nn.Parameter(torch.cat([make((n_in, size)).T for _ in range(g)]).contiguous())
        self.w_hh = nn.Parameter(torch.cat([make((size, size)).T for _ in range(g)]).contiguous())
        self.b_ih = nn.Parameter(torch.zeros(g * size))
        self.b_hh = nn.Parameter(torch.zeros(g * size))

    def initial_state(self, batch: int) -> tuple[torch.Tensor, ...]:
        states = (self.h0, self.c0) if hasattr(self, "c0") else (self.h0,)
        return tuple(s.expand(batch, -1) for s in states)


def full_precision(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 if it is a 16-bit float (mixed precision), else unchanged (so a float64
    model stays float64)."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The low-precision dtype of an active ``torch.autocast`` on this device, else None. The
    fused RNN kernels are not on autocast's own list, so the recurrent layers cast for it."""
    if device_type not in ("cpu", "cuda") or not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


class _Recurrent(Layer):
    """Shared machinery of the three recurrent layers; subclasses set ``kind``."""

    is_recurrent = True
    kind = "simple"

    def _setup(self, size, activation, gate_activation, init, truncate_gradient, seq_output,
               p_drop, direction, weights, recurrent_dropout, fused, pool=None):
        self.size, self.activation, self.gate_activation = size, activation, gate_activation
        self.init, self.truncate_gradient, self.seq_output = init, truncate_gradient, seq_output
        self.p_drop, self.direction, self.weights = p_drop, direction, weights
        self.recurrent_dropout, self.fused, self.pool = recurrent_dropout, fused, pool
        if pool not in (None, "max", "mean"):
            raise ValueError(f"pool must be None (the last state), 'max' or 'mean'; got {pool!r}")
        _check_positive(self, size=size)
        if not isinstance(direction, str) or direction.lower() not in DIRECTIONS:
            raise ValueError(f"direction must be one of 'forward', 'backward', 'bi'; "
                             f"got {direction!r}")
        for name, p in (("p_drop", p_drop), ("recurrent_dropout", recurrent_dropout)):
            check_dropout(f"{type(self).__name__}({name}=...)", p)
        check_int(f"{type(self).__name__}(truncate_gradient=...)", truncate_gradient,
                  minimum=-1, hint=" (steps of backpropagation; -1 for all)")
        self.act = activations.get(activation)
        self.gate_act = activations.get(gate_activation)
        inits.get(init)
        self.reversed = DIRECTIONS[direction.lower()]
        # A stack sets this to True when a later layer needs the whole sequence.
        self.sequence_out = seq_output
        kernel_acts = ("tanh", "rectify", "relu") if self.kind == "simple" else ("tanh",)
        gates_ok = self.kind == "simple" or gate_activation.lower() in activations.GATE_SCALES
        self.uses_kernel = bool(fused) and activation.lower() in kernel_acts and gates_ok

    @property
    def out_size(self) -> int:
        return self.size * len(self.reversed)

    @property
    def relu(self) -> bool:
        """Whether the kernels run a relu (SimpleRecurrent) rather than tanh."""
        return self.activation.lower() in ("rectify", "relu")

    def connect(self, n_in: int) -> None:
        super().connect(n_in)
        self.directions = nn.ModuleList(
            _Direction(self.kind, n_in, self.size, self.init) for _ in self.reversed)
        self._set_weights()

    def _kernel_weights(self, weights: list[torch.Tensor]) -> list[torch.Tensor]:
        """[w_ih, w_hh, b_ih, b_hh] with steeper gates folded in: sigmoid(s a) is a plain
        sigmoid of the pre-activation scaled by s, so the gate rows are scaled by s."""
        scale = activations.GATE_SCALES.get(self.gate_activation.lower(), 1.0)
        if self.kind == "simple" or scale == 1.0:
            return weights
        s = gate_scale_vector(self.kind, self.size, scale, weights[0].device, weights[0].dtype)
        return [weights[0] * s[:, None], weights[1] * s[:, None], weights[2] * s, weights[3] * s]

    def _scan(self, d: _Direction, x: torch.Tensor, state=None):
        """One direction over the padded batch: (outputs, final state)."""
        state = d.initial_state(x.shape[0]) if state is None else state
        w_hh = d.w_hh
        if self.recurrent_dropout > 0 and is_training(self):  # DropConnect: keeps the fused kernel
            w_hh = F.dropout(w_hh, self.recurrent_dropout, True)
        weights = [d.w_ih, w_hh, d.b_ih, d.b_hh]
        k = self.truncate_gradient
        if not self.uses_kernel:
            return scan_reference(self.kind, x, state, weights, self.act, self.gate_act, k)
        weights = self._kernel_weights(weights)
        relu = self.relu
        dtype = state[0].dtype
        low = _autocast_dtype(x.device.type)
        if low is not None:  # mixed precision: the kernel runs in low precision (h and c too);
            # the final states are handed back in the states' own dtype
            x, state = x.to(low), tuple(s.to(low) for s in state)
            weights = [w.to(low) for w in weights]
        if k <= 0 or k >= x.shape[1]:
            out, state = scan_fused(self.kind, x, state, weights, relu)
        else:
            outs = []
            for start in range(0, x.shape[1], k):  # truncated BPTT: cut gradients every k steps
                if start:
                    state = tuple(s.detach() for s in state)
                out, state = scan_fused(self.kind, x[:, start:start + k], state, weights, relu)
                outs.append(out)
            out = torch.cat(outs, dim=1)
        return out, tuple(s.to(dtype) for s in state)

    # -- inference that skips padding (CPU, no gradients) --------------------------------------
    def skips_padding(self, x: torch.Tensor) -> bool:
        """True when ``infer`` can stand in for ``forward``: evaluation without gradients on the
        CPU, with activations the step loop has (those of the fused kernels)."""
        return (not is_training(self) and not torch.is_grad_enabled() and self.uses_kernel
                and x.device.type == "cpu")

    def projection_tables(self, embedding: Embedding) -> list[torch.Tensor]:
        """The input projection of every vocabulary entry, (n_features, gates * size), one per
        direction: looked up instead of a matmul at each step of ``infer`` (the model keeps
        them while its weights stay as they were: ``Stack.projection_tables``)."""
        with torch.no_grad():
            return [torch.addmm(b_ih, embedding.weight, w_ih.T) for w_ih, _, b_ih, _ in
                    (self._kernel_weights([d.w_ih, d.w_hh, d.b_ih, d.b_hh])
                     for d in self.directions)]

    def infer(self, x: torch.Tensor, lengths: torch.Tensor, embedding: Embedding | None = None,
              tables: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``forward`` for inference (see ``skips_padding``), computing no padded step. With the
        ``embedding`` that precedes this layer, x holds its token ids (batch, time); with its
        ``projection_tables`` too, each step's input projection is a table lookup."""
        lengths_np = lengths.cpu().numpy()
        order = None
        if (np.diff(lengths_np) < 0).any():
            order = torch.from_numpy(np.argsort(lengths_np, kind="stable"))
            x, lengths, lengths_np = x[order], lengths[order], lengths_np[order.numpy()]
        batch, width = x.shape[0], x.shape[1]
        outs = []
        pool = None if self.sequence_out else self.pool
        for i, (d, rev) in enumerate(zip(self.directions, self.reversed, strict=True)):
            w_ih, w_hh, b_ih, b_hh = self._kernel_weights([d.w_ih, d.w_hh, d.b_ih, d.b_hh])
            xs = reverse_padded(x, lengths) if rev else x
            if embedding is not None and tables is not None:
                source, ids = tables[i], xs
            else:
                if embedding is not None:
                    xs = F.embedding(xs, embedding.weight)
                source = torch.addmm(b_ih, xs.reshape(batch * width, -1), w_ih.T)
                source, ids = source.view(batch, width, -1), None
            out, final = skip_padding.scan(self.kind, source, ids, lengths_np,
                                           d.initial_state(batch), w_hh, b_hh, self.relu,
                                           self.sequence_out, pool)
            if self.sequence_out:
                outs.append(reverse_padded(out, lengths) if rev else out)
            elif pool is not None:
                outs.append(out)
            else:  # the state stopped at each sequence's last step (h0 for an empty one)
                outs.append(final[0])
        out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
        if order is not None:
            back = torch.argsort(order)
            out, lengths = out[back], lengths[back]
        return out, lengths

    def forward(self, x, lengths, state=None, return_state: bool = False):
        """(x, lengths) -> (outputs, lengths). With ``return_state`` (forward direction, equal
        lengths: how a language model reads a stream) it starts from ``state`` (None: the
        learned initial state) and also returns its final state, to carry into the next call."""
        if x.dim() != 3:
            raise ValueError(f"{type(self).__name__} needs a sequence (batch, time, features) "
                             f"but got a tensor of shape {tuple(x.shape)}")
        if return_state and (self.reversed != (False,) or bool((lengths != x.shape[1]).any())):
            raise ValueError("carrying state across calls needs a forward-only recurrent layer "
                             "and sequences of equal length")
        if state is None and not return_state and self.skips_padding(x):
            return self.infer(x, lengths)
        x = F.dropout(x, self.p_drop, is_training(self))
        outs = []
        for d, rev in zip(self.directions, self.reversed, strict=True):
            out, final = self._scan(d, reverse_padded(x, lengths) if rev else x, state)
            if self.sequence_out:
                outs.append(reverse_padded(out, lengths) if rev else out)
            elif self.pool:
                outs.append(pool_steps(out, lengths, self.pool))
            else:
                outs.append(last_step(out, lengths, d.h0))
        out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
        if self.sequence_out:  # zero the padding so nothing downstream can read it
            mask = torch.arange(out.shape[1], device=out.device)[None, :] < lengths.to(
                out.device)[:, None]
            out = out * mask[..., None].to(out.dtype)
        return (out, lengths, final) if return_state else (out, lengths)


class SimpleRecurrent(_Recurrent):
    """Elman RNN: h_t = activation(W x_t + U h_{t-1} + b). ``gate_activation`` is unused."""

    kind = "simple"

    def __init__(self, size: int = 256, activation: str = "tanh", init: str = "orthogonal",
                 truncate_gradient: int = -1, seq_output: bool = False, p_drop: float = 0.0,
                 weights=None, *, direction: str = "forward",
                 gate_activation: str = "steeper_sigmoid", recurrent_dropout: float = 0.0,
                 fused: bool = True, pool: str | None = None):
        super().__init__()
        self._setup(size, activation, gate_activation, init, truncate_gradient, seq_output,
                    p_drop, direction, weights, recurrent_dropout, fused, pool)


class GatedRecurrent(_Recurrent):
    """GRU (PyTorch/cuDNN form: the reset gate multiplies U_n h + b_n). Gates steeper by default."""

    kind = "gru"

    def __init__(self, size: int = 256, activation: str = "tanh",
                 gate_activation: str = "steeper_sigmoid", init: str = "orthogonal",
                 truncate_gradient: int = -1, seq_output: bool = False, p_drop: float = 0.0,
                 direction: str = "forward", weights=None, *, recurrent_dropout: float = 0.0,
                 fused: bool = True, pool: str | None = None):
        super().__init__()
        self._setup(size, activation, gate_activation, init, truncate_gradient, seq_output,
                    p_drop, direction, weights, recurrent_dropout, fused, pool)


class LstmRecurrent(_Recurrent):
    """LSTM without peepholes; learned initial hidden and cell states. Gates steeper by default."""

    kind = "lstm"

    def __init__(self, size: int = 256, activation: str = "tanh",
                 gate_activation: str = "steeper_sigmoid", init: str = "orthogonal",
                 truncate_gradient: int = -1, seq_output: bool = False, p_drop: float = 0.0,
                 weights=None, *, direction: str = "forward", recurrent_dropout: float = 0.0,
                 fused: bool = True, pool: str | None = None):
        super().__init__()
        self._setup(size, activation, gate_activation, init, truncate_gradient, seq_output,
                    p_drop, direction, weights, recurrent_dropout, fused, pool)


LAYERS: dict[str, type[Layer]] = {
    c.__name__: c for c in (Embedding, FeatureEmbedding, OneHot, Generic, Dense, AdaptiveSoftmax,
                            SimpleRecurrent, GatedRecurrent, LstmRecurrent)
}


def register(cls: type[Layer]) -> type[Layer]:
    """Make a user-defined layer class loadable by name (use as a decorator)."""
    LAYERS[cls.__name__] = cls
    return cls


def output_size(layer: Layer) -> int:
    """Number of features a connected layer outputs per example (or per step)."""
    return getattr(layer, "out_size", layer.size)


def _check_positive(layer: Layer, **sizes: int) -> None:
    for name, v in sizes.items():
        if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{type(layer).__name__}({name}=...) must be a positive int, "
                             f"got {v!r}")
