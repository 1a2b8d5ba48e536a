"""The linear n-gram term (passage.wide): its features against a plain-Python reference,
its gradients against finite differences, and the model paths that carry it (training,
predict, long documents in chunks, save/load, trace)."""

import math

import numpy as np
import pytest
import torch

from passage.io import load, save
from passage.iterators import SortedPadded
from passage.layers import Dense, Embedding, GatedRecurrent
from passage.models import RNN
from passage.wide import HASH_MULTIPLIER, NgramLinear, fit_term, term_logits


def ngram_rows(term: NgramLinear, doc: list[int]) -> list[int]:
    """Every unigram and hashed bigram row of a document, with Python ints."""
    return list(doc) + [(a * HASH_MULTIPLIER + b) % term.buckets + term.n_features
                        for a, b in zip(doc[:-1], doc[1:], strict=True)]


def reference(term: NgramLinear, docs: list[list[int]]) -> np.ndarray:
    """The term written out: every row's weights times its idf, summed, divided by the root
    of the summed squared idfs."""
    w = term.weight.detach().double().numpy()
    idf = term.idf.double().numpy()
    out = np.zeros((len(docs), term.n_out))
    for i, doc in enumerate(docs):
        rows = ngram_rows(term, doc)
        if rows:
            out[i] = (w[rows] * idf[rows, None]).sum(0) / math.sqrt((idf[rows] ** 2).sum())
    return out


def padded(docs, pad=0):
    width = max(1, max(len(d) for d in docs))
    x = torch.full((len(docs), width), pad, dtype=torch.long)
    for i, d in enumerate(docs):
        x[i, :len(d)] = torch.tensor(d, dtype=torch.long)
    return x, torch.tensor([len(d) for d in docs])


def random_term(seed=0, n_features=30, n_out=3, buckets=17):
    term = NgramLinear(n_features, n_out, buckets=buckets)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        term.weight.copy_(torch.randn(term.weight.shape, generator=gen))
        term.idf.copy_(torch.rand(term.idf.shape, generator=gen) * 3 + 1)
    return term


def test_the_term_equals_the_python_reference_whatever_the_padding():
    term = random_term()
    docs = [[3, 4, 5, 3, 4], [7], [], [29, 29, 1, 2]]
    for pad in (0, 5, 29):  # what sits past a document's length never counts
        x, lengths = padded(docs, pad)
        np.testing.assert_allclose(term(x, lengths).detach().numpy(), reference(term, docs),
                                   rtol=1e-5, atol=1e-6)


def test_bigram_order_matters_and_rows_stay_in_range():
    term = random_term(buckets=1 << 10)
    x, lengths = padded([[3, 4], [4, 3]])
    a, b = term(x, lengths).detach().numpy()
    assert not np.allclose(a, b)  # same words, other order: another bigram
    from passage.wide import bigram_rows
    ids = torch.randint(0, 30, (1000,))
    rows = bigram_rows(ids, ids.flip(0), 30, 1 << 10)
    assert int(rows.min()) >= 30 and int(rows.max()) < 30 + (1 << 10)


def test_gradients_match_finite_differences():
    term = random_term(n_out=2).double()
    x, lengths = padded([[1, 2, 3, 2], [5, 6]])
    torch.autograd.gradcheck(lambda w: _with_weight(term, w, x, lengths),
                             (term.weight.detach().clone().requires_grad_(),))


def _with_weight(term, w, x, lengths):
    saved = term.weight
    try:
        del term.weight
        term.weight = w
        return term(x, lengths)
    finally:
        term.weight = saved


def test_start_is_near_zero_reproducible_and_not_all_zeros():
    a, b = NgramLinear(100, 2), NgramLinear(100, 2)
    torch.manual_seed(5)
    c = NgramLinear(100, 2)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.weight, c.weight)
    assert 0 < float(a.weight.detach().abs().max()) < 1e-3


def _model(n_features, n_out, activation, cost, buckets=64, **kw):
    return RNN([Embedding(4, n_features), GatedRecurrent(4), Dense(n_out, activation)], cost,
               verbose=0, seed=0, wide=NgramLinear(n_features, n_out, buckets=buckets), **kw)


def _docs(n=120, n_features=12, seed=0):
    rng = np.random.default_rng(seed)
    docs = [rng.integers(3, n_features, int(rng.integers(1, 9))).tolist() for _ in range(n)]
    return docs


def test_fit_term_sets_the_idf_of_the_training_documents():
    docs = _docs()
    model = _model(12, 1, "sigmoid", "bce")
    y = np.array([int(3 in d) for d in docs])
    fit_term(model, docs, y, strengths=(1.0,), max_iter=5)
    df = np.zeros(12 + 64)
    for d in docs:
        for r in set(ngram_rows(model.wide, d)):
            df[r] += 1
    expected = np.log((1 + len(docs)) / (1 + df)) + 1  # scikit-learn's smooth idf
    np.testing.assert_allclose(model.wide.idf.numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("n_out", [1, 3])
def test_fit_term_is_the_logistic_regression_scikit_learn_fits(n_out):
    """The same features and C: L-BFGS here and scikit-learn's solver reach one optimum."""
    sklearn = pytest.importorskip("sklearn.linear_model")
    docs = _docs(150)
    y = np.array([(d[0] % 3 if n_out == 3 else int(d[0] % 2 == 0)) for d in docs])
    model = _model(12, n_out, "softmax" if n_out == 3 else "sigmoid",
                   "cce" if n_out == 3 else "bce")
    report = fit_term(model, docs, y, strengths=(3.0,), max_iter=500)
    ours = term_logits(model, docs, report["bias"])
    # the features as a dense matrix, from the reference (idf from fit_term)
    features = np.zeros((len(docs), 12 + 64))
    idf = model.wide.idf.double().numpy()
    for i, d in enumerate(docs):
        for r in ngram_rows(model.wide, d):
            features[i, r] += idf[r]
        features[i] /= math.sqrt(sum(idf[r] ** 2 for r in ngram_rows(model.wide, d)))
    lr = sklearn.LogisticRegression(C=3.0, tol=1e-10, max_iter=5000).fit(features, y)
    theirs = lr.decision_function(features)
    if n_out == 1:
        np.testing.assert_allclose(ours[:, 0], theirs, atol=2e-3)
    else:  # softmax logits are defined up to a constant per row
        np.testing.assert_allclose(ours - ours.mean(1, keepdims=True),
                                   theirs - theirs.mean(1, keepdims=True), atol=2e-3)


def test_fit_term_keeps_the_strength_that_validates_best():
    docs = _docs(200, seed=1)
    y = np.array([int(d[0] > 7) for d in docs])
    model = _model(12, 1, "sigmoid", "bce")
    report = fit_term(model, docs[:150], y[:150], (docs[150:], y[150:]), "accuracy",
                      strengths=(0.01, 100.0))
    assert set(report["scores"]) == {0.01, 100.0}
    assert report["scores"][report["C"]] == max(report["scores"].values())


def test_blend_fits_weights_no_worse_than_either_part_and_folds_them_in():
    from passage.recipe import TextModelOptions, fit_text_model

    rng = np.random.default_rng(0)
    words = {0: ["bad", "dull", "awful"], 1: ["good", "fun", "great"]}
    texts, labels = [], []
    for i in range(300):
        k = i % 2
        w = list(rng.choice(["the", "a", "film", "plot", "not"], 4)) + [str(rng.choice(words[k]))]
        texts.append(" ".join(rng.permutation(w)))
        labels.append(["neg", "pos"][k])
    model = fit_text_model(texts, labels, options=TextModelOptions(
        size=6, embedding_size=6, n_epochs=2, min_df=1, wide=True))
    assert model.monitor_ == "cost"  # 30 held-out texts: the cost decides
    costs = {k: model.linear_[f"val_cost_{k}"] for k in ("blend", "linear", "rnn")}
    # the blend minimises the validation cost and holds each part as a special case
    assert costs["blend"] <= min(costs["linear"], costs["rnn"]) + 1e-4
    assert np.isfinite(model.linear_["weights"]).all()
    assert (model.predict(["good fun", "awful bad"])[:, 0] > 0.5).tolist() == [True, False]


def test_save_load_keeps_the_term_and_its_predictions(tmp_path):
    model = RNN([Embedding(4, 30), GatedRecurrent(5, direction="bi", pool="max"),
                 Dense(3, "softmax")], "cce", verbose=0, seed=0,
                wide=NgramLinear(30, 3, buckets=64))
    X = [np.random.default_rng(i).integers(1, 30, n) for i, n in enumerate([5, 9, 1, 30])]
    model.fit(X, np.array([0, 1, 2, 1]), n_epochs=2)
    save(model, tmp_path / "m.passage")
    again = load(tmp_path / "m.passage")
    assert again.wide is not None and again.wide.get_config() == model.wide.get_config()
    np.testing.assert_allclose(again.predict(X), model.predict(X), rtol=0, atol=1e-6)


def test_long_documents_in_chunks_get_the_term_of_the_whole_document():
    def make(budget):
        m = RNN([Embedding(4, 50), GatedRecurrent(6, direction="bi", pool="mean"),
                 Dense(2, "softmax")], "cce", verbose=0, seed=0,
                iterator=SortedPadded(size=4, max_tokens=budget),
                wide=NgramLinear(50, 2, buckets=64))
        with torch.no_grad():
            m.wide.weight.normal_(generator=torch.Generator().manual_seed(1))
        m.fitted_ = True
        return m

    X = [np.random.default_rng(i).integers(1, 50, n) for i, n in enumerate([900, 12, 3])]
    whole = make(None).predict(X)
    np.testing.assert_allclose(make(50).predict(X), whole, rtol=1e-5, atol=1e-6)
    # training in chunks reaches the term's rows too
    model = make(50)
    model.fit(X, np.array([0, 1, 0]), n_epochs=1)
    assert model.fitted_


@pytest.mark.parametrize("layers,message", [
    (lambda: [Embedding(4, 30), GatedRecurrent(5, seq_output=True), Dense(2, "softmax")],
     "one output per document"),
    (lambda: [Embedding(4, 30), GatedRecurrent(5), Dense(3, "softmax")], "does not match"),
])
def test_the_term_is_refused_where_it_cannot_apply(layers, message):
    with pytest.raises(ValueError, match=message):
        RNN(layers(), "cce", verbose=0, wide=NgramLinear(30, 2))


def test_trace_of_a_model_with_the_term_ends_at_its_prediction():
    from passage.preprocessing import Tokenizer
    from passage.showcase.trace import trace

    texts = ["good fun film", "bad dull film", "fun good", "dull bad"] * 10
    tok = Tokenizer(min_df=1).fit(texts)
    model = RNN([Embedding(4, tok.n_features), GatedRecurrent(4), Dense(1, "sigmoid")], "bce",
                verbose=0, seed=0, tokenizer=tok, wide=NgramLinear(tok.n_features, 1))
    model.fit(tok.transform(texts), np.array([1, 0, 1, 0] * 10), n_epochs=3)
    t = trace(model, "good fun film")
    np.testing.assert_allclose(t.outputs[-1], model.predict(["good fun film"])[0], atol=1e-6)
    assert not t.one_pass  # each prefix predicted as a text, so the term sees its n-grams
