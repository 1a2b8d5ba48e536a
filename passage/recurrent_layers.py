"""The recurrent layers: ``SimpleRecurrent``, ``GatedRecurrent`` (GRU) and ``LstmRecurrent``, one
base class (``_Recurrent``) doing the work. Training runs the scans of ``passage.recurrent``
(fused kernels, GRUScan, the reference loop); inference on the CPU runs
``passage.skip_padding``. Import them from ``passage.layers``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from passage import activations, inits, skip_padding
from passage._checks import check_dropout, check_int
from passage.basic_layers import Embedding, Layer, _check_positive, is_training
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


class _Direction(nn.Module):
    """The parameters of one direction of a recurrent layer (PyTorch's weight layout)."""

    h0: nn.Parameter
    c0: nn.Parameter  # (LSTM only)
    w_ih: nn.Parameter
    w_hh: nn.Parameter
    b_ih: nn.Parameter
    b_hh: nn.Parameter

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


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The low-precision dtype of an active ``torch.autocast`` on this device, else None. The
    fused RNN kernels are not on autocast's own list, so the recurrent layers cast for it."""
    if device_type not in ("cpu", "cuda") or not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


class _Recurrent(Layer):
    """Shared machinery of the three recurrent layers; subclasses set ``kind``."""

    act: Callable[[torch.Tensor], torch.Tensor]
    gate_act: Callable[[torch.Tensor], torch.Tensor]
    directions: nn.ModuleList  # of _Direction, one per entry of ``reversed``

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

    @property
    def _directions(self) -> list[_Direction]:
        return cast(list[_Direction], list(self.directions))

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
        w_hh: torch.Tensor = d.w_hh
        if self.recurrent_dropout > 0 and is_training(self):  # DropConnect: keeps the fused kernel
            w_hh = F.dropout(w_hh, self.recurrent_dropout, True)
        weights: list[torch.Tensor] = [d.w_ih, w_hh, d.b_ih, d.b_hh]
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

    def projection_tables(self, embedding: Embedding) -> list[tuple[torch.Tensor, ...]]:
        """Per direction, what ``infer`` reads when it looks inputs up rather than projecting
        them: (table, w_hh, b_hh), the table the input projection of every vocabulary entry
        (n_features, gates * size) with b_ih, and the recurrent weights with steeper gates
        folded in, w_hh laid out as the C scan reads it (a transposed view of contiguous
        memory). The model keeps them while its weights stay as they were
        (``Stack.projection_tables``)."""
        with torch.no_grad():
            out: list[tuple[torch.Tensor, ...]] = []
            for d in self._directions:
                w_ih, w_hh, b_ih, b_hh = self._kernel_weights([d.w_ih, d.w_hh, d.b_ih, d.b_hh])
                out.append((torch.addmm(b_ih, embedding.weight, w_ih.T),
                            w_hh.T.contiguous().T, b_hh.contiguous()))
            return out

    def infer(self, x: torch.Tensor, lengths: torch.Tensor, embedding: Embedding | None = None,
              tables: list[tuple[torch.Tensor, ...]] | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """``forward`` for inference (see ``skips_padding``), computing no padded step. With the
        ``embedding`` that precedes this layer, x holds its token ids (batch, time); with its
        ``projection_tables`` too, each step's input projection is a table lookup."""
        lengths_np = lengths.cpu().numpy()  # (rows in any order: skip_padding.scan)
        batch = x.shape[0]
        outs = []
        pool = None if self.sequence_out else self.pool
        for i, (d, rev) in enumerate(zip(self._directions, self.reversed, strict=True)):
            if embedding is not None and tables is not None:
                source, w_hh, b_hh = tables[i]
                ids: torch.Tensor | None = x
            else:
                xs = F.embedding(x, embedding.weight) if embedding is not None else x
                (source, w_hh, b_hh), ids = self._projected(d, xs), None
            out, final = skip_padding.scan(self.kind, source, ids, lengths_np,
                                           d.initial_state(batch), w_hh, b_hh, self.relu,
                                           self.sequence_out, pool, reverse=rev)
            # the state stopped at each sequence's last step read (h0 if empty), or every
            # step's output (in place: a reversed scan writes at the positions it read), or
            # their pool
            outs.append(final[0] if out is None else out)
        out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
        return out, lengths

    def _projected(self, d: _Direction, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every step's input projection with b_ih (batch, steps, gates * size) of x (batch,
        steps, features), and the recurrent weights w_hh, b_hh as the scan reads them."""
        w_ih, w_hh, b_ih, b_hh = self._kernel_weights([d.w_ih, d.w_hh, d.b_ih, d.b_hh])
        source = torch.addmm(b_ih, x.reshape(x.shape[0] * x.shape[1], -1), w_ih.T)
        return source.view(x.shape[0], x.shape[1], -1), w_hh, b_hh

    def infer_carried(self, d: _Direction, x: torch.Tensor, state=None
                      ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """``_scan`` for inference (see ``skips_padding``): one direction over x (batch, steps,
        features) of full rows, from ``state`` (None: the learned initial state); (every
        step's output, final state). How a long document is read chunk after chunk."""
        batch, steps = x.shape[0], x.shape[1]
        state = d.initial_state(batch) if state is None else state
        source, w_hh, b_hh = self._projected(d, x)
        out, final = skip_padding.scan(self.kind, source, None, np.full(batch, steps), state,
                                       w_hh, b_hh, self.relu, keep_outputs=True)
        return cast(torch.Tensor, out), final

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
        for d, rev in zip(self._directions, self.reversed, strict=True):
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
                 weights: Iterable[Any] | None = None, *, direction: str = "forward",
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
                 direction: str = "forward", weights: Iterable[Any] | None = None, *,
                 recurrent_dropout: float = 0.0, fused: bool = True, pool: str | None = None):
        super().__init__()
        self._setup(size, activation, gate_activation, init, truncate_gradient, seq_output,
                    p_drop, direction, weights, recurrent_dropout, fused, pool)


class LstmRecurrent(_Recurrent):
    """LSTM without peepholes; learned initial hidden and cell states. Gates steeper by default."""

    kind = "lstm"

    def __init__(self, size: int = 256, activation: str = "tanh",
                 gate_activation: str = "steeper_sigmoid", init: str = "orthogonal",
                 truncate_gradient: int = -1, seq_output: bool = False, p_drop: float = 0.0,
                 weights: Iterable[Any] | None = None, *, direction: str = "forward",
                 recurrent_dropout: float = 0.0, fused: bool = True, pool: str | None = None):
        super().__init__()
        self._setup(size, activation, gate_activation, init, truncate_gradient, seq_output,
                    p_drop, direction, weights, recurrent_dropout, fused, pool)
