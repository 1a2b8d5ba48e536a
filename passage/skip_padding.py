"""Inference scans that skip padding: one direction of a recurrent layer over a batch of rows of
any lengths, where each row's state stops at its sequence's last step and padding is never
computed (the C scan deals the rows to lanes, longest first; the loop of PyTorch ops sorts them
shortest first, and step t updates just the rows longer than t).

``scan`` is the front the layers call. It runs ``passage/_scan.c`` (every step in C, the GIL
released, one build per instruction set) for float32 on the CPU when the extension is built, and
``scan_steps`` (a loop of PyTorch ops, the reference the C scan is tested against) otherwise. A
step's input projection comes from ``source``: a table (vocabulary, gates * size) looked up by
the token ids (after an Embedding), or every step's projection (batch, width, gates * size).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import numpy as np
import torch

from passage.recurrent import pool_steps, reverse_padded

try:
    from passage import _scan as _compiled  # type: ignore[attr-defined]
except ImportError:  # installed without a C compiler: the steps run as PyTorch ops
    _compiled = None

POOL_INLINE_BYTES = 8 << 20  # the Python loop pools as it goes past this many bytes of steps
_KINDS = {"gru": "g", "lstm": "l"}
_POOLS = {None: 0, "max": ord("m"), "mean": ord("a")}


def compiled_variants() -> tuple[str, ...]:
    """The builds of ``passage/_scan.c`` this CPU runs, best first ('avx512', 'avx2',
    'plain'); empty without the extension."""
    return tuple(_compiled.RUNS) if _compiled is not None else ()


def scan(kind: str, source: torch.Tensor, ids: torch.Tensor | None, lengths: np.ndarray,
         state: tuple[torch.Tensor, ...], w_hh: torch.Tensor, b_hh: torch.Tensor,
         relu: bool = False, keep_outputs: bool = False, pool: str | None = None,
         reverse: bool = False, variant: str | None = None
         ) -> tuple[torch.Tensor | None, tuple[torch.Tensor, ...]]:
    """One direction over a batch of rows of any lengths (``lengths``, a numpy array).

    Args:
        kind: 'gru', 'lstm' or 'simple' (tanh, or relu with ``relu``); gates are plain
            sigmoids (steeper ones folded into the weights).
        source, ids: the input projections with b_ih: a table (vocabulary, gates * size) and
            the token ids (batch, width), or every step's (batch, width, gates * size) and None.
        state: the initial states, each (batch, size).
        w_hh, b_hh: the recurrent weights (gates * size, size) and bias (gates * size,).
        keep_outputs: return every step's output (batch, width, size), zero at padding.
        pool: 'max' or 'mean': return the outputs pooled over each row's steps (batch, size),
            zeros for an empty row.
        reverse: read each row from its last real step back to its first (a backward
            direction); the outputs kept are at the positions read, as the input's.
        variant: a build of the C scan to use (tests); None for the best one.

    Returns:
        (outputs or pooled outputs or None, final states (each row's at its last step)).
    """
    width = ids.shape[1] if ids is not None else source.shape[1]
    tensors = [source, state[0], w_hh, b_hh, *state[1:]]
    if _compiled is not None and all(t.dtype == torch.float32 and t.device.type == "cpu"
                                     for t in tensors):
        return _scan_compiled(kind, source, ids, lengths, width, state, w_hh, b_hh, relu,
                              keep_outputs, pool, reverse, variant)  # (rows in any order)
    lengths = np.asarray(lengths)
    if (np.diff(lengths) < 0).any():  # the loop needs the rows shortest first: sorted, then back
        order = np.argsort(lengths, kind="stable")
        rows, back = torch.from_numpy(order), torch.from_numpy(np.argsort(order))
        if ids is not None:
            ids = ids[rows]
        else:
            source = source[rows]
        out, final = scan(kind, source, ids, lengths[order], tuple(s[rows] for s in state),
                          w_hh, b_hh, relu, keep_outputs, pool, reverse)
        return (None if out is None else out[back]), tuple(f[back] for f in final)
    if reverse:  # the steps in reading order; the outputs put back at the end
        lengths_t = torch.from_numpy(np.asarray(lengths, dtype=np.int64))
        if ids is not None:
            ids = reverse_padded(ids, lengths_t)
        else:
            source = reverse_padded(source, lengths_t)
        out, final = scan(kind, source, ids, lengths, state, w_hh, b_hh, relu, keep_outputs,
                          pool)
        if keep_outputs and pool is None and out is not None:
            out = reverse_padded(out, lengths_t)
        return out, final
    if ids is not None:
        def step_input(t, a):
            return source.index_select(0, ids[a:, t])
    else:
        def step_input(t, a):
            return source[a:, t]
    batch, size = state[0].shape
    inline = pool is not None and batch * width * size * 4 > POOL_INLINE_BYTES
    out, final = scan_steps(kind, step_input, lengths, width, state, w_hh, b_hh, relu,
                            keep_outputs or pool is not None, pool if inline else None)
    if pool is not None and not inline:
        out = pool_steps(cast(torch.Tensor, out),  # (kept: keep_outputs was set)
                         torch.from_numpy(np.asarray(lengths)), pool)
    return out, final


def _scan_compiled(kind, source, ids, lengths, width, state, w_hh, b_hh, relu, keep_outputs,
                   pool, reverse, variant):
    batch, size = state[0].shape
    h = state[0].clone(memory_format=torch.contiguous_format)  # one copy, the kernel's to write
    c = state[1].clone(memory_format=torch.contiguous_format) if kind == "lstm" else None
    out = h.new_zeros(batch, width, size) if keep_outputs and pool is None else None
    pooled = h.new_empty(batch, size) if pool is not None else None
    lengths_t = torch.from_numpy(np.minimum(np.asarray(lengths, dtype=np.int64), width))
    source = source.contiguous()
    ids = ids.to(torch.int64).contiguous() if ids is not None else None
    if ids is not None and ids.numel() and not 0 <= int(ids.min()) <= int(ids.max()) < len(source):
        raise IndexError(f"token ids must be in [0, {len(source)}); got {int(ids.min())} .. "
                         f"{int(ids.max())}")
    wt, b = w_hh.T.contiguous(), b_hh.contiguous()
    code = _KINDS.get(kind, "r" if relu else "t")
    which = -1 if variant is None else _compiled.VARIANTS.index(variant)
    _compiled.scan(source.data_ptr(), ids.data_ptr() if ids is not None else 0,
                   lengths_t.data_ptr(), wt.data_ptr(), b.data_ptr(), h.data_ptr(),
                   c.data_ptr() if c is not None else 0, out.data_ptr() if out is not None else 0,
                   pooled.data_ptr() if pooled is not None else 0, batch, width, size, ord(code),
                   _POOLS[pool], reverse, which)
    final = (h, c) if kind == "lstm" else (h,)
    return (pooled if pool is not None else out), final


def scan_steps(kind: str, step_input: Callable[[int, int], torch.Tensor],
               lengths: np.ndarray, width: int, state: tuple[torch.Tensor, ...],
               w_hh: torch.Tensor, b_hh: torch.Tensor, relu: bool = False,
               keep_outputs: bool = False, pool: str | None = None
               ) -> tuple[torch.Tensor | None, tuple[torch.Tensor, ...]]:
    """The scan as a loop of PyTorch ops. ``step_input(t, a)`` gives the input projections
    (with b_ih) of step t for rows a.. . Returns (outputs (batch, width, size) zero at padding,
    or None; final states). With ``pool`` ('max' or 'mean') the outputs are pooled as the scan
    goes, (batch, size) as ``pool_steps`` gives, and never kept: memory of one step, whatever
    the length."""
    h = state[0].clone()
    c = state[1].clone() if kind == "lstm" else None
    size = h.shape[1]
    out = h.new_zeros(h.shape[0], width, size) if keep_outputs and pool is None else None
    pooled = None
    if pool is not None:
        pooled = h.new_full(h.shape, -torch.inf) if pool == "max" else h.new_zeros(h.shape)
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
            assert c is not None
            i, f, g, o = (gi + gh).chunk(4, dim=1)
            ck = torch.sigmoid(f) * c[a:] + torch.sigmoid(i) * torch.tanh(g)
            hk = torch.sigmoid(o) * torch.tanh(ck)
            c[a:] = ck
        else:
            hk = torch.relu(gi + gh) if relu else torch.tanh(gi + gh)
        h[a:] = hk
        if out is not None:
            out[a:, t] = hk
        elif pooled is not None:
            pooled[a:] = torch.maximum(pooled[a:], hk) if pool == "max" else pooled[a:] + hk
    if pooled is not None:
        if pool == "max":  # an empty sequence pools to zeros
            out = torch.where(torch.isfinite(pooled), pooled, torch.zeros_like(pooled))
        else:
            n = torch.from_numpy(np.maximum(lengths, 1)).to(pooled.device, pooled.dtype)
            out = pooled / n[:, None]
    return out, ((h, cast(torch.Tensor, c)) if kind == "lstm" else (h,))
