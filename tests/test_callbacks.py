"""The shared training loop (passage.training): callbacks, their order, stopping, refusals."""

import numpy as np
import pytest
import torch

from passage import NotFittedError
from passage.layers import Dense, Embedding, GatedRecurrent
from passage.lm import LanguageModel
from passage.models import RNN
from passage.tagging import Tagger
from passage.training import Callback, EarlyStopping, Run, train
from passage.updates import Adam

X = [[3, 4, 5], [6, 7], [3, 3], [8, 9, 9, 9]] * 10
Y = [1, 0, 1, 0] * 10


def small_model(**kw):
    return RNN([Embedding(8, 10), GatedRecurrent(8), Dense(1, "sigmoid")], "bce",
               updater=Adam(lr=1e-2), verbose=0, seed=0, **kw)


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, run):
        self.calls.append(("train_begin", run.epoch))

    def on_epoch_begin(self, run, epoch):
        self.calls.append(("epoch_begin", epoch))

    def on_batch_begin(self, run, batch):
        self.calls.append(("batch_begin", batch))

    def on_batch_end(self, run, batch, logs):
        assert set(logs) == {"cost", "examples", "tokens"} and logs["examples"] > 0
        self.calls.append(("batch_end", batch))

    def on_epoch_end(self, run, epoch, record):
        self.calls.append(("epoch_end", epoch, sorted(k for k in record if k.startswith("val_"))))

    def on_train_end(self, run):
        self.calls.append(("train_end", run.epoch))


def test_user_callback_sees_every_hook_in_order():
    rec, model = Recorder(), small_model()
    costs = model.fit(X, Y, n_epochs=2, batch_size=8, validation_split=0.25, callbacks=[rec])
    kinds = [c[0] for c in rec.calls]
    assert kinds[0] == "train_begin" and kinds[-1] == "train_end"
    assert kinds.count("epoch_begin") == kinds.count("epoch_end") == 2
    assert kinds.count("batch_end") == kinds.count("batch_begin") == len(costs)
    ends = [c for c in rec.calls if c[0] == "epoch_end"]
    assert ends[0][1] == 0 and "val_accuracy" in ends[0][2] and "val_cost" in ends[0][2]
    # every batch_begin is followed by its batch_end, numbered from 0 in each epoch
    batches = [c for c in rec.calls if c[0] in ("batch_begin", "batch_end")]
    assert batches[:2] == [("batch_begin", 0), ("batch_end", 0)]


def test_a_callback_can_stop_training():
    class StopAfterOne(Callback):
        def on_epoch_end(self, run, epoch, record):
            run.stop = True

    model = small_model()
    model.fit(X, Y, n_epochs=5, callbacks=[StopAfterOne()])
    assert len(model.history_) == 1 and model.fitted_


def test_callbacks_are_checked_before_anything_changes():
    model = small_model()
    before = {k: v.clone() for k, v in model.model.state_dict().items()}
    with pytest.raises(TypeError, match="callbacks must be a list"):
        model.fit(X, Y, callbacks=Recorder())
    with pytest.raises(TypeError, match=r"callbacks\[1\] is a function"):
        model.fit(X, Y, callbacks=[Recorder(), lambda run: None])
    assert not model.fitted_
    assert all(torch.equal(v, before[k]) for k, v in model.model.state_dict().items())


def test_early_stopping_restores_the_best_epoch_in_the_loop():
    # A loop of its own: the "validation score" is scripted, so the best epoch is known.
    model = small_model()
    scores = iter([0.5, 0.9, 0.7, 0.6])
    marks = []

    def epoch_step(run, epoch):
        with torch.no_grad():
            model.layers[-1].w.fill_(float(epoch))  # the epoch, readable from the weights
        marks.append(epoch)
        return {"cost": 1.0, "seconds": 0.0}

    run = Run(model, 10, [EarlyStopping("accuracy", patience=2)],
              validate=lambda: {"accuracy": next(scores), "cost": 1.0})
    train(run, epoch_step)
    assert marks == [0, 1, 2, 3]  # stopped two epochs after the best
    assert model.best_epoch_ == 2
    assert float(model.layers[-1].w.detach().flatten()[0]) == 1.0  # epoch 1's weights are back


def test_nan_in_a_user_epoch_restores_weights_and_gives_callback_advice():
    model = small_model()
    model.fit(X, Y, n_epochs=1)
    good = {k: v.clone() for k, v in model.model.state_dict().items()}

    class Advice(Callback):
        def on_failure(self, run, error):
            return "; try again"

    def epoch_step(run, epoch):
        with torch.no_grad():
            model.layers[-1].w.fill_(float("nan"))
        raise FloatingPointError("the cost became nan")

    with pytest.raises(FloatingPointError, match="restored; try again"):
        train(Run(model, 1, [Advice()]), epoch_step)
    assert all(torch.equal(v, good[k]) for k, v in model.model.state_dict().items())


def test_language_model_fit_lines_up_with_rnn_fit_and_takes_callbacks():
    lm = LanguageModel([Embedding(8, 12), GatedRecurrent(8), Dense(12, "softmax")], verbose=0,
                       seed=0, seq_len=4)
    stream = [list(np.random.default_rng(0).integers(3, 12, size=30)) for _ in range(4)]
    with pytest.raises(TypeError, match="takes no labels"):
        lm.fit(stream, 3)  # an old fit(X, n_epochs) call: refused, not batch_size 3
    rec = Recorder()
    costs = lm.fit(stream, None, 2, 2, callbacks=[rec])  # X, Y, batch_size, n_epochs
    assert len(lm.history_) == 2
    assert [c[0] for c in rec.calls].count("batch_end") == len(costs)


def test_tagger_passes_callbacks_to_its_model():
    rec = Recorder()
    tagger = Tagger(size=8, embedding_size=8, n_epochs=2, verbose=0, seed=0)
    tagger.fit([["the", "cat"], ["a", "dog"]] * 4, [["DET", "NOUN"]] * 8, callbacks=[rec])
    assert [c[0] for c in rec.calls].count("epoch_end") == 2


def test_one_not_fitted_error():
    lm = LanguageModel([Embedding(8, 12), GatedRecurrent(8), Dense(12, "softmax")], verbose=0)
    for call in (lambda: small_model().predict(X), lambda: lm.generate([3], 2),
                 lambda: Tagger().predict([["a"]])):
        with pytest.raises(NotFittedError, match="fit"):
            call()
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)
