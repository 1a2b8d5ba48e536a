"""The recurrent core shared by SimpleRecurrent, GatedRecurrent and LstmRecurrent.

Batches are right-padded: each sequence's real steps come first, so a left-to-right scan never
sees padding before a real step. The backward direction reverses each sequence within its own
length, so the same holds. The state of a sequence is read at its own last real step. Hence
padding never changes a result, and the fused kernels (oneDNN / cuDNN, via ``torch._VF``) run on
the whole padded batch with no packing.

Steeper gates sigmoid(3.75 a) run in the fused kernel too: the gate rows of the weights and
biases are scaled by 3.75 before the call. ``scan_reference`` is the plain step-by-step loop that
the fused path is tested against; it also runs activations the kernels lack.

At inference on the CPU, ``scan_skip_padding`` steps only the sequences still running (a batch
sorted by length), so padding costs nothing; after an Embedding, each step's input projection is
a row of a (vocabulary x gates) table rather than a matmul.

The weights follow PyTorch's layout: ``w_ih`` is (gates * size, n_in), gates ordered r, z, n for
the GRU and i, f, g, o for the LSTM.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
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


def gate_scale_vector(kind: str, size: int, scale: float, device=None, dtype=None) -> torch.Tensor:
    """Per-row factor that turns sigmoid(a) gates into sigmoid(scale * a) gates."""
    ones = torch.ones(size, device=device, dtype=dtype)
    if kind == "gru":  # r, z are gates; n is the candidate
        parts = [ones * scale, ones * scale, ones]
    elif kind == "lstm":  # i, f are gates, g the candidate, o a gate
        parts = [ones * scale, ones * scale, ones, ones * scale]
    else:
        parts = [ones]
    return torch.cat(parts)


def scan_fused(kind: str, x: torch.Tensor, state: tuple[torch.Tensor, ...],
               weights: list[torch.Tensor], relu: bool = False,
               ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """All steps of one direction with PyTorch's fused kernel: (outputs, final state)."""
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
    final = (h, c) if kind == "lstm" else (h,)
    return torch.stack(outs, dim=1), final


def scan_skip_padding(kind: str, step_input: Callable[[int, int], torch.Tensor],
                      lengths: np.ndarray, width: int, state: tuple[torch.Tensor, ...],
                      w_hh: torch.Tensor, b_hh: torch.Tensor, relu: bool = False,
                      keep_outputs: bool = False):
    """Inference-only scan of a batch sorted by length, shortest first: step t updates just the
    rows longer than t (a suffix), so each state stops at its sequence's last step and padding
    is never computed. ``step_input(t, a)`` gives the input projections (with b_ih) of step t
    for rows a..; gates are plain sigmoids (steeper ones are folded into the weights).
    Returns (outputs (batch, width, size) zero at padding, or None; final states)."""
    h = state[0].clone()
    c = state[1].clone() if kind == "lstm" else None
    size = h.shape[1]
    out = h.new_zeros(h.shape[0], width, size) if keep_outputs else None
    first = np.searchsorted(lengths, np.arange(int(lengths.max(initial=0))), side="right")
    w = w_hh.T
    for t, a in enumerate(first.tolist()):
        hk, gi = h[a:], step_input(t, a)
        gh = torch.addmm(b_hh, hk, w)
        if kind == "gru":
            rz = torch.sigmoid(gi[:, :2 * size] + gh[:, :2 * size])
            r, z = rz[:, :size], rz[:, size:]
            n = torch.tanh(torch.addcmul(gi[:, 2 * size:], r, gh[:, 2 * size:]))
            hk = n + z * (hk - n)  # (1 - z) n + z h
        elif kind == "lstm":
            i, f, g, o = (gi + gh).chunk(4, dim=1)
            ck = torch.sigmoid(f) * c[a:] + torch.sigmoid(i) * torch.tanh(g)
            hk = torch.sigmoid(o) * torch.tanh(ck)
            c[a:] = ck
        else:
            hk = torch.relu(gi + gh) if relu else torch.tanh(gi + gh)
        h[a:] = hk
        if out is not None:
            out[a:, t] = hk
    return out, ((h, c) if kind == "lstm" else (h,))
