"""The recurrent core shared by SimpleRecurrent, GatedRecurrent and LstmRecurrent.

Batches are right-padded: each sequence's real steps come first, so a left-to-right scan never
sees padding before a real step. The backward direction reverses each sequence within its own
length, so the same holds. The state of a sequence is read at its own last real step. Hence
padding never changes a result, and the fused kernels (oneDNN / cuDNN, via ``torch._VF``) run on
the whole padded batch with no packing.

Steeper gates sigmoid(3.75 a) run in the fused kernel too: the gate rows of the weights and
biases are scaled by 3.75 before the call. ``scan_reference`` is the plain step-by-step loop that
the fused path is tested against; it also runs activations the kernels lack.

GRU training on the CPU runs ``GRUScan`` instead (bfloat16 always, float32 when the C extension
``passage/_gru.c`` is built): one matmul and one fused elementwise call per step, and the recurrent
weight gradient as one GEMM over all steps.

At inference on the CPU, ``passage.skip_padding`` steps only the sequences still running (rows
in any order of length), so padding costs nothing; after an Embedding, each step's input
projection is a row of a (vocabulary x gates) table rather than a matmul.

The weights follow PyTorch's layout: ``w_ih`` is (gates * size, n_in), gates ordered r, z, n for
the GRU and i, f, g, o for the LSTM.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

GATES = {"simple": 1, "gru": 3, "lstm": 4}


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of ``x`` (batch, time, ...) within its length; padding stays put."""
    t = torch.arange(x.shape[1], device=x.device)
    idx = lengths.to(x.device)[:, None] - 1 - t[None, :]
    idx = torch.where(idx >= 0, idx, t[None, :])
    return x[torch.arange(x.shape[0], device=x.device)[:, None], idx]


def last_step(out: torch.Tensor, lengths: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """Each sequence's output at its last real step; the initial state for empty sequences."""
    lengths = lengths.to(out.device)
    idx = (lengths - 1).clamp(min=0)
    last = out[torch.arange(out.shape[0], device=out.device), idx]
    return torch.where((lengths > 0)[:, None], last, h0.expand_as(last))


def pool_steps(out: torch.Tensor, lengths: torch.Tensor, how: str) -> torch.Tensor:
    """Max or mean of each sequence's outputs over its real steps (zeros for empty ones):
    a summary of the whole text rather than the state after its last word."""
    real = (torch.arange(out.shape[1], device=out.device)[None, :]
            < lengths.to(out.device)[:, None])[..., None]
    if how == "max":
        pooled = out.masked_fill(~real, -torch.inf).amax(dim=1)
        return torch.where(torch.isfinite(pooled), pooled, torch.zeros_like(pooled))
    return (out * real).sum(1) / lengths.to(out.device).clamp(min=1)[:, None].to(out.dtype)


def gate_scale_vector(kind: str, size: int, scale: float,
                      device: torch.device | str | int | None = None,
                      dtype: torch.dtype | None = None) -> torch.Tensor:
    """Per-row factor that turns sigmoid(a) gates into sigmoid(scale * a) gates."""
    ones = torch.ones(size, device=device, dtype=dtype)
    if kind == "gru":  # r, z are gates; n is the candidate
        parts = [ones * scale, ones * scale, ones]
    elif kind == "lstm":  # i, f are gates, g the candidate, o a gate
        parts = [ones * scale, ones * scale, ones, ones * scale]
    else:
        parts = [ones]
    return torch.cat(parts)


try:
    from passage import _gru as _fused_step  # type: ignore[attr-defined]
except ImportError:  # installed without a C compiler: the steps run as PyTorch ops
    _fused_step = None

FUSED_STEP_DTYPES = (torch.float32, torch.bfloat16)  # what passage/_gru.c reads and writes


class GRUScan(torch.autograd.Function):
    """The GRU recurrence over all steps, with a hand-written backward pass.

    ``apply(gi, h0, w_hh, b_hh)``: gi (time, batch, 3 * size) holds every step's input projection
    (with b_ih); returns the outputs (time, batch, size). Used for GRU training on the CPU (the
    dtypes in ``HAND_WRITTEN_GRU_DTYPES``), where PyTorch's GRU backward computes the recurrent
    weight gradient as one small matmul per step: here it is one GEMM over all steps. Each step,
    forward or backward, is one matmul and one call of ``passage/_gru.c``, which does the step's
    elementwise math in one pass (about six PyTorch ops otherwise, still used without the
    extension and for float64, which the tests use). No double backward (``create_graph=True``)
    and no ``torch.compile`` tracing: remove the dtype from ``HAND_WRITTEN_GRU_DTYPES`` to train
    on PyTorch's kernel for those.
    """

    @staticmethod
    def forward(ctx: Any, gi: torch.Tensor, h0: torch.Tensor, w_hh: torch.Tensor,
                b_hh: torch.Tensor) -> torch.Tensor:
        ctx.fused = (_fused_step is not None and gi.device.type == "cpu"
                     and gi.dtype in FUSED_STEP_DTYPES and gi.numel() > 0)
        hs, gh_n, rz, n = (_forward_fused if ctx.fused else _forward_ops)(gi, h0, w_hh, b_hh)
        ctx.save_for_backward(hs, gh_n, rz, n, w_hh)
        return hs[1:]

    @staticmethod
    @torch.autograd.function.once_differentiable  # no double backward: an error, not a wrong one
    def backward(ctx: Any, d_out: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hs, gh_n, rz, n, w_hh = ctx.saved_tensors
        d_out = d_out.to(n.dtype).contiguous()
        step_back = _backward_fused if ctx.fused else _backward_ops
        d_gh, d_gi_n, dh = step_back(d_out, hs, gh_n, rz, n, w_hh)
        size = n.shape[2]
        flat = d_gh.view(-1, 3 * size)
        d_w = flat.t() @ hs[:-1].reshape(-1, size)  # one GEMM for the whole sequence
        d_b = flat.sum(0)
        d_gi = d_gh  # the same as d_gh for r and z: reuse its memory
        d_gi[..., 2 * size:] = d_gi_n
        return d_gi, dh, d_w, d_b


def _forward_ops(gi, h0, w_hh, b_hh):
    """GRUScan's forward as PyTorch ops: (hs, gh_n, rz, n); hs[t] is the state before step t."""
    steps, batch, three = gi.shape
    size = three // 3
    hs = gi.new_empty(steps + 1, batch, size)
    hs[0] = h0
    gh = gi.new_empty(steps, batch, three)  # h @ w_hh.T + b_hh of every step
    rz = gi.new_empty(steps, batch, 2 * size)  # the r and z gates
    n = gi.new_empty(steps, batch, size)  # the candidate state
    w = w_hh.t().contiguous()
    h_, gh_, rz_, n_ = hs.unbind(), gh.unbind(), rz.unbind(), n.unbind()  # per-step views
    gi_rz, gi_n = gi[..., :2 * size].unbind(), gi[..., 2 * size:].unbind()
    gh_rz, gh_n = gh[..., :2 * size].unbind(), gh[..., 2 * size:].unbind()
    r, z = rz[..., :size].unbind(), rz[..., size:].unbind()
    for t in range(steps):
        torch.addmm(b_hh, h_[t], w, out=gh_[t])
        torch.add(gi_rz[t], gh_rz[t], out=rz_[t]).sigmoid_()
        torch.addcmul(gi_n[t], r[t], gh_n[t], out=n_[t]).tanh_()
        torch.lerp(n_[t], h_[t], z[t], out=h_[t + 1])  # (1 - z) n + z h
    return hs, gh[..., 2 * size:], rz, n


def _forward_fused(gi, h0, w_hh, b_hh):
    """``_forward_ops`` with each step's elementwise math in one call of passage/_gru.c."""
    steps, batch, three = gi.shape
    size = three // 3
    gi = gi.contiguous()
    hs = gi.new_empty(steps + 1, batch, size)
    hs[0] = h0
    rz = gi.new_empty(steps, batch, 2 * size)
    n, gh_n = gi.new_empty(2, steps, batch, size)
    gh = gi.new_empty(batch, three)  # this step's h @ w_hh.T + b_hh
    w, b = w_hh.t().contiguous(), b_hh.contiguous()
    item, bf16 = gi.element_size(), gi.dtype == torch.bfloat16
    one, two, three_ = batch * size * item, 2 * batch * size * item, 3 * batch * size * item
    p_gi, p_hs, p_rz, p_n, p_ghn, p_gh = (x.data_ptr() for x in (gi, hs, rz, n, gh_n, gh))
    h_ = hs.unbind()
    for t in range(steps):
        torch.addmm(b, h_[t], w, out=gh)
        _fused_step.forward(p_gi + t * three_, p_gh, p_hs + t * one, p_rz + t * two,
                            p_n + t * one, p_ghn + t * one, p_hs + (t + 1) * one, batch, size,
                            bf16)
    return hs, gh_n, rz, n


def _backward_ops(d_out, hs, gh_n, rz, n, w_hh):
    """GRUScan's backward steps as PyTorch ops: (d_gh, d_gi_n, dh0), the gradients of every
    step's gh (whose r and z parts are also gi's) and of gi's n part, and of the initial state."""
    steps, batch, size = n.shape
    r, z = rz[..., :size], rz[..., size:]
    # d(pre-activation) = dh * m, with m independent of dh: computed for all steps at once
    d_n = (1 - z) * (1 - n * n)  # through n = tanh(a_n)
    m = torch.stack([d_n * r * gh_n * (1 - r),  # r gate
                     (hs[:-1] - n) * z * (1 - z),  # z gate
                     d_n * r], dim=2)  # gh_n, the recurrent part of a_n
    d_gh = torch.empty_like(m)
    dhs = torch.empty_like(n)  # the gradient reaching each step's output
    dh = torch.zeros_like(hs[0])
    w = w_hh.contiguous()
    dhs_, d_gh_, m_, z_ = dhs.unbind(), d_gh.view(steps, batch, 3 * size).unbind(), \
        m.unbind(), z.unbind()
    for t, d_out_t in zip(range(steps - 1, -1, -1), reversed(d_out.unbind()), strict=True):
        torch.add(dh, d_out_t, out=dhs_[t])
        torch.mul(dhs_[t][:, None, :], m_[t], out=d_gh[t])
        dh = torch.addmm(dhs_[t] * z_[t], d_gh_[t], w)
    del m
    return d_gh.view(steps, batch, 3 * size), dhs * d_n, dh


def _backward_fused(d_out, hs, gh_n, rz, n, w_hh):
    """``_backward_ops`` with each step's elementwise math in one call of passage/_gru.c."""
    steps, batch, size = n.shape
    d_gh = n.new_empty(steps, batch, 3 * size)
    d_gi_n = torch.empty_like(n)
    dh, dhz = torch.zeros_like(hs[0]), torch.empty_like(hs[0])
    w = w_hh.contiguous()
    item, bf16 = n.element_size(), n.dtype == torch.bfloat16
    one, two, three = batch * size * item, 2 * batch * size * item, 3 * batch * size * item
    p_d, p_rz, p_n, p_ghn, p_hs, p_dgin, p_dgh = (x.data_ptr() for x in (
        d_out, rz, n, gh_n, hs, d_gi_n, d_gh))
    p_dh, p_dhz = dh.data_ptr(), dhz.data_ptr()
    d_gh_ = d_gh.unbind()
    for t in range(steps - 1, -1, -1):
        _fused_step.backward(p_d + t * one, p_dh, p_rz + t * two, p_n + t * one,
                             p_ghn + t * one, p_hs + t * one, p_dgin + t * one, p_dgh + t * three,
                             p_dhz, batch, size, bf16)
        torch.addmm(dhz, d_gh_[t], w, out=dh)  # dh is read by the call above before this
    return d_gh, d_gi_n, dh


def scan_gru(x: torch.Tensor, h0: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
    """GRU outputs (batch, time, size) of x (batch, time, n_in) through ``GRUScan``."""
    w_ih, w_hh, b_ih, b_hh = weights
    gi = torch.nn.functional.linear(x.transpose(0, 1), w_ih, b_ih).contiguous()
    return GRUScan.apply(gi, h0, w_hh, b_hh).transpose(0, 1)


# where GRUScan was measured faster than PyTorch's kernel for CPU training: bfloat16 always,
# float32 with the fused steps of passage/_gru.c (1.5x; without them it is not faster)
HAND_WRITTEN_GRU_DTYPES = {torch.bfloat16} | ({torch.float32} if _fused_step else set())


def _hand_written_gru(x: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype in HAND_WRITTEN_GRU_DTYPES
            and torch.is_grad_enabled())


def scan_fused(kind: str, x: torch.Tensor, state: tuple[torch.Tensor, ...],
               weights: list[torch.Tensor], relu: bool = False,
               ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """All steps of one direction with a fused kernel: (outputs, final state). PyTorch's, except
    GRU training on the CPU in ``HAND_WRITTEN_GRU_DTYPES``, which runs ``GRUScan``."""
    if kind == "gru" and _hand_written_gru(x) and x.shape[1] > 0:
        out = scan_gru(x, state[0], weights)
        return out, (out[:, -1],)
    hx = tuple(s.unsqueeze(0).contiguous() for s in state)
    args = (True, 1, 0.0, False, False, True)  # biases, layers, dropout, train, bidir, batch_first
    if kind == "lstm":
        out, h, c = torch._VF.lstm(x, hx, weights, *args)
        return out, (h[0], c[0])
    if kind == "gru":
        out, h = torch._VF.gru(x, hx[0], weights, *args)
    else:
        rnn = torch._VF.rnn_relu if relu else torch._VF.rnn_tanh
        out, h = rnn(x, hx[0], weights, *args)
    return out, (h[0],)


def scan_reference(kind: str, x: torch.Tensor, state: tuple[torch.Tensor, ...],
                   weights: list[torch.Tensor], activation: Callable, gate_activation: Callable,
                   truncate: int = -1) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """The readable step-by-step loop: (outputs, final state); ``truncate`` > 0 cuts gradients
    every that many steps."""
    w_ih, w_hh, b_ih, b_hh = weights
    xw = x @ w_ih.T + b_ih  # the input projection of every step in one GEMM
    h = state[0]
    c = state[1] if kind == "lstm" else None
    outs = []
    for t in range(x.shape[1]):
        if truncate > 0 and t > 0 and t % truncate == 0:
            h = h.detach()
            c = c.detach() if c is not None else None
        hw = h @ w_hh.T + b_hh
        if kind == "gru":
            xr, xz, xn = xw[:, t].chunk(3, dim=-1)
            hr, hz, hn = hw.chunk(3, dim=-1)
            r, z = gate_activation(xr + hr), gate_activation(xz + hz)
            h = (1 - z) * activation(xn + r * hn) + z * h
        elif kind == "lstm":
            i, f, g, o = (xw[:, t] + hw).chunk(4, dim=-1)
            c = gate_activation(f) * c + gate_activation(i) * activation(g)
            h = gate_activation(o) * activation(c)
        else:
            h = activation(xw[:, t] + hw)
        outs.append(h)
    if kind == "lstm":
        assert c is not None  # state[1], the cell
        return torch.stack(outs, dim=1), (h, c)
    return torch.stack(outs, dim=1), (h,)
