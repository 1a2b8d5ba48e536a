"""The public API end to end: 2015 scripts, multi-class, real-valued input, regression, saving."""

import os
import zipfile

import numpy as np
import pytest
import torch

from passage.iterators import Linear
from passage.layers import Dense, Embedding, GatedRecurrent, Generic, LstmRecurrent, OneHot
from passage.models import RNN
from passage.preprocessing import Tokenizer
from passage.updates import NAG, Adam, Regularizer
from passage.utils import load, save


def toy_text(n=300, seed=0):
    """Reviews whose label is carried by one word somewhere in the middle."""
    rng = np.random.default_rng(seed)
    filler = "the a movie film plot actor scene story it was and of".split()
    texts, labels = [], []
    for _ in range(n):
        y = int(rng.integers(0, 2))
        words = list(rng.choice(filler, size=rng.integers(3, 12)))
        words.insert(int(rng.integers(0, len(words))), "great" if y else "awful")
        texts.append(" ".join(words))
        labels.append(y)
    return texts, labels


def test_2015_readme_example(tmp_path):
    train_text, train_labels = toy_text()
    test_text, test_labels = toy_text(100, seed=1)
    tokenizer = Tokenizer(min_df=1)
    train_tokens = tokenizer.fit_transform(train_text)
    torch.manual_seed(0)
    layers = [
        Embedding(size=128, n_features=tokenizer.n_features),
        GatedRecurrent(size=128),
        Dense(size=1, activation="sigmoid"),
    ]
    model = RNN(layers=layers, cost="BinaryCrossEntropy", verbose=0)
    costs = model.fit(train_tokens, train_labels, n_epochs=8)
    assert len(costs) == 8 * int(np.ceil(300 / 64)) and costs[-1] < costs[0]
    pred = model.predict(tokenizer.transform(test_text))
    assert pred.shape == (100, 1) and np.mean((pred[:, 0] > 0.5) == test_labels) > 0.7
    path = str(tmp_path / "save_test.pkl")
    save(model, path)
    model2 = load(path)
    assert np.array_equal(model2.predict(tokenizer.transform(test_text)), pred)


def test_saved_with_tokenizer_predicts_raw_text(tmp_path):
    texts, labels = toy_text(200)
    tok = Tokenizer(min_df=1)
    model = RNN([Embedding(16, 0 + tok.fit(texts).n_features), LstmRecurrent(16),
                 Dense(1, "sigmoid")], "bce", verbose=0, tokenizer=tok, seed=0)
    model.fit(texts, labels, n_epochs=2)
    save(model, tmp_path / "m.passage")
    loaded = load(tmp_path / "m.passage")
    assert np.array_equal(loaded.predict(texts[:5]), model.predict(tok.transform(texts[:5])))
    with zipfile.ZipFile(tmp_path / "m.passage") as z:  # plain JSON and .npy, nothing pickled
        assert all(n.endswith((".json", ".npy")) for n in z.namelist())


def test_stacked_multiclass_integer_labels():
    rng = np.random.default_rng(0)
    X = [list(rng.integers(3, 9, size=rng.integers(2, 10))) for _ in range(400)]
    Y = [int(x[0]) % 3 for x in X]  # the class is decided by the first token
    model = RNN([OneHot(9), GatedRecurrent(24, direction="bi"), GatedRecurrent(24),
                 Dense(3, "softmax")], cost="cce", updater=Adam(lr=1e-2), verbose=0, seed=0)
    model.fit(X, Y, n_epochs=6)
    p = model.predict(X)
    assert p.shape == (400, 3) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert np.mean(p.argmax(1) == Y) > 0.9


def test_generic_linear_real_valued_sequences():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 8, 4)).astype(np.float32)
    Y = (X[:, :, 0].sum(1) > 0).astype(int)
    model = RNN([Generic(size=4), GatedRecurrent(16), Dense(2, "softmax")], cost="cce",
                updater=NAG(momentum=0.95, regularizer=Regularizer(l2=1e-4)),
                iterator="linear", verbose=0, seed=0)
    model.fit(X, Y, n_epochs=15)
    assert isinstance(model.iterator, Linear)
    assert np.mean(model.predict(X).argmax(1) == Y) > 0.85


def test_regression():
    rng = np.random.default_rng(0)
    X = [list(rng.integers(3, 8, size=rng.integers(1, 8))) for _ in range(400)]
    Y = [float(np.sum(np.array(x) == 5)) for x in X]  # count of token 5
    model = RNN([Embedding(8, 8), GatedRecurrent(16), Dense(1, "linear")], cost="mse",
                updater=Adam(lr=1e-2), verbose=0, seed=0)
    model.fit(X, Y, n_epochs=10)
    mse = np.mean((model.predict(X)[:, 0] - Y) ** 2)
    assert mse < 0.25 * np.var(Y)


def test_seeded_runs_are_reproducible():
    texts, labels = toy_text(100)
    tok = Tokenizer(min_df=1).fit(texts)
    X = tok.transform(texts)
    preds = []
    for _ in range(2):
        m = RNN([Embedding(8, tok.n_features), GatedRecurrent(8), Dense(1, "sigmoid")], "bce",
                verbose=0, seed=3)
        m.fit(X, labels, n_epochs=2)
        preds.append(m.predict(X))
    assert np.array_equal(*preds)


def model_small(out=1, act="sigmoid", cost="bce", fit=True):
    model = RNN([Embedding(4, 10), GatedRecurrent(4), Dense(out, act)], cost, verbose=0)
    if fit and out == 1:
        model.fit([[3, 4], [5]], [1, 0])
    return model


@pytest.mark.parametrize("call, exc, match", [
    (lambda m: m.fit([], []), ValueError, "empty training set"),
    (lambda m: m.fit([[3]], [1, 0]), ValueError, "1 examples but trY has 2"),
    (lambda m: m.fit([[3], [4], [5]], [0, 1, 2]), ValueError, "3 classes.*softmax"),
    (lambda m: m.fit([[3], [42]], [0, 1]), ValueError, "token id 42 is outside.*n_features=10"),
    (lambda m: m.predict(["raw text"]), TypeError, "no tokenizer"),
    (lambda m: m.fit([[3], [4]], [0, float("nan")]), ValueError, "label 1 is nan"),
])
def test_bad_input_gets_a_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call(model_small())


def test_class_label_out_of_range():
    with pytest.raises(ValueError, match="class label 3 does not fit.*Dense\\(size=4"):
        model_small(3, "softmax", "cce").fit([[3], [4]], [0, 3])


@pytest.mark.parametrize("make, match", [
    (lambda: RNN([Embedding(4, 10), Dense(1, "sigmoid")], "crossent"), "unknown cost"),
    (lambda: RNN([Embedding(4, 10), Dense(1, "sigmoid")], "bce", updater="adamw"),
     "unknown updater.*Adam"),
    (lambda: RNN([Embedding(4, 10), Dense(1, "sigmoid")], "bce", iterator="bucket"),
     "unknown iterator.*SortedPadded"),
    (lambda: GatedRecurrent(4, activation="swishy"), "unknown activation"),
    (lambda: GatedRecurrent(4, init="xavier"), "unknown init"),
    (lambda: GatedRecurrent(4, direction="sideways"), "direction must be"),
    (lambda: RNN([GatedRecurrent(4), Dense(1)], "bce"), "cannot start a model"),
])
def test_unknown_names_list_valid_ones(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_corrupted_truncated_and_newer_files(tmp_path):
    m = model_small()
    path = tmp_path / "m.passage"
    save(m, path)
    data = path.read_bytes()
    (tmp_path / "cut.passage").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable Passage model file"):
        load(tmp_path / "cut.passage")
    (tmp_path / "junk.passage").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="not a readable Passage model file"):
        load(tmp_path / "junk.passage")
    with zipfile.ZipFile(path) as z, zipfile.ZipFile(tmp_path / "new.passage", "w") as out:
        for name in z.namelist():
            body = z.read(name)
            if name == "passage.json":
                body = body.replace(b'"format_version": 1', b'"format_version": 99')
            out.writestr(name, body)
    with pytest.raises(ValueError, match="format 99, newer.*upgrade"):
        load(tmp_path / "new.passage")


def test_save_is_atomic_and_keeps_old_file_on_failure(tmp_path, monkeypatch):
    m = model_small()
    path = tmp_path / "m.passage"
    save(m, path)
    before = path.read_bytes()
    import numpy

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(numpy, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save(m, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.passage"]


def test_snapshots(tmp_path):
    m = model_small()
    m.fit([[3, 4], [5]], [1, 0], n_epochs=2, path=str(tmp_path / "snap"))
    assert sorted(os.listdir(tmp_path)) == ["snap.0", "snap.1"]
    assert np.array_equal(load(tmp_path / "snap.1").predict([[3]]), m.predict([[3]]))


def test_validation_early_stopping_restores_best_epoch():
    texts, labels = toy_text(300)
    vtexts, vlabels = toy_text(100, seed=2)
    tok = Tokenizer(min_df=1).fit(texts)
    model = RNN([Embedding(16, tok.n_features), GatedRecurrent(16), Dense(1, "sigmoid")], "bce",
                updater=Adam(lr=3e-2), verbose=0, seed=0, tokenizer=tok)
    model.fit(texts, labels, n_epochs=12, validation_data=(vtexts, vlabels), patience=3)
    hist = model.history_
    assert {"val_cost", "val_accuracy", "val_roc_auc", "seconds", "tokens"} <= set(hist[0])
    best = min(h["val_cost"] for h in hist)
    assert model.best_epoch_ == [h["val_cost"] for h in hist].index(best) + 1
    # the weights in the model are those of the best epoch, not the last one
    assert model.evaluate(vtexts, vlabels)["cost"] == pytest.approx(best, rel=1e-5)
    if len(hist) < 12:  # stopped early: exactly `patience` epochs after the best
        assert len(hist) - model.best_epoch_ == 3


def test_validation_split_and_regression_metrics():
    rng = np.random.default_rng(0)
    X = [list(rng.integers(3, 8, size=rng.integers(1, 8))) for _ in range(200)]
    Y = [float(np.sum(np.array(x) == 5)) for x in X]
    model = RNN([Embedding(8, 8), GatedRecurrent(8), Dense(1, "linear")], cost="mse",
                updater=Adam(lr=1e-2), verbose=0, seed=0)
    model.fit(X, Y, n_epochs=2, validation_split=0.25, monitor="r2")
    assert {"val_mse", "val_mae", "val_r2"} <= set(model.history_[-1])
    with pytest.raises(ValueError, match="monitor='roc_auc' is not computed"):
        model.fit(X, Y, validation_split=0.25, monitor="roc_auc")


def test_dense_before_and_after_the_recurrent_stack():
    """Deep input (Dense per step) and deep output, with dropout everywhere, train and predict."""
    rng = np.random.default_rng(0)
    X = [list(rng.integers(3, 9, size=rng.integers(2, 10))) for _ in range(200)]
    Y = [int(8 in x) for x in X]
    model = RNN([Embedding(8, 9), Dense(8, "tanh", p_drop=0.1),
                 GatedRecurrent(12, direction="bi", p_drop=0.1, recurrent_dropout=0.2),
                 Dense(8, "rectify", p_drop=0.1), Dense(1, "sigmoid")], "bce",
                updater=Adam(lr=1e-2), verbose=0, seed=0)
    model.fit(X, Y, n_epochs=8)
    assert np.mean((model.predict(X)[:, 0] > 0.5) == Y) > 0.9


def test_regression_targets_are_scaled_for_training_and_back_at_predict(tmp_path):
    rng = np.random.default_rng(0)
    X = [list(rng.integers(3, 8, size=rng.integers(1, 8))) for _ in range(300)]
    Y = [1000.0 + 100.0 * np.sum(np.array(x) == 5) for x in X]  # large offset and scale
    model = RNN([Embedding(8, 8), GatedRecurrent(16), Dense(1, "linear")], cost="mse",
                updater=Adam(lr=1e-2), verbose=0, seed=0)
    costs = model.fit(X, Y, n_epochs=10)
    assert costs[0] < 5  # trained on standardized targets, not on values near 1000
    mean, std = model.target_scale_
    assert mean[0] == pytest.approx(np.mean(Y), rel=1e-5) and std[0] == pytest.approx(np.std(Y))
    p = model.predict(X)[:, 0]
    assert np.mean((p - Y) ** 2) < 0.25 * np.var(Y)  # in the labels' own units
    save(model, tmp_path / "r.passage")
    assert np.allclose(load(tmp_path / "r.passage").predict(X[:20]), model.predict(X[:20]))


def test_predict_before_fit_is_a_clear_error():
    from passage.models import NotFittedError

    with pytest.raises(NotFittedError, match="not been trained: call fit"):
        model_small(fit=False).predict([[3]])


def test_unknown_layer_in_a_model_file(tmp_path):
    m = model_small()
    path = tmp_path / "m.passage"
    save(m, path)
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    files["passage.json"] = files["passage.json"].replace(b'"GatedRecurrent"', b'"MyGRU"')
    with zipfile.ZipFile(path, "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
    with pytest.raises(ValueError, match="layer 'MyGRU', which is not registered"):
        load(path)


def test_per_step_labels_must_match_steps():
    m = RNN([Embedding(4, 10), GatedRecurrent(4, seq_output=True), Dense(3, "softmax")], "cce",
            verbose=0)
    with pytest.raises(ValueError, match="example 1 has 1 steps but 2 labels"):
        m.fit([[3, 4], [5]], [[0, 1], [2, 2]])
    with pytest.raises(ValueError, match="one label per step"):
        m.fit([[3, 4], [5]], [1, 0])


@pytest.mark.parametrize("seq_output", [False, True])
def test_predict_on_worker_threads_matches_one_thread(seq_output):
    """predict spreads batches over one worker thread per core: same outputs, same order, and
    the caller's thread count is left as it was."""
    rng = np.random.default_rng(0)
    X = [list(rng.integers(3, 50, size=rng.integers(0, 30))) for _ in range(300)]
    m = RNN([Embedding(8, 50), GatedRecurrent(8, direction="bi", seq_output=seq_output),
             Dense(2, "softmax")], "cce", verbose=0, seed=0)
    m.fitted_ = True
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        threaded = m.predict(X, batch_size=16)
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        alone = m.predict(X, batch_size=16)
    finally:
        torch.set_num_threads(before)
    assert len(threaded) == len(alone) == len(X)
    for a, b in zip(threaded, alone, strict=True):
        assert np.allclose(a, b, atol=1e-6)
    one = m.predict([X[7]])
    assert np.allclose(one[0], alone[7], atol=1e-6)


def test_predict_error_on_a_worker_thread_reaches_the_caller():
    m = model_small()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with pytest.raises(ValueError, match="token id 99 is outside"):
            m.predict([[3, 4]] * 300 + [[99]], batch_size=8)
    finally:
        torch.set_num_threads(before)


def test_concurrent_predicts_from_several_threads():
    """Two threads predicting at once (a server, say) each get their own right answers."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(2)
    X = [list(rng.integers(3, 50, size=rng.integers(0, 40))) for _ in range(400)]
    m = RNN([Embedding(8, 50), LstmRecurrent(8, pool="max"), Dense(1, "sigmoid")], "bce",
            verbose=0, seed=0)
    m.fitted_ = True
    want = m.predict(X, batch_size=16)
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda _: m.predict(X, batch_size=16), range(4)))
    for g in got:
        assert np.allclose(g, want, atol=1e-6)
