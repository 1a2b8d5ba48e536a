"""Arguments that would train nothing (or nonsense) are refused at the call, before anything in
the model changes: RNN.fit / predict, layers, LanguageModel, Tagger, the scikit-learn
estimators and LenFilter. Each case checks the error type, a phrase of its message and that the
model is exactly as it was (weights, fitted_, history_, batch size, random state)."""

import copy
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from passage.layers import AdaptiveSoftmax, Dense, Embedding, GatedRecurrent, LstmRecurrent
from passage.lm import LanguageModel
from passage.models import RNN
from passage.preprocessing import END, PAD, UNK, LenFilter, Tokenizer, Truncate
from passage.tagging import Tagger
from passage.updates import Adam

X16 = [[3, 4, 5], [6, 7], [3, 3], [8, 9, 9, 9]] * 4
Y16 = [1, 0, 1, 0] * 4


def tiny(seed=0):
    return RNN([Embedding(4, 10), GatedRecurrent(4), Dense(1, "sigmoid")], "bce", verbose=0,
               seed=seed)


def snapshot(model):
    """Everything a refused call must leave as it was."""
    return {"state": {k: v.clone() for k, v in model.model.state_dict().items()},
            "fitted": model.fitted_, "history": copy.deepcopy(getattr(model, "history_", None)),
            "has_history": hasattr(model, "history_"), "size": model.iterator.size,
            "rng": copy.deepcopy(model.rng.bit_generator.state), "costs": list(model.costs_),
            "scale": model.target_scale_}


def assert_unchanged(model, before):
    after = snapshot(model)
    assert after["state"].keys() == before["state"].keys()
    for k, v in before["state"].items():
        assert torch.equal(after["state"][k], v), k
    for k in ("fitted", "history", "has_history", "size", "rng", "costs"):
        assert after[k] == before[k], k
    assert (after["scale"] is None) == (before["scale"] is None)


@pytest.fixture(params=["new", "fitted"])
def model(request):
    m = tiny()
    if request.param == "fitted":
        m.fit(X16, Y16, n_epochs=1)
    return m


FIT_CASES = [
    ({"batch_size": -5}, ValueError, "batch_size must be an int >= 1, got -5"),
    ({"batch_size": 0}, ValueError, "batch_size must be an int >= 1, got 0"),
    ({"batch_size": 2.5}, TypeError, "batch_size must be an int or None"),
    ({"batch_size": True}, TypeError, "batch_size must be an int"),
    ({"validation_split": 0.99}, ValueError, "leaving none to train on"),
    ({"validation_split": 1.0}, ValueError, r"validation_split must be .* \[0, 1\)"),
    ({"validation_split": -0.1}, ValueError, "validation_split must be"),
    ({"validation_split": float("nan")}, ValueError, "validation_split must be a finite"),
    ({"validation_split": "0.2"}, TypeError, "validation_split must be a number"),
    ({"n_epochs": 0}, ValueError, "n_epochs must be an int >= 1, got 0"),
    ({"n_epochs": -2}, ValueError, "n_epochs must be an int >= 1"),
    ({"n_epochs": 1.5}, TypeError, "n_epochs must be an int"),
    ({"patience": -1, "validation_split": 0.25}, ValueError, "patience must be an int >= 0"),
    ({"monitor": "bogus"}, ValueError, r"monitor='bogus' is not computed.*'accuracy'"),
    ({"monitor": "r2", "validation_split": 0.25}, ValueError, "monitor='r2' is not computed"),
    ({"snapshot_freq": 0, "path": "unused"}, ValueError, "snapshot_freq must be an int >= 1"),
    ({"lr_schedule": "cosine"}, ValueError, "lr_schedule must be None or 'linear'"),
    ({"len_filter": 500}, TypeError, "len_filter must be a LenFilter or Truncate"),
    ({"validation_split": 0.25, "validation_data": (X16, Y16)}, ValueError, "not both"),
    ({"validation_data": X16}, TypeError, r"validation_data must be a pair \(X, Y\)"),
    ({"validation_data": (X16, Y16[:3])}, ValueError, "validation_data has 16 examples and 3"),
    ({"validation_data": ([[3]], [7])}, ValueError, "BinaryCrossEntropy needs labels in"),
    ({"validation_data": ([[3], [4]], [1, 1]), "monitor": "roc_auc"}, ValueError,
     "needs both classes"),
    ({"len_filter": LenFilter(max_len=1, percentile=0)}, ValueError,
     r"LenFilter would drop all 16 sequences.*raise max_len.*Truncate\(1\)"),
    ({"len_filter": LenFilter(max_len=0)}, ValueError, "max_len must be an int >= 1"),
    ({"class_weight": {5: 1.0}, "validation_split": 0.25}, ValueError,
     "class_weight key 5 is not a class index"),
]


@pytest.mark.parametrize("kwargs, exc, match", FIT_CASES)
def test_bad_fit_arguments_are_refused_and_change_nothing(model, kwargs, exc, match):
    before = snapshot(model)
    with pytest.raises(exc, match=match):
        model.fit(X16, Y16, **kwargs)
    assert_unchanged(model, before)


def test_fit_kwargs_of_process_launchers_can_be_checked_up_front():
    from passage._checks import check_fit_kwargs
    check_fit_kwargs({"n_epochs": 2, "batch_size": 8, "validation_data": None})
    with pytest.raises(ValueError, match="n_epochs must be an int >= 1"):
        check_fit_kwargs({"n_epochs": 0, "validation_data": None})
    with pytest.raises(TypeError, match="batch_size must be an int"):
        check_fit_kwargs({"batch_size": "64"})


def test_a_refused_batch_size_leaves_a_model_that_still_fits():
    m = tiny()
    with pytest.raises(ValueError, match="batch_size"):
        m.fit(X16, Y16, batch_size=0)
    assert len(m.fit(X16, Y16, batch_size=4)) == 4  # 16 examples, 4 a batch
    assert m.fitted_


def test_unknown_monitor_is_refused_before_any_training(monkeypatch):
    m = tiny()
    monkeypatch.setattr(m, "_run_epoch", lambda *a: pytest.fail("an epoch ran"))
    with pytest.raises(ValueError, match="monitor='f1' is not computed"):
        m.fit(X16, Y16, validation_split=0.25, monitor="f1")


def test_bad_validation_labels_are_refused_before_any_training(monkeypatch):
    m = tiny()
    monkeypatch.setattr(m, "_run_epoch", lambda *a: pytest.fail("an epoch ran"))
    with pytest.raises(ValueError, match="label 1 is nan"):
        m.fit(X16, Y16, validation_data=([[3], [4]], [0, float("nan")]))


def test_a_split_that_leaves_one_example_each_side_trains():
    m = tiny()
    m.fit(X16[:2], Y16[:2], validation_split=0.5)
    assert m.fitted_ and m.history_[-1]["val_cost"] > 0


@pytest.mark.parametrize("batch_size, exc", [(-1, ValueError), (0, ValueError),
                                              (1.5, TypeError), (None, TypeError)])
def test_bad_predict_batch_size(batch_size, exc):
    m = tiny()
    m.fit(X16, Y16)
    before = snapshot(m)
    with pytest.raises(exc, match="batch_size must be an int"):
        m.predict(X16, batch_size=batch_size)
    assert_unchanged(m, before)
    assert m.predict(X16, batch_size=1).shape == (16, 1)


def test_one_class_training_labels_warn():
    with pytest.warns(UserWarning, match="every training label is 1"):
        tiny().fit(X16, [1] * 16)
    m = RNN([Embedding(4, 10), GatedRecurrent(4), Dense(3, "softmax")], "cce", verbose=0)
    with pytest.warns(UserWarning, match="every training label is 2"):
        m.fit(X16, [2] * 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny().fit(X16, Y16)  # two classes: no warning


def test_patience_without_validation_warns():
    with pytest.warns(UserWarning, match="patience has no effect"):
        tiny().fit(X16, Y16, patience=2)


# -- layers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, exc, match", [
    (lambda: Dense(4, p_drop=1.5), ValueError, r"Dense\(p_drop=...\) must be .* \[0, 1\)"),
    (lambda: Dense(4, p_drop=1.0), ValueError, "1 would drop them all"),
    (lambda: Dense(4, p_drop=-0.1), ValueError, "Dense"),
    (lambda: Dense(4, p_drop="0.5"), TypeError, "must be a number"),
    (lambda: Dense(0), ValueError, r"Dense\(size=...\) must be a positive int"),
    (lambda: GatedRecurrent(4, p_drop=1.0), ValueError, r"GatedRecurrent\(p_drop"),
    (lambda: LstmRecurrent(4, recurrent_dropout=float("nan")), ValueError, "recurrent_dropout"),
    (lambda: GatedRecurrent(4, truncate_gradient=2.5), TypeError, "truncate_gradient"),
    (lambda: GatedRecurrent(4, truncate_gradient=-3), ValueError, "truncate_gradient"),
    (lambda: AdaptiveSoftmax(50, (10,), p_drop=2), ValueError, r"AdaptiveSoftmax\(p_drop"),
    (lambda: Embedding(size=-1), ValueError, "positive int"),
])
def test_bad_layer_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


# -- language model -------------------------------------------------------------------------------
WORDS = "the cat sat on the mat . a dog ran to the park . the bird sang in a tree ."


def small_lm(tokenizer=None, n_features=10):
    return LanguageModel([Embedding(8, n_features), GatedRecurrent(8),
                          Dense(n_features, "softmax")], updater=Adam(lr=0.02), verbose=0,
                         seed=0, seq_len=4, tokenizer=tokenizer)


@pytest.fixture(scope="module")
def text_lm():
    tok = Tokenizer(min_df=1)
    tok.fit([WORDS])
    lm = small_lm(tok, tok.n_features)
    lm.fit([WORDS] * 6 + ["the zebra sang"], n_epochs=2, batch_size=4)  # zebra: UNK
    return lm


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"n_epochs": 0}, ValueError, "n_epochs must be an int >= 1"),
    ({"n_epochs": 2.0}, TypeError, "n_epochs must be an int"),
    ({"batch_size": 0}, ValueError, "batch_size must be an int >= 1"),
    ({"batch_size": -4}, ValueError, "batch_size must be an int >= 1"),
    ({"patience": -1}, ValueError, "patience must be an int >= 0"),
    ({"lr_decay": 0.0}, ValueError, r"lr_decay must be .* \(0, inf\)"),
    ({"decay_after": -1}, ValueError, "decay_after must be an int >= 0"),
    ({"validation_data": [[3, 4]]}, ValueError, "validation_data has 3 tokens, too few"),
])
def test_bad_language_model_fit_arguments(kwargs, exc, match):
    lm = small_lm()
    before = snapshot(lm)
    with pytest.raises(exc, match=match):
        lm.fit([[3, 4, 5]] * 40, **kwargs)
    assert_unchanged(lm, before)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"prompt": [3, 99]}, ValueError, r"prompt\[1\] = 99 is outside the vocabulary"),
    ({"prompt": [-1]}, ValueError, "outside the vocabulary"),
    ({"prompt": [3.0]}, TypeError, "holds ints"),
    ({"prompt": 3}, TypeError, "a text or a list of token ids"),
    ({"n": -1}, ValueError, "n must be an int >= 0"),
    ({"temperature": float("nan")}, ValueError, "temperature must be a finite"),
    ({"temperature": -1}, ValueError, "temperature"),
    ({"top_k": 0}, ValueError, "top_k must be an int >= 1"),
])
def test_bad_generate_arguments(kwargs, exc, match):
    lm = small_lm()
    lm.fit([[3, 4, 5]] * 40, batch_size=4)
    before = snapshot(lm)
    with pytest.raises(exc, match=match):
        lm.generate(**{"prompt": [3], **kwargs})
    assert_unchanged(lm, before)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        lm.evaluate([[3, 4, 5]] * 10, batch_size=0)


def test_generation_never_samples_pad_or_unk_and_ends_are_document_breaks(text_lm):
    # a hot temperature makes every id likely: before, PAD, END and UNK came out as the words
    prompt = [int(i) for i in text_lm.tokenizer.transform(["the"])[0]]
    ids = text_lm.generate(prompt, n=400, temperature=4.0, seed=0)
    assert PAD not in ids and UNK not in ids and END in ids
    text = text_lm.generate("the", n=400, temperature=4.0, seed=0)
    for marker in ("PAD", "END", "UNK"):
        assert marker not in text.split()
    assert text.count("\n") == ids.count(END)  # same seed, same ids: each END a line break
    stopped = text_lm.generate(prompt, n=400, temperature=4.0, seed=0, stop_at_end=True)
    assert stopped == ids[:ids.index(END)]
    with_unk = text_lm.generate(prompt, n=400, temperature=4.0, seed=0, allow_unk=True)
    assert UNK in with_unk and PAD not in with_unk
    assert text_lm.generate([3], n=0) == []


# -- tagger ---------------------------------------------------------------------------------------
TAG_X = [["The", "cat", "sat"], ["A", "dog", "ran"], ["The", "dog", "sat"]] * 8
TAG_Y = [["DET", "NOUN", "VERB"]] * 24


@pytest.fixture(scope="module")
def tagger():
    return Tagger(size=8, embedding_size=4, n_epochs=2, seed=0, min_df=1).fit(TAG_X, TAG_Y)


def test_empty_sentences_get_empty_tag_lists(tagger):
    assert tagger.predict([[]]) == [[]]
    out = tagger.predict([[], ["The", "cat"], [], ["A", "dog", "ran"], []])
    assert [len(t) for t in out] == [0, 2, 0, 3, 0]
    assert out[1] == tagger.predict([["The", "cat"]])[0]
    assert tagger.predict_proba([[]])[0].shape == (0, 3)
    assert tagger.score([[], ["The", "cat"]], [[], out[1]]) == 1.0


def test_tagger_trains_with_empty_sentences():
    X, Y = TAG_X + [[]] * 40, TAG_Y + [[]] * 40  # a batch of only empty sentences
    t = Tagger(size=8, embedding_size=4, n_epochs=1, seed=0, batch_size=8).fit(
        X, Y, validation_data=([[], ["The", "cat", "sat"]], [[], ["DET", "NOUN", "VERB"]]))
    assert t.predict([[], ["The"]])[0] == []


@pytest.mark.parametrize("params, sentences, tags, exc, match", [
    ({"n_epochs": 0}, TAG_X, TAG_Y, ValueError, "n_epochs must be an int >= 1"),
    ({"size": 0}, TAG_X, TAG_Y, ValueError, "size must be an int >= 1"),
    ({"p_drop": 1.0}, TAG_X, TAG_Y, ValueError, "p_drop"),
    ({"lr": -1.0}, TAG_X, TAG_Y, ValueError, "lr must be"),
    ({"layer": "rnn"}, TAG_X, TAG_Y, ValueError, "layer must be 'lstm' or 'gru'"),
    ({}, TAG_X, [["DET", None, "VERB"]] + TAG_Y[1:], ValueError,
     r"sentence\(s\) 0 are missing"),
    ({}, [[]] * 24, [[]] * 24, ValueError, "no tags to learn"),
])
def test_bad_tagger_fit_changes_nothing(tagger, params, sentences, tags, exc, match):
    t = copy.deepcopy(tagger)
    model, names, features = t.model_, t.tags_, t.features_
    for k, v in params.items():
        setattr(t, k, v)
    with pytest.raises(exc, match=match):
        t.fit(sentences, tags)
    assert t.model_ is model and t.tags_ is names and t.features_ is features  # kept
    fresh = Tagger(**{**tagger.get_params(), **params})
    with pytest.raises(exc, match=match):
        fresh.fit(sentences, tags)
    assert not hasattr(fresh, "model_") and not hasattr(fresh, "tags_")


# -- scikit-learn estimators ----------------------------------------------------------------------
TEXTS = ["good fun", "bad bore", "good good", "bad awful"] * 6


def test_classifier_refuses_missing_labels_with_their_positions():
    from passage.sklearn import RNNClassifier
    clf = RNNClassifier(size=4, embedding_size=4, n_epochs=1, min_df=1)
    y = [1.0, float("nan"), 0.0, np.nan] + [1.0, 0.0] * 10
    with pytest.raises(ValueError, match=r"2 missing label\(s\).*position\(s\) 1, 3"):
        clf.fit(TEXTS, y)
    with pytest.raises(ValueError, match=r"position\(s\) 2, 6, .*must not become a class"):
        clf.fit(TEXTS, ["pos", "neg", None, "neg"] * 6)
    assert not hasattr(clf, "classes_") and not hasattr(clf, "model_")


def test_regressor_refuses_nan_and_inf_targets():
    from passage.sklearn import RNNRegressor
    reg = RNNRegressor(size=4, embedding_size=4, n_epochs=1, min_df=1)
    y = [1.0, 2.0, float("inf"), 3.0] * 5 + [float("nan")] + [1.0] * 3
    with pytest.raises(ValueError, match=r"not finite.*2, 6, 10, 14, 18 and 1 more"):
        reg.fit(TEXTS, y)
    with pytest.raises(TypeError, match="numeric targets"):
        reg.fit(TEXTS, ["a"] * 24)
    assert not hasattr(reg, "n_outputs_") and not hasattr(reg, "model_")


@pytest.mark.parametrize("params, exc, match", [
    ({"n_epochs": 0}, ValueError, "n_epochs must be an int >= 1"),
    ({"batch_size": -5}, ValueError, "batch_size must be an int >= 1"),
    ({"validation_split": 1.0}, ValueError, "validation_split"),
    ({"lr": 0}, ValueError, "lr must be"),
    ({"patience": -1}, ValueError, "patience must be an int >= 0"),
    ({"size": 2.5}, TypeError, "size must be an int"),
])
def test_bad_estimator_parameters_change_nothing(params, exc, match):
    from sklearn.base import clone

    from passage.sklearn import RNNClassifier
    clf = RNNClassifier(size=4, embedding_size=4, n_epochs=1, min_df=1, seed=0)
    clf.fit(TEXTS, [1, 0] * 12)
    model, classes = clf.model_, clf.classes_
    with pytest.raises(exc, match=match):
        clf.set_params(**params).fit(TEXTS, [1, 0] * 12)
    assert clf.model_ is model and clf.classes_ is classes
    with pytest.raises(exc, match=match):
        clone(clf).fit(TEXTS, [1, 0] * 12)


# -- LenFilter ------------------------------------------------------------------------------------
def test_len_filter_that_drops_everything_says_how_to_fix():
    with pytest.raises(ValueError, match="would drop all 3 sequences.*raise max_len"):
        LenFilter(max_len=2, percentile=0).filter([[1, 2, 3]] * 3, [0, 1, 0])
    assert LenFilter(max_len=2, percentile=0).filter([], []) == ([], [])
    with pytest.raises(TypeError, match="percentile must be a number"):
        LenFilter(percentile="99").filter([[1]], [0])
    m = tiny()
    before = snapshot(m)
    with pytest.raises(ValueError, match="would drop all"):
        m.fit(X16, Y16, len_filter=LenFilter(max_len=1, min_max_len=1))
    assert_unchanged(m, before)
    assert len(m.fit(X16, Y16, len_filter=Truncate(1))) > 0  # the fix it suggests


# -- property-based: any argument values either train or are refused cleanly ----------------------
ints = st.integers(-3, 20)
odd = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.text(max_size=2))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch_size=st.one_of(ints, odd), n_epochs=st.one_of(st.integers(-2, 2), odd),
       validation_split=st.one_of(st.floats(-0.5, 1.5), odd),
       patience=st.one_of(st.integers(-2, 2), odd),
       monitor=st.sampled_from(["cost", "accuracy", "roc_auc", "r2", "bogus", 3]),
       n=st.integers(1, 8), predict_batch=st.one_of(ints, odd))
def test_fit_and_predict_either_work_or_refuse_cleanly(batch_size, n_epochs, validation_split,
                                                       patience, monitor, n, predict_batch):
    m = tiny()
    before = snapshot(m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            costs = m.fit(X16[:n], Y16[:n], batch_size=batch_size, n_epochs=n_epochs,
                          validation_split=validation_split, patience=patience,
                          monitor=monitor)
        except (ValueError, TypeError) as e:
            assert str(e), "an error must say what is wrong"
            assert_unchanged(m, before)
            return
    assert m.fitted_ and len(costs) >= 1 and all(math.isfinite(c) for c in costs)
    before = snapshot(m)
    try:
        out = m.predict(X16, batch_size=predict_batch)
    except (ValueError, TypeError) as e:
        assert "batch_size" in str(e)
        assert_unchanged(m, before)
        return
    assert out.shape == (16, 1) and np.isfinite(out).all()
