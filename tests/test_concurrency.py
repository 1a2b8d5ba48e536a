"""Threads sharing one model: predict while fit trains it (passage.layers.inference)."""

import threading

import numpy as np
import torch
import torch.nn.functional as F
from test_distributed import synthetic

from passage.layers import Dense, Embedding, GatedRecurrent, inference, is_training
from passage.models import RNN


def dropout_model():
    return RNN([Embedding(8, 20), GatedRecurrent(8, p_drop=0.3), Dense(1, "sigmoid", p_drop=0.5)],
               "bce", verbose=0, seed=0)


def test_predict_in_two_threads_never_changes_the_mode_fit_trains_in(monkeypatch):
    X, Y = synthetic(400, 0)
    tX = X[:64]
    model = dropout_model()
    model.fit(X, Y, batch_size=16)  # fitted, so predict works from the start
    fit_thread: list[threading.Thread] = []
    dropout_calls: list[tuple[threading.Thread, bool]] = []  # (thread, flag) of every F.dropout
    batch_modes: list[bool] = []  # module.training at every training batch's loss
    real_dropout, real_loss = F.dropout, RNN.loss

    def spy_dropout(x, p=0.5, training=True, inplace=False):
        dropout_calls.append((threading.current_thread(), bool(training)))
        return real_dropout(x, p, training, inplace)

    def spy_loss(self, x, lengths, y, forward=None):
        if len(batch_modes) == 10:  # mid-training, both threads predict before this batch runs
            overlapped.wait(60)
        batch_modes.append(self.model.training)
        return real_loss(self, x, lengths, y, forward)

    monkeypatch.setattr(F, "dropout", spy_dropout)
    monkeypatch.setattr(RNN, "loss", spy_loss)
    fitting, stop, overlapped = threading.Event(), threading.Event(), threading.Event()
    during_fit = [0, 0]
    outputs: list[np.ndarray] = []
    errors: list[BaseException] = []

    def predict_loop(k):
        try:
            while not stop.is_set():
                was_fitting = fitting.is_set()
                out = model.predict(tX, batch_size=16)
                outputs.append(out)
                during_fit[k] += was_fitting and fitting.is_set()
                if min(during_fit) >= 1:
                    overlapped.set()
        except BaseException as e:  # reported below, not lost in the thread
            errors.append(e)

    def train():
        fit_thread.append(threading.current_thread())
        fitting.set()
        try:
            model.fit(X, Y, batch_size=16, n_epochs=3)
        except BaseException as e:
            errors.append(e)
        finally:
            fitting.clear()

    predictors = [threading.Thread(target=predict_loop, args=(k,)) for k in range(2)]
    for t in predictors:
        t.start()
    trainer = threading.Thread(target=train)
    trainer.start()
    trainer.join(120)
    stop.set()
    for t in predictors:
        t.join(60)
    assert not errors, errors
    assert min(during_fit) >= 1, during_fit  # both threads predicted while fit trained
    n_batches = 3 * -(-400 // 16)
    assert len(batch_modes) == n_batches and all(batch_modes)  # every batch in train mode
    fit_flags = [on for who, on in dropout_calls if who is fit_thread[0]]
    predict_flags = [on for who, on in dropout_calls if who is not fit_thread[0]]
    assert len(fit_flags) == 2 * n_batches and all(fit_flags)  # both dropouts, every batch
    assert len(predict_flags) >= sum(during_fit) and not any(predict_flags)  # never dropout
    for out in outputs:  # predictions made mid-training are still valid outputs
        assert out.shape == (64, 1) and np.isfinite(out).all()
        assert ((out > 0) & (out < 1)).all()
    np.testing.assert_array_equal(model.predict(tX), model.predict(tX))  # no dropout left on
    assert not model.model.training  # with no fit running, predict puts it in eval mode


def test_inference_is_per_thread():
    layer = Dense(2, p_drop=0.5)
    layer.connect(3)
    layer.train()
    seen = {}
    inside, checked = threading.Event(), threading.Event()

    def other():
        inside.wait(10)
        seen["other"] = is_training(layer)
        checked.set()

    t = threading.Thread(target=other)
    t.start()
    with inference():
        seen["inside"] = is_training(layer)
        inside.set()
        checked.wait(10)
        x = torch.ones(4, 3)
        assert torch.equal(layer(x, None)[0], layer(x, None)[0])  # no dropout in here
    t.join(10)
    assert seen == {"inside": False, "other": True} and is_training(layer)
    assert layer.training  # the module's mode itself never changed
