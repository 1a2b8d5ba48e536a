"""The one text-model recipe (passage.recipe / passage.options): its defaults shared by the
command line and the sklearn estimators, its validation split and monitor, and ``passage train
--baseline`` (the precision 'auto' picks: test_precision.py)."""

import argparse
import dataclasses

import numpy as np
import pytest

from passage.cli import build_parser, main
from passage.options import MIN_FOR_METRIC, TextModelOptions
from passage.recipe import fit_text_model, validation_indices

WORDS = {"pos": ["good", "great", "fun"], "neg": ["bad", "awful", "dull"]}
FILLER = "the a film plot was it and".split()


def corpus(n=200, seed=0):
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        words = list(rng.choice(FILLER, 4)) + [str(rng.choice(WORDS[label]))]
        texts.append(" ".join(rng.permutation(words)))
        labels.append(label)
    return texts, labels


def _train_option_defaults() -> dict:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    train = sub.choices["train"]
    return {a.dest: a.default for a in train._actions}


def test_the_command_line_takes_its_defaults_from_the_recipe():
    cli = _train_option_defaults()
    d = TextModelOptions()
    renamed = {"n_epochs": "epochs"}
    for field in dataclasses.fields(TextModelOptions):
        dest = renamed.get(field.name, field.name)
        if dest in cli and field.name not in ("seed", "verbose"):
            assert cli[dest] == getattr(d, field.name), field.name


def test_the_sklearn_estimators_take_their_defaults_from_the_recipe():
    pytest.importorskip("sklearn")
    from passage.sklearn import RNNClassifier, RNNRegressor

    d = TextModelOptions()
    for cls in (RNNClassifier, RNNRegressor):
        params = cls().get_params()
        for field in dataclasses.fields(TextModelOptions):
            if field.name in params and field.name != "seed":
                assert params[field.name] == getattr(d, field.name), (cls, field.name)


def test_validation_indices_split_every_text_once_and_repeat_with_the_seed():
    options = TextModelOptions(validation_split=0.25, seed=3)
    train, val = validation_indices(100, options)
    assert len(val) == 25 and sorted(np.concatenate([train, val]).tolist()) == list(range(100))
    again = validation_indices(100, options)
    assert np.array_equal(again[1], val)
    assert not np.array_equal(validation_indices(100, options.updated(seed=4))[1], val)
    assert validation_indices(10, options) is None  # too few texts to hold any out
    assert validation_indices(100, options.updated(validation_split=0.0)) is None


def test_the_vocabulary_comes_from_the_training_part_only():
    texts, labels = corpus(60)
    texts = [t + (f" rareword{i}" if i < 60 else "") for i, t in enumerate(texts)]
    options = TextModelOptions(size=4, embedding_size=4, n_epochs=1, min_df=1,
                               validation_split=0.5, seed=0, refit=False)
    model = fit_text_model(texts, labels, options=options)
    _, val = validation_indices(len(texts), options)
    for i in val:  # a word seen only in a held-out text has no id of its own
        assert f"rareword{i}" not in model.tokenizer.encoder
    # refit: once validation has chosen, every text's words get ids
    model = fit_text_model(texts, labels, options=options.updated(refit=True))
    assert all(f"rareword{i}" in model.tokenizer.encoder for i in val)
    assert model.refit_ == {"texts": 60, "epochs": 1}
    assert model.validation_outputs_.shape == (len(val), 1)


@pytest.mark.parametrize("n,expected", [(MIN_FOR_METRIC * 10, "accuracy"),
                                        (MIN_FOR_METRIC * 10 - 20, "cost")])
def test_auto_monitor_is_the_metric_unless_the_validation_split_is_small(n, expected):
    texts, labels = corpus(n)
    model = fit_text_model(texts, labels, options=TextModelOptions(
        size=4, embedding_size=4, n_epochs=1, min_df=1, validation_split=0.1))
    assert model.monitor_ == expected
    assert model.best_epoch_ == 1


def test_a_metric_tie_goes_to_the_lower_validation_cost():
    from passage.layers import Dense, Embedding, GatedRecurrent
    from passage.models import RNN

    X = [[3, 4], [4, 3]] * 20
    y = np.array([0, 1] * 20)
    model = RNN([Embedding(4, 6), GatedRecurrent(4), Dense(1, "sigmoid")], "bce", verbose=0,
                seed=0)
    # every epoch reaches accuracy 1 on this validation set: the cost decides which is kept
    model.fit(X, y, n_epochs=12, validation_data=(X, y), monitor="accuracy", patience=None)
    history = model.history_
    perfect = [h for h in history if h["val_accuracy"] == 1.0]
    if len(perfect) >= 2:
        kept = history[model.best_epoch_ - 1]
        assert kept["val_cost"] == min(h["val_cost"] for h in perfect)


def _write_csv(path, texts, labels):
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(zip(texts, labels, strict=True))


def test_train_baseline_prints_both_scores_on_the_same_split(tmp_path, capsys):
    pytest.importorskip("sklearn")
    texts, labels = corpus(200)
    _write_csv(tmp_path / "d.csv", texts, labels)
    code = main(["train", str(tmp_path / "d.csv"), "--out", str(tmp_path / "m.passage"),
                 "--size", "8", "--embedding-size", "8", "--epochs", "2", "--min-df", "1",
                 "--baseline", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "validation accuracy on 20 held-out texts" in out
    rnn = float(out.split("rnn", 1)[1].split()[0])
    linear = float(out.split("tfidf+logreg", 1)[1].split()[0])
    assert 0 <= rnn <= 1 and 0 <= linear <= 1
    assert ("the linear model wins" in out) == (linear > rnn)
    assert ("the RNN wins" in out) == (rnn > linear)


def test_train_baseline_without_a_validation_split_is_refused_before_training(tmp_path, capsys):
    texts, labels = corpus(40)
    _write_csv(tmp_path / "d.csv", texts, labels)
    code = main(["train", str(tmp_path / "d.csv"), "--out", str(tmp_path / "m.passage"),
                 "--baseline", "--validation-split", "0"])
    assert code != 0
    assert "--validation-split" in capsys.readouterr().err
    assert not (tmp_path / "m.passage").exists()
