"""passage.skip_padding: the inference scan (C, every build this CPU runs, and the Python loop)
against the readable step loop of passage.recurrent on the padded batch."""

import os

import numpy as np
import pytest
import torch

from passage import skip_padding
from passage.recurrent import GATES, last_step, pool_steps, reverse_padded, scan_reference

PATHS = [*skip_padding.compiled_variants(), "python"]


def _problem(kind, size, seed, n_vocab=30, lengths=(0, 1, 1, 4, 6, 9, 9, 13, 13, 13, 17)):
    g = torch.Generator().manual_seed(seed)
    gates = GATES[kind]
    table = torch.randn(n_vocab, gates * size, generator=g)
    w_hh = torch.randn(gates * size, size, generator=g) * (1.5 / size ** 0.5)
    b_hh = torch.randn(gates * size, generator=g) * 0.3
    lengths = np.array(lengths)
    width = int(lengths.max())
    ids = torch.randint(0, n_vocab, (len(lengths), width), generator=g)
    state = tuple(torch.randn(len(lengths), size, generator=g)
                  for _ in range(2 if kind == "lstm" else 1))
    return table, ids, lengths, state, w_hh, b_hh


def _reference(kind, table, ids, lengths, state, w_hh, b_hh, relu):
    """scan_reference on the padded batch, its input projections given as inputs with an
    identity input matrix."""
    x = table[ids]
    eye = torch.eye(x.shape[-1], dtype=x.dtype)
    act = torch.relu if relu else torch.tanh
    out, _ = scan_reference(kind, x, state, [eye, w_hh, torch.zeros_like(eye[0]), b_hh], act,
                            torch.sigmoid)
    return out


def _run(path, *args, **kwargs):
    if path == "python":
        real, skip_padding._compiled = skip_padding._compiled, None
        try:
            return skip_padding.scan(*args, **kwargs)
        finally:
            skip_padding._compiled = real
    return skip_padding.scan(*args, variant=path, **kwargs)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind,relu", [("gru", False), ("lstm", False), ("simple", False),
                                       ("simple", True)])
@pytest.mark.parametrize("size", [7, 20, 128])  # vector tails, one register block, several
def test_every_output_kind_matches_the_step_loop_on_the_padded_batch(path, kind, relu, size):
    table, ids, lengths, state, w_hh, b_hh = _problem(kind, size, seed=size)
    want = _reference(kind, table, ids, lengths, state, w_hh, b_hh, relu)
    lt = torch.from_numpy(lengths)
    real = (torch.arange(ids.shape[1])[None, :] < lt[:, None])[..., None]
    tol = dict(rtol=1e-4, atol=2e-5)

    out, final = _run(path, kind, table, ids, lengths, state, w_hh, b_hh, relu,
                      keep_outputs=True)
    torch.testing.assert_close(out, want * real, **tol)  # zero at padding
    torch.testing.assert_close(final[0], last_step(want, lt, state[0]), **tol)
    assert torch.equal(final[0][0], state[0][0])  # an empty row keeps its initial state
    for pool in ("max", "mean"):
        pooled, _ = _run(path, kind, table, ids, lengths, state, w_hh, b_hh, relu, pool=pool)
        torch.testing.assert_close(pooled, pool_steps(want, lt, pool), **tol)
        assert torch.all(pooled[0] == 0)
    # the same from every step's projection instead of a table
    out2, _ = _run(path, kind, table[ids], None, lengths, state, w_hh, b_hh, relu,
                   keep_outputs=True)
    torch.testing.assert_close(out2, out, rtol=0, atol=1e-6)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("reverse", [False, True])
def test_rows_in_any_order_of_length_give_each_row_what_it_gets_in_ascending_order(
        path, kind, reverse):
    """The front takes the rows in any order (the Python loop sorts them and puts them back):
    a shuffled batch gives each row the outputs, pool and final state of the sorted one."""
    table, ids, lengths, state, w_hh, b_hh = _problem(kind, 20, seed=11)
    shuffle = np.random.default_rng(0).permutation(len(lengths))
    rows = torch.from_numpy(shuffle)
    assert (np.diff(lengths[shuffle]) < 0).any()
    for source, given in ((table, ids), (table[ids], None)):  # a table, then projections
        for how in (dict(keep_outputs=True), dict(pool="max"), dict(pool="mean")):
            want, want_final = _run(path, kind, source, given, lengths, state, w_hh, b_hh,
                                    reverse=reverse, **how)
            got, got_final = _run(path, kind, source if given is not None else source[rows],
                                  given[rows] if given is not None else None, lengths[shuffle],
                                  tuple(s[rows] for s in state), w_hh, b_hh, reverse=reverse,
                                  **how)
            torch.testing.assert_close(got, want[rows], rtol=0, atol=1e-6)
            for g, w in zip(got_final, want_final, strict=True):
                torch.testing.assert_close(g, w[rows], rtol=0, atol=1e-6)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", ["gru", "lstm", "simple"])
@pytest.mark.parametrize("size", [7, 128])
def test_a_reversed_scan_is_the_step_loop_on_each_row_reversed_in_its_length(path, kind, size):
    """reverse=True (a backward direction) reads each row from its last real step back: the
    reference is the step loop on the batch reversed within each length, its outputs put back."""
    table, ids, lengths, state, w_hh, b_hh = _problem(kind, size, seed=size + 3)
    lt = torch.from_numpy(lengths)
    flipped = reverse_padded(ids, lt)
    want = reverse_padded(_reference(kind, table, flipped, lengths, state, w_hh, b_hh, False), lt)
    real = (torch.arange(ids.shape[1])[None, :] < lt[:, None])[..., None]
    tol = dict(rtol=1e-4, atol=2e-5)
    for ids_or_none, source in ((ids, table), (None, table[ids])):  # table, then projections
        out, final = _run(path, kind, source, ids_or_none, lengths, state, w_hh, b_hh,
                          keep_outputs=True, reverse=True)
        torch.testing.assert_close(out, want * real, **tol)
        # the state after the last step read: the first real position of each row
        first = want[:, 0]
        torch.testing.assert_close(final[0][1:], first[1:], **tol)
        assert torch.equal(final[0][0], state[0][0])  # the empty row
        pooled, _ = _run(path, kind, source, ids_or_none, lengths, state, w_hh, b_hh,
                         pool="max", reverse=True)
        torch.testing.assert_close(pooled, pool_steps(want, lt, "max"), **tol)


@pytest.mark.parametrize("path", skip_padding.compiled_variants())
@pytest.mark.parametrize("kind", ["gru", "lstm", "simple"])
@pytest.mark.parametrize("spread", ["mixed", "equal", "one long", "one row"])
def test_rows_in_lanes_compute_each_row_as_it_runs_alone(path, kind, spread):
    """The compiled scan deals rows to lanes (a lane runs its rows one after another, their
    matmuls grouped with other lanes'): every row, in whatever order and company, gets exactly
    (bit for bit) what it gets scanned on its own, and the step loop's answer."""
    rng = np.random.default_rng(7)
    lengths = {"mixed": rng.integers(0, 60, 45), "equal": np.full(18, 23),
               "one long": np.r_[rng.integers(1, 8, 9), 90], "one row": np.array([31])}[spread]
    table, ids, lengths, state, w_hh, b_hh = _problem(kind, 20, seed=5, lengths=lengths)
    order = rng.permutation(len(lengths))  # any order, not only shortest first
    ids, lengths, state = ids[order], lengths[order], tuple(s[order] for s in state)
    dense = table[ids]  # every step's projection instead of a table and ids
    for reverse, pool, source in ((False, "max", "table"), (True, "mean", "table"),
                                  (True, "max", "dense"), (False, "mean", "dense")):
        def scan(rows, keep=False, pool=pool, reverse=reverse, source=source):
            src, at = (table, ids[rows]) if source == "table" else (dense[rows], None)
            return _run(path, kind, src, at, lengths[rows], tuple(s[rows] for s in state),
                        w_hh, b_hh, keep_outputs=keep, pool=None if keep else pool,
                        reverse=reverse)
        every = slice(None)
        (out, final), (pooled, _) = scan(every, keep=True), scan(every)
        for i in range(len(lengths)):
            (out1, final1), (pooled1, _) = scan(slice(i, i + 1), keep=True), scan(slice(i, i + 1))
            assert torch.equal(out[i], out1[0]) and torch.equal(pooled[i], pooled1[0])
            assert all(torch.equal(a[i], b[0]) for a, b in zip(final, final1, strict=True))
    by_length = np.argsort(lengths, kind="stable")  # the reference wants them sorted
    want = _reference(kind, table, ids[by_length], lengths[by_length],
                      tuple(s[by_length] for s in state), w_hh, b_hh, False)
    out, _ = _run(path, kind, table, ids, lengths, state, w_hh, b_hh, keep_outputs=True)
    real = (torch.arange(ids.shape[1])[None, :] < torch.from_numpy(lengths)[:, None])[..., None]
    torch.testing.assert_close(out[by_length], want * real[by_length], rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("path", PATHS)
def test_inputs_are_left_as_they_were(path):
    table, ids, lengths, state, w_hh, b_hh = _problem("lstm", 20, seed=1)
    before = [t.clone() for t in (table, ids, *state, w_hh, b_hh)]
    _run(path, "lstm", table, ids, lengths, state, w_hh, b_hh, pool="max")
    for a, b in zip(before, (table, ids, *state, w_hh, b_hh), strict=True):
        assert torch.equal(a, b)


@pytest.mark.skipif(not skip_padding.compiled_variants(), reason="passage._scan is not built")
def test_the_compiled_scan_refuses_token_ids_outside_the_table():
    table, ids, lengths, state, w_hh, b_hh = _problem("gru", 8, seed=2)
    ids[3, 0] = len(table)
    with pytest.raises(IndexError, match=r"token ids must be in \[0, 30\)"):
        skip_padding.scan("gru", table, ids, lengths, state, w_hh, b_hh)


def test_other_dtypes_run_the_python_loop():
    table, ids, lengths, state, w_hh, b_hh = _problem("gru", 8, seed=3)
    as64 = [t.double() for t in (table, w_hh, b_hh)]
    out, _ = skip_padding.scan("gru", as64[0], ids, lengths, tuple(s.double() for s in state),
                               as64[1], as64[2], pool="mean")
    assert out.dtype == torch.float64
    want = _reference("gru", as64[0], ids, lengths, tuple(s.double() for s in state), as64[1],
                      as64[2], False)
    torch.testing.assert_close(out, pool_steps(want, torch.from_numpy(lengths), "mean"))


def test_the_best_build_is_named_first(compiled):
    runs = skip_padding.compiled_variants()
    assert runs[-1] == "plain" and set(runs) <= {"avx512", "avx2", "plain"}
    # the order is the CPU's: AVX-512 only where it has it
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    if " avx512f" in flags:
        assert runs[0] == "avx512"
    elif " avx2" in flags and " fma" in flags:
        assert runs[0] == "avx2"
