"""The showcase pieces: labels, the model file's extra metadata, the linear baseline and the
showdown, the embedding map and the per-token trace. Tiny data, tiny models. (The data-file
reader, passage.cli.tables, is tested in test_cli_safety.)"""

import json
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from passage.io import load, save
from passage.labels import LabelCoding, canonical, infer_task
from passage.layers import Dense, Embedding, GatedRecurrent, LstmRecurrent, OneHot
from passage.models import RNN
from passage.preprocessing import Tokenizer
from passage.recipe import TextModelOptions, fit_text_model
from passage.showcase.embedmap import embedding_map, frequent_words, label_means
from passage.showcase.showdown import (
    format_table,
    plot_learning_curve,
    run_showdown,
    training_subsets,
)
from passage.showcase.trace import colour, step_outputs, to_ansi, to_html, trace, write_html

PNG = b"\x89PNG\r\n\x1a\n"
FILLER = "the a movie plot was it and this film story".split()
# the 2015 shape (a forward GRU read at its last state), whose trace takes one pass
TINY = TextModelOptions(size=8, embedding_size=8, n_epochs=2, min_df=1, seed=0,
                        direction="forward", pool="last", wide=False, truncate=None)


def make_data(n=90, seed=0):
    """(texts, class names, ratings): the class word decides the label."""
    rng = np.random.default_rng(seed)
    texts, labels, ratings = [], [], []
    for _ in range(n):
        k = int(rng.integers(0, 3))
        words = list(rng.choice(FILLER, size=4)) + [["awful", "okay", "great"][k]]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(["neg", "mid", "pos"][k])
        ratings.append(1 + 4.5 * k + float(rng.uniform()))
    return texts, labels, ratings


# -- labels --------------------------------------------------------------------------------
def test_task_inference():
    assert infer_task(["pos", "neg", "neg"]) == "binary"
    assert infer_task([0, 1, 1]) == "binary"
    assert infer_task(["a", "b", "c"]) == "multiclass"
    assert infer_task(["1", "2", "3", "10"]) == "multiclass"  # few integers, written as text
    assert infer_task([1.5, 2.0, 3.25]) == "regression"
    assert infer_task(list(range(30))) == "regression"  # many integers
    with pytest.raises(ValueError, match="at least 2 different labels"):
        infer_task(["x", "x"])


def test_label_coding_round_trip_across_formats():
    coding = LabelCoding.fit(["10", "2", "1", "2"])  # CSV strings: numeric order, names kept
    assert coding.task == "multiclass" and coding.classes == ["1", "2", "10"]
    assert coding.encode([10, 1.0, " 2 "]).tolist() == [2, 0, 1]  # JSON numbers match too
    assert coding.decode([2, 0]) == ["10", "1"]
    assert canonical("0.50") == 0.5 and canonical(True) is True
    with pytest.raises(ValueError, match="not one of the model's classes"):
        coding.encode(["3"])
    reg = LabelCoding.fit(["1.5", 2, 7.25], task="regression")
    assert reg.encode(["2.5"]).tolist() == [2.5] and reg.n_outputs == 1
    with pytest.raises(ValueError, match="task must be"):
        LabelCoding.fit([0, 1], task="ranking")


def test_label_coding_from_a_model_without_metadata():
    model = RNN([Embedding(4, 10), GatedRecurrent(4), Dense(3, "softmax")], "cce", verbose=0)
    assert LabelCoding.from_model(model) == LabelCoding("multiclass", [0, 1, 2])
    model.extra_ = {"task": "binary", "classes": ["ham", "spam"]}
    assert LabelCoding.from_model(model).classes == ["ham", "spam"]


# -- the model file's extra metadata -------------------------------------------------------
def _tiny_model():
    model = RNN([Embedding(4, 10), GatedRecurrent(4), Dense(1, "sigmoid")], "bce", verbose=0,
                seed=0)
    model.fit([[3, 4], [5], [6, 7, 8]], [1, 0, 1])
    return model


def test_extra_metadata_round_trip(tmp_path):
    path = tmp_path / "m.passage"
    model = _tiny_model()
    save(model, path, extra={"task": "binary", "classes": ["neg", "pos"]})
    loaded = load(path)
    assert loaded.extra_ == {"task": "binary", "classes": ["neg", "pos"]}
    save(loaded, tmp_path / "again.passage")  # a re-save keeps it
    assert load(tmp_path / "again.passage").extra_ == loaded.extra_
    save(_tiny_model(), path)
    assert load(path).extra_ is None
    with pytest.raises(TypeError, match="plain JSON"):
        save(model, tmp_path / "x.passage", extra={"a": np.int64(3)})
    with pytest.raises(TypeError, match="dict or None"):
        save(model, tmp_path / "x.passage", extra=["a"])


def test_files_written_before_extra_still_load(tmp_path):
    path, old = tmp_path / "m.passage", tmp_path / "old.passage"
    model = _tiny_model()
    save(model, path, extra={"task": "binary"})
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(old, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "passage.json":
                meta = json.loads(data)
                del meta["extra"]  # exactly what format version 1 wrote before
                data = json.dumps(meta).encode()
            dst.writestr(name, data)
    loaded = load(old)
    assert loaded.extra_ is None
    assert np.array_equal(loaded.predict([[3, 4]]), model.predict([[3, 4]]))


# -- baseline and showdown -----------------------------------------------------------------
SMALL_GRID = {"tfidf__min_df": [1, 2], "model__C": [0.1, 10.0]}


def test_showdown_baseline_matches_a_direct_scikit_learn_fit(tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    texts, labels, _ = make_data(120)
    train_x, train_y, test_x, test_y = texts[:90], labels[:90], texts[90:], labels[90:]
    rows = run_showdown(train_x, train_y, test_x, test_y, sizes=[45, 90, 500], rnn=TINY,
                        grid=SMALL_GRID, seed=3, log=None)
    assert [(r["size"], r["model"]) for r in rows] == [
        (45, "tfidf+logreg"), (45, "rnn-gru"), (90, "tfidf+logreg"), (90, "rnn-gru")]
    assert all(r["metric"] == "accuracy" and r["seconds"] > 0 for r in rows)

    for subset, row in zip(training_subsets(90, [45, 90], seed=3), rows[::2], strict=True):
        pipe = Pipeline([("tfidf", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
                         ("model", LogisticRegression(max_iter=1000))])
        direct = GridSearchCV(pipe, SMALL_GRID, cv=3, scoring="accuracy")
        direct.fit([train_x[i] for i in subset], [train_y[i] for i in subset])
        assert row["score"] == pytest.approx(accuracy_score(test_y, direct.predict(test_x)),
                                             abs=1e-12)
        assert row["params"] == direct.best_params_

    plot_learning_curve(rows, tmp_path / "curve.png", n_test=len(test_x))
    assert (tmp_path / "curve.png").read_bytes()[:8] == PNG
    assert "| 45 | tfidf+logreg |" in format_table(rows)


def test_showdown_regression_reports_rmse(tmp_path):
    texts, _, ratings = make_data(60)
    rows = run_showdown(texts[:45], ratings[:45], texts[45:], ratings[45:], sizes=[45],
                        task="regression", rnn=TINY,
                        grid={"tfidf__min_df": [1], "model__alpha": [1.0]}, log=None)
    assert [r["model"] for r in rows] == ["tfidf+ridge", "rnn-gru"]
    assert all(r["metric"] == "rmse" and 0 < r["score"] < 10 for r in rows)
    plot_learning_curve(rows, tmp_path / "rmse.png")
    assert (tmp_path / "rmse.png").stat().st_size > 1000


# -- embedding map ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def binary_model():
    texts, labels, _ = make_data(90)
    y = [int(label == "pos") for label in labels]
    return fit_text_model(texts, y, options=TINY), texts, y


def test_embedding_map(tmp_path, binary_model):
    model, texts, y = binary_model
    points = embedding_map(model, texts, y, tmp_path / "map.png", n_words=20, n_labels=5)
    assert (tmp_path / "map.png").read_bytes()[:8] == PNG
    words = {p["word"]: p for p in points}
    assert words["great"]["mean"] == 1.0 and words["awful"]["mean"] == 0.0
    assert len(points) == 13 and all(np.isfinite([p["x"], p["y"]]).all() for p in points)
    assert 1 <= sum(p["labelled"] for p in points) <= 5


def test_map_labels_never_overlap_even_in_a_dense_cluster():
    from passage.showcase.embedmap import place_labels
    from passage.showcase.figures import new_figure

    fig = new_figure(6, 5)
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(0, 0.01, 120), rng.normal(0, 0.01, 120)  # 120 dots on one spot
    ax.scatter(xs, ys)
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    fig.canvas.draw()
    fig.set_layout_engine("none")
    placed = place_labels(fig, ax, xs, ys, [f"word{i}" for i in range(120)])
    boxes = [box for word, box in placed if word is not None]
    assert 20 <= len(boxes) < 120  # many fit around the spot, not all
    frame = ax.get_window_extent(fig.canvas.get_renderer())
    for i, a in enumerate(boxes):
        assert frame.contains(a.x0, a.y0) and frame.contains(a.x1, a.y1)
        assert not any(a.overlaps(b) for b in boxes[i + 1:])


def test_label_means_count_documents_not_occurrences():
    tok = Tokenizer(min_df=1)
    tok.fit(["good good film", "bad film"])
    ids = [i for i, _ in frequent_words(tok, 10)]
    means, counts = label_means(tok, ["good good film", "bad film"], np.array([1.0, 0.0]), ids)
    by_word = {tok.decoder[i]: (m, c) for i, m, c in zip(ids, means, counts, strict=True)}
    assert by_word["good"] == (1.0, 1) and by_word["film"] == (0.5, 2)


def test_embedding_map_needs_an_embedding(tmp_path):
    tok = Tokenizer(min_df=1).fit(["a b", "c d"])
    model = RNN([OneHot(tok.n_features), GatedRecurrent(4), Dense(1, "sigmoid")], "bce",
                verbose=0, tokenizer=tok)
    with pytest.raises(ValueError, match="not an Embedding"):
        embedding_map(model, ["a b", "c d"], [0, 1], tmp_path / "x.png")


# -- trace -------------------------------------------------------------------------------------
def test_trace_one_pass_matches_every_prefix(binary_model, tmp_path):
    model, _, _ = binary_model
    text = "the plot was awful but the film was great"
    tr = trace(model, text)
    assert tr.one_pass and tr.tokens == text.split() and tr.meaning == "p(1)"
    ids = model.tokenizer.transform([text])[0]
    prefixes = model.predict([ids[:k] for k in range(1, len(ids) + 1)])
    np.testing.assert_allclose(tr.outputs, prefixes, atol=1e-5)
    np.testing.assert_allclose(tr.values[-1], model.predict([text])[0, 0], atol=1e-6)
    np.testing.assert_array_equal(tr.outputs, outputs_the_old_way(model, ids, tmp_path))
    assert all(not layer.sequence_out for layer in model.layers[1:2])  # never changed

    ansi, plain = to_ansi(tr), to_ansi(tr, color=False)
    assert ansi.count("\x1b[48;2;") == len(ids) and "great[" in plain
    write_html(tr, tmp_path / "t.html")
    assert "awful</span>" in (tmp_path / "t.html").read_text(encoding="utf-8")


def outputs_the_old_way(model, ids, tmp_path):
    """The step outputs as trace computed them before it stopped changing the model: on a
    copy of the model (saved and loaded), every recurrent layer flipped to return each step."""
    save(model, tmp_path / "copy.passage")
    other = load(tmp_path / "copy.passage")
    for layer in other.layers:
        if layer.is_recurrent:
            layer.sequence_out = True
    other.model.eval()
    with torch.inference_mode():
        x, lengths = torch.tensor([ids]), torch.tensor([len(ids)])
        return other.model(x, lengths)[0].float().numpy()


def test_trace_never_changes_the_model_a_predict_in_another_thread_reads(tmp_path):
    """A served model is traced in one thread while another predicts with it: the layers'
    ``sequence_out`` is never written (a property on the layer records every write) and a
    predict made in the middle of the trace's forward pass gives the usual outputs."""
    tok = Tokenizer(min_df=1).fit(["good film", "bad film", "a good plot"])
    model = RNN([Embedding(6, tok.n_features), GatedRecurrent(5), LstmRecurrent(4),
                 Dense(1, "sigmoid")], "bce", verbose=0, seed=0, tokenizer=tok)
    model.fit(["good film", "bad film", "a good plot"], [1, 0, 1])
    texts = ["good film", "bad"]
    expected = model.predict(texts)
    assert expected.shape == (2, 1)
    last_state = model.layers[2]  # the layer trace needs every step of
    assert model.layers[1].sequence_out and not last_state.sequence_out
    writes = []

    class Watched(type(last_state)):
        @property
        def sequence_out(self):
            return self.__dict__["_watched"]

        @sequence_out.setter
        def sequence_out(self, value):
            writes.append((self, value))
            self.__dict__["_watched"] = value

    last_state.__dict__["_watched"] = last_state.__dict__.pop("sequence_out")
    last_state.__class__ = Watched
    during = []

    def predict_elsewhere(module, args, output):
        if not during:  # the trace's pass (the predict below runs this layer too)
            during.append(tuple(output[0].shape))
            with ThreadPoolExecutor(1) as pool:
                during.append(pool.submit(model.predict, texts).result())

    hook = model.layers[-1].register_forward_hook(predict_elsewhere)
    try:
        text = "a good film"
        tr = trace(model, text)
    finally:
        hook.remove()
    assert tr.one_pass and len(during) == 2
    assert during[0] == (1, 3, 1)  # the trace read every step...
    np.testing.assert_array_equal(during[1], expected)  # ...the other thread the usual output
    assert not any(layer is last_state for layer, _ in writes)
    assert not last_state.sequence_out and model.layers[1].sequence_out
    np.testing.assert_array_equal(model.predict(texts), expected)
    last_state.__class__ = LstmRecurrent  # unwatched again, so that the model can be saved
    last_state.__dict__["sequence_out"] = last_state.__dict__.pop("_watched")
    ids = tok.transform([text])[0]
    np.testing.assert_array_equal(tr.outputs, outputs_the_old_way(model, ids, tmp_path))
    prefixes = model.predict([ids[:k] for k in range(1, len(ids) + 1)])
    np.testing.assert_allclose(tr.outputs, prefixes, atol=1e-5)


@pytest.mark.parametrize("changes", [{"pool": "max"}, {"pool": "mean"}, {"wide": True},
                                     {"direction": "bi"}])
def test_trace_of_pooled_bidirectional_or_wide_models_is_every_prefix(changes):
    """Such a model's prefix predictions are not its step outputs: each prefix is predicted
    (a forward max-pooled model read in one pass would show Dense(h_t), not Dense(max h))."""
    texts, labels, _ = make_data(90)
    y = [int(label == "pos") for label in labels]
    model = fit_text_model(texts, y, options=TINY.updated(**changes))
    text = "the plot was awful but the film was great"
    tr = trace(model, text)
    ids = model.tokenizer.transform([text])[0]
    prefixes = model.predict([ids[:k] for k in range(1, len(ids) + 1)])
    assert not tr.one_pass
    np.testing.assert_allclose(tr.outputs, prefixes, atol=1e-6)


def test_trace_falls_back_to_prefixes_for_models_that_read_backwards():
    tok = Tokenizer(min_df=1).fit(["good film", "bad film"])
    model = RNN([Embedding(4, tok.n_features), LstmRecurrent(4, direction="bi"),
                 LstmRecurrent(4), Dense(1, "sigmoid")], "bce", verbose=0, seed=0,
                tokenizer=tok)
    model.fit(["good film", "bad film"], [1, 0])
    outputs, one_pass = step_outputs(model, tok.transform(["good bad film"])[0])
    assert not one_pass and outputs.shape == (3, 1)
    np.testing.assert_allclose(outputs[-1], model.predict(["good bad film"])[0], atol=1e-6)


def test_trace_regression_in_label_units(tmp_path):
    texts, _, ratings = make_data(60)
    model = fit_text_model(texts, ratings, task="regression", options=TINY)
    tr = trace(model, "a great film")
    assert tr.meaning == "predicted value" and tr.low < tr.center < tr.high
    np.testing.assert_allclose(tr.values[-1], model.predict(["a great film"])[0, 0], rtol=1e-5)
    page = to_html(tr, title="<script>")
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_trace_escapes_html_and_colours():
    assert colour(0.0, 0, 0.5, 1) == (177, 24, 43)
    assert colour(0.5, 0, 0.5, 1) == (246, 247, 247)
    assert colour(2.0, 0, 0.5, 1) == (32, 101, 171)  # clipped at the top
    tok = Tokenizer(min_df=1, character=True).fit(["<b>&"])
    model = RNN([Embedding(4, tok.n_features), GatedRecurrent(4), Dense(1, "sigmoid")], "bce",
                verbose=0, seed=0, tokenizer=tok)
    model.fit(["<b>&", "ab"], [1, 0])
    tr = trace(model, "<b>&")
    assert tr.tokens == ["<", "b", ">", "&"]
    page = to_html(tr)
    assert "&lt;</span>" in page and "&gt;</span>" in page and "&amp;</span>" in page
