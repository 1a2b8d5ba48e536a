"""Documents longer than the batch budget: the scan in chunks carrying the state (training by
truncated BPTT, prediction streamed), checked against the whole-document forward pass and a
truncated-BPTT reference written out by hand."""

import numpy as np
import pytest
import torch

from passage.iterators import SortedPadded
from passage.layers import Dense, Embedding, GatedRecurrent, LstmRecurrent, SimpleRecurrent
from passage.long_documents import ChunkedStack
from passage.models import RNN
from passage.recurrent import pool_steps, scan_reference

RECURRENT = [SimpleRecurrent, GatedRecurrent, LstmRecurrent]


def _model(cls, direction="forward", pool=None, budget=7, depth=1, seed=0, **kw):
    rec = [cls(size=5, direction=direction, pool=pool, **kw)]
    rec = [cls(size=4, seq_output=True) for _ in range(depth - 1)] + rec
    model = RNN([Embedding(size=3, n_features=20), *rec, Dense(size=2, activation="softmax")],
                cost="cce", verbose=0, seed=seed,
                iterator=SortedPadded(size=4, max_tokens=budget))
    model.model.double()
    return model


def _doc(n, seed=1):
    return torch.from_numpy(np.random.default_rng(seed).integers(1, 20, (1, n)))


@pytest.mark.parametrize("cls", RECURRENT)
@pytest.mark.parametrize("direction", ["forward", "backward", "bi"])
@pytest.mark.parametrize("pool", [None, "max", "mean"])
def test_chunked_pooled_output_equals_the_whole_document(cls, direction, pool):
    model = _model(cls, direction, pool)
    x = _doc(30)
    model.model.train()
    with torch.no_grad():
        whole = model.model(x, torch.tensor([30]), head=False)
    for chunk in (1, 7, 29, 30, 64):
        chunked = ChunkedStack(model.layers, chunk).pooled(x)
        torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", RECURRENT)
def test_stacked_forward_layers_chunk_too(cls):
    model = _model(cls, depth=2, pool="mean")
    x = _doc(25)
    with torch.no_grad():
        whole = model.model(x, torch.tensor([25]), head=False)
    torch.testing.assert_close(ChunkedStack(model.layers, 6).pooled(x), whole, rtol=1e-12,
                               atol=1e-12)


def _reference_grads(model, x, y, chunk):
    """Truncated BPTT written out: the readable step loop over the whole document with the
    state detached every ``chunk`` steps (from the end for a backward direction), the pooling
    over all steps, the Dense output and the cost, back-propagated once."""
    emb, rec, dense = model.layers
    model.model.zero_grad(set_to_none=True)
    e = emb.weight[x]
    parts = []
    for d, rev in zip(rec.directions, rec.reversed, strict=True):
        seq = e.flip(1) if rev else e
        state = d.initial_state(1)
        out, _ = scan_reference(rec.kind, seq, state, [d.w_ih, d.w_hh, d.b_ih, d.b_hh],
                                rec.act, rec.gate_act, truncate=chunk)
        n = torch.tensor([x.shape[1]])
        parts.append(pool_steps(out, n, rec.pool) if rec.pool else out[:, -1])
    pooled = torch.cat(parts, dim=-1)
    logits = torch.nn.functional.linear(pooled, dense.w, dense.b)
    loss = torch.nn.functional.cross_entropy(logits, y)
    loss.backward()
    return loss.detach(), {k: p.grad.clone() for k, p in model.model.named_parameters()
                           if p.grad is not None}


@pytest.mark.parametrize("cls", RECURRENT)
@pytest.mark.parametrize("direction", ["forward", "backward", "bi"])
@pytest.mark.parametrize("pool", [None, "max", "mean"])
def test_chunked_gradients_equal_truncated_bptt_by_hand(cls, direction, pool):
    model = _model(cls, direction, pool)
    x, y = _doc(23), torch.tensor([1])
    ref_loss, ref = _reference_grads(model, x, y, chunk=5)
    model.model.zero_grad(set_to_none=True)
    model.model.train()
    loss = model._chunked_backward(ChunkedStack(model.layers, 5), x, torch.tensor([23]),
                                   torch.tensor([[0.0, 1.0]], dtype=torch.float64))
    torch.testing.assert_close(loss, ref_loss, rtol=1e-10, atol=1e-12)
    got = {k: p.grad for k, p in model.model.named_parameters() if p.grad is not None}
    for k, p in model.model.named_parameters():  # no gradient: none in the reference either
        zero = torch.zeros_like(p)
        torch.testing.assert_close(got.get(k, zero), ref.get(k, zero), rtol=1e-9, atol=1e-12,
                                   msg=k)
    assert any(g.abs().sum() > 0 for k, g in got.items() if "directions" in k)
    if pool is None:  # only the last chunk is back-propagated: h0 gets no gradient
        assert all("h0" not in k for k in got)


def test_chunked_dropout_masks_match_between_the_two_passes():
    """With dropout the chunks are run twice (values, then gradients): the same masks, so the
    gradients are those of the cost that was reported."""
    model = _model(GatedRecurrent, pool="mean", p_drop=0.5)
    model.model.train()
    x, y = _doc(20), torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    torch.manual_seed(3)
    chunker = ChunkedStack(model.layers, 6, lambda m: m.training)
    loss = model._chunked_backward(chunker, x, torch.tensor([20]), y)
    g = model.layers[1].directions[0].w_ih.grad.clone()
    # the same random state gives the same cost and gradients; the masks really vary
    model.model.zero_grad(set_to_none=True)
    torch.manual_seed(3)
    assert model._chunked_backward(chunker, x, torch.tensor([20]), y) == loss
    torch.testing.assert_close(model.layers[1].directions[0].w_ih.grad, g)
    torch.manual_seed(4)
    assert model._chunked_backward(chunker, x, torch.tensor([20]), y) != loss


def _scan_widths(monkeypatch):
    """A list recording the (batch, steps) of every recurrent scan the layers run."""
    from passage import recurrent_layers, skip_padding

    seen = []
    for module, name in ((recurrent_layers, "scan_fused"), (recurrent_layers, "scan_reference"),
                         (skip_padding, "scan")):
        real = getattr(module, name)

        def spy(*args, real=real, name=name, **kwargs):
            if name == "scan":  # (kind, source, ids, lengths, state, ...)
                seen.append((len(args[3]), args[2].shape[1] if args[2] is not None
                             else args[1].shape[1]))
            else:
                seen.append(tuple(args[1].shape[:2]))
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    return seen


def test_fit_trains_a_long_document_in_chunks_and_says_so(monkeypatch, capsys):
    rng = np.random.default_rng(0)
    X = [rng.integers(1, 20, n).tolist() for n in [5, 6, 7, 4, 300, 5, 180]]
    Y = [0, 1, 0, 1, 1, 0, 1]
    model = RNN([Embedding(size=4, n_features=20), GatedRecurrent(size=4),
                 Dense(size=1, activation="sigmoid")], cost="bce", verbose=1, seed=0,
                iterator=SortedPadded(size=4, max_tokens=40))
    seen = _scan_widths(monkeypatch)
    before = [p.detach().clone() for p in model.params]
    model.fit(X, Y, n_epochs=2)
    out = capsys.readouterr().out
    assert "2 training document(s) longer than max_tokens=40: trained in chunks" in out
    assert out.count("trained in chunks") == 1  # one line per fit
    assert [h["chunked_docs"] for h in model.history_] == [2, 2]
    assert model.last_epoch_["chunked_docs"] == 2
    assert max(b * t for b, t in seen) <= 40  # no scan ever held more than the budget
    assert all(not torch.equal(a, b) for a, b in zip(before, model.params, strict=True))


def test_a_stack_that_cannot_chunk_falls_back_to_truncate():
    X = [[1, 2, 3]] * 4 + [list(range(1, 19)) * 5]
    Y = [[0, 1, 0]] * 4 + [[1] * 90]
    model = RNN([Embedding(size=4, n_features=20), GatedRecurrent(size=4, seq_output=True),
                 Dense(size=2, activation="softmax")], cost="cce", verbose=0, seed=0,
                iterator=SortedPadded(size=4, max_tokens=30))
    with pytest.warns(UserWarning, match=r"1 training document\(s\) longer than max_tokens=30 "
                                         r"cannot be trained in chunks \(the model outputs a "
                                         r"sequence"):
        model.fit(X, Y)
    assert model.last_epoch_["chunked_docs"] == 0
    assert model.last_epoch_["tokens"] == 4 * 3 + 30


@pytest.mark.parametrize("direction,pool", [("forward", None), ("bi", "max"),
                                            ("backward", "mean")])
def test_predict_streams_a_long_document_and_matches_the_unchunked_result(
        monkeypatch, direction, pool):
    model = RNN([Embedding(size=4, n_features=50), GatedRecurrent(size=6, direction=direction,
                                                                   pool=pool),
                 Dense(size=3, activation="softmax")], cost="cce", verbose=0, seed=0)
    model.fitted_ = True
    X = [np.random.default_rng(i).integers(1, 50, n) for i, n in enumerate([3000, 40, 7])]
    whole = model.predict(X)  # the default budget: one piece each
    model.iterator.max_tokens = 100
    seen = _scan_widths(monkeypatch)
    streamed = model.predict(X)
    np.testing.assert_allclose(streamed, whole, rtol=1e-5, atol=1e-6)
    assert max(b * t for b, t in seen) <= 400  # batches under 4x the budget; chunks of 100
    assert max(t for b, t in seen if b == 1) <= 100


def test_a_streamed_prediction_reads_its_chunks_with_the_inference_scan(monkeypatch):
    """Predicting, each chunk runs the skip-padding scan (C when built), as short documents
    do, not the training kernel; its state carried from chunk to chunk as before."""
    from passage import recurrent_layers

    model = RNN([Embedding(size=4, n_features=50), GatedRecurrent(size=6, direction="bi",
                                                                   pool="max"),
                 Dense(size=2, activation="softmax")], cost="cce", verbose=0, seed=0,
                iterator=SortedPadded(max_tokens=50))
    model.fitted_ = True
    doc = np.random.default_rng(3).integers(1, 50, 700)
    with torch.no_grad():
        whole = model.model(torch.from_numpy(doc[None]), torch.tensor([700])).numpy()

    def training_kernel(*args, **kwargs):
        raise AssertionError("the training kernel ran at prediction")

    monkeypatch.setattr(recurrent_layers, "scan_fused", training_kernel)
    np.testing.assert_allclose(model.predict([doc]), whole, rtol=1e-5, atol=1e-6)


def test_predict_of_a_very_long_document_holds_a_bounded_number_of_activations(monkeypatch):
    model = RNN([Embedding(size=4, n_features=50), GatedRecurrent(size=4, pool="max"),
                 Dense(size=1, activation="sigmoid")], cost="bce", verbose=0, seed=0,
                iterator=SortedPadded(max_tokens=20_000))
    model.fitted_ = True
    doc = np.random.default_rng(0).integers(1, 50, 200_000)
    seen = _scan_widths(monkeypatch)
    p = model.predict([doc, doc[:30]])
    assert p.shape == (2, 1) and np.isfinite(p).all()
    assert len(seen) >= 10 and max(b * t for b, t in seen) <= 20_000


def test_why_not_names_what_cannot_be_chunked():
    bi_below = [Embedding(size=3, n_features=9), GatedRecurrent(size=3, direction="bi",
                                                                 seq_output=True),
                GatedRecurrent(size=3), Dense(size=1)]
    RNN(bi_below, cost="mse", verbose=0)
    assert "runs backward" in ChunkedStack.why_not(bi_below)
    ok = [Embedding(size=3, n_features=9), GatedRecurrent(size=3, direction="bi"), Dense(size=1)]
    assert ChunkedStack.why_not(ok) is None
    assert ChunkedStack.why_not([Embedding(size=3, n_features=9), Dense(size=1)])


def make_budget_model():  # module level: fit_distributed's workers import it from here
    return RNN([Embedding(size=4, n_features=20), GatedRecurrent(size=4),
                Dense(size=1, activation="sigmoid")], cost="bce", verbose=0, seed=0,
               iterator=SortedPadded(size=8, max_tokens=60))


def test_fit_distributed_works_with_the_budget_and_long_documents():
    """DDP runs the same forward in every process, so documents over the budget are cut
    (to max_tokens // workers, so a batch still gives each process one) rather than chunked."""
    from passage.distributed import fit_distributed

    rng = np.random.default_rng(0)
    X = [rng.integers(1, 20, n).tolist() for n in [5, 7, 6, 4] * 6 + [200, 150, 90, 70]]
    Y = [i % 2 for i in range(len(X))]
    from passage.training import DataParallel

    one = make_budget_model()
    parallel = DataParallel(object(), 0, 2, shard=None, agree=None)  # as fit_distributed passes
    with pytest.warns(UserWarning, match="cannot be trained in chunks"):
        Xc, _, lengths = one._long_documents(X, Y, np.array([len(x) for x in X]), parallel)
    assert lengths.max() == 30 and len(Xc) == len(X)
    model = fit_distributed(make_budget_model, X, Y, workers=2, timeout=60, n_epochs=1)
    assert model.fitted_ and np.isfinite(model.predict(X)).all()
    assert model.history_[0]["chunked_docs"] == 0
