"""Training safety: class weights, NaN stops with good weights kept, progress display."""

import numpy as np
import pytest
import torch

from passage import costs
from passage.layers import Dense, Embedding, GatedRecurrent, LstmRecurrent
from passage.models import RNN
from passage.updates import Adam


def imbalanced_model():
    return RNN([Embedding(4, 10), GatedRecurrent(4), Dense(1, "sigmoid")], "bce",
               updater=Adam(lr=3e-2), verbose=0, seed=0)


def test_balanced_class_weight_shifts_predictions():
    # Inputs carry no signal, 10% positives: the plain model predicts the base rate ~0.1; with
    # balanced weights both classes count the same and it predicts ~0.5.
    X, Y = [[3, 4]] * 100, [1] * 10 + [0] * 90
    plain = imbalanced_model()
    plain.fit(X, Y, n_epochs=30)
    weighted = imbalanced_model()
    weighted.fit(X, Y, n_epochs=30, class_weight="balanced")
    assert abs(plain.predict([[3, 4]])[0, 0] - 0.1) < 0.05
    assert abs(weighted.predict([[3, 4]])[0, 0] - 0.5) < 0.05
    strong = imbalanced_model()
    strong.fit(X, Y, n_epochs=30, class_weight={1: 27.0})  # odds 10/90 * 27 = 3 -> p = 0.75
    assert abs(strong.predict([[3, 4]])[0, 0] - 0.75) < 0.05


@pytest.mark.parametrize("logits", [True, False])
def test_class_weighted_cce_matches_manual(logits):
    torch.manual_seed(0)
    z = torch.randn(6, 3)
    y = torch.tensor([0, 2, 1, 2, 2, 0])
    w = torch.tensor([1.0, 2.0, 0.5])
    out = z if logits else torch.softmax(z, -1)
    got = costs.class_weighted(costs.CategoricalCrossEntropy, w, logits=logits)(y, out)
    manual = (-torch.log_softmax(z, -1)[torch.arange(6), y] * w[y]).mean()
    assert torch.allclose(got, manual, atol=1e-6)
    onehot = torch.eye(3)[y]  # probability rows weigh the same as indices
    got_rows = costs.class_weighted(costs.CategoricalCrossEntropy, w, logits=logits)(onehot, out)
    assert torch.allclose(got_rows, manual, atol=1e-6)


@pytest.mark.parametrize("weight, match", [
    ("even", "'balanced' or a dict"),
    ({5: 1.0}, "not a class index 0..1"),
    ({1: -2.0}, "must be >= 0"),
    ([1.0, 2.0], "must be 'balanced' or a dict"),
])
def test_bad_class_weight(weight, match):
    with pytest.raises((ValueError, TypeError), match=match):
        imbalanced_model().fit([[3], [4]], [0, 1], class_weight=weight)


def test_class_weight_needs_a_classifier():
    m = RNN([Embedding(4, 10), GatedRecurrent(4), Dense(1, "linear")], "mse", verbose=0)
    with pytest.raises(ValueError, match="class_weight needs a classifier"):
        m.fit([[3], [4]], [0.5, 1.5], class_weight="balanced")


def test_nan_cost_stops_names_batch_and_keeps_last_good_weights(tmp_path):
    broken = {"on": False}

    def cost(y, p):
        loss = ((p - y) ** 2).mean()
        return loss * float("nan") if broken["on"] else loss

    m = RNN([Embedding(4, 10), GatedRecurrent(4), Dense(1, "linear")], cost, verbose=0,
            seed=0)
    X, Y = [[3, 4], [5], [6, 7, 8]] * 10, [0.0, 1.0, 2.0] * 10
    ckpt = str(tmp_path / "run.ckpt")
    m.fit(X, Y, n_epochs=1, checkpoint=ckpt)
    before = m.predict(X)
    broken["on"] = True
    with pytest.raises(FloatingPointError,
                       match=r"epoch 2, batch 1.*restored.*last good checkpoint is .*run\.ckpt"):
        m.fit(X, Y, n_epochs=2, checkpoint=ckpt, resume=True)
    assert np.array_equal(m.predict(X), before)  # the model still works; weights not NaN


def test_progress_bar_shows_epoch_cost_and_rate(capsys):
    m = RNN([Embedding(4, 10), GatedRecurrent(4), Dense(1, "sigmoid")], "bce", verbose=2,
            seed=0)
    m.fit([[3, 4], [5]] * 40, [1, 0] * 40, n_epochs=1, batch_size=8)
    out, err = capsys.readouterr()
    assert "Epoch 1/1" in err and "tok/s" in err and "ex/s" in err  # the live bar (stderr)
    assert "Epoch 1/1 cost" in out  # the epoch's log line
    quiet = RNN([Embedding(4, 10), GatedRecurrent(4), Dense(1, "sigmoid")], "bce", verbose=0)
    quiet.fit([[3, 4], [5]], [1, 0])
    assert capsys.readouterr() == ("", "")


def test_patience_zero_stops_at_the_first_epoch_without_improvement():
    m = RNN([Embedding(4, 10), GatedRecurrent(4), Dense(1, "sigmoid")], "bce", verbose=0,
            seed=0)
    X, Y = [[3, 4], [5]] * 20, [1, 0] * 20
    m.fit(X, Y, n_epochs=3, validation_data=(X, Y), patience=0)
    assert len(m.history_) >= 1  # trains; stops only after an epoch that did not improve
    costs = [h["val_cost"] for h in m.history_]
    assert all(b < a for a, b in zip(costs[:-2], costs[1:-1], strict=False))


def test_linear_lr_schedule_reaches_zero():
    m = RNN([Embedding(4, 10), GatedRecurrent(4), Dense(1, "sigmoid")], "bce",
            updater=Adam(lr=0.01), verbose=0, seed=0)
    seen = []
    step = m.updater.step

    def spy(params):
        if m.updater.optimizer is not None:
            seen.append(m.updater.optimizer.param_groups[0]["lr"])
        return step(params)

    m.updater.step = spy
    m.fit([[3, 4], [5]] * 32, [1, 0] * 32, n_epochs=2, batch_size=16, lr_schedule="linear")
    assert len(seen) == 7  # 8 steps; the optimizer exists from the second one
    np.testing.assert_allclose(seen, [0.01 * (1 - k / 8) for k in range(1, 8)], rtol=1e-6)
    with pytest.raises(ValueError, match="lr_schedule must be"):
        m.fit([[3]], [1], lr_schedule="cosine")


# -- mixed precision ---------------------------------------------------------------------------
def _ids_task(n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = [rng.integers(3, 50, rng.integers(5, 40)).tolist() for _ in range(n)]
    return X, np.array([int(7 in x) for x in X])


LOW = {"bf16": torch.bfloat16, "fp16": torch.float16}


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("layers", [
    lambda: [Embedding(16, 50), GatedRecurrent(16, pool="max", direction="bi"),
             Dense(1, "sigmoid")],
    lambda: [Embedding(16, 50), LstmRecurrent(16), GatedRecurrent(16, truncate_gradient=7),
             Dense(1, "sigmoid")],
])
def test_mixed_precision_loss_and_gradients_follow_fp32(layers, precision, kernel_dtypes):
    seen = kernel_dtypes
    X, Y = _ids_task(64)
    model = RNN(layers(), "bce", verbose=0, seed=0, precision=precision)
    x, lengths, _ = model._batch(X, np.arange(64))
    y = torch.tensor(Y, dtype=torch.float32)[:, None]
    out = {}
    for run in ("fp32", precision):
        model.precision = run
        model.model.zero_grad()
        seen.clear()
        loss = model.loss(x, lengths, y)
        loss.backward()
        assert loss.dtype == torch.float32
        assert set(seen) == {LOW.get(run, torch.float32)}
        out[run] = loss.item(), torch.cat([p.grad.ravel() for p in model.params])
    (l32, g32), (l16, g16) = out["fp32"], out[precision]
    assert abs(l16 - l32) < 1e-2
    assert ((g16 - g32).norm() / g32.norm()).item() < 3e-2  # bfloat16 keeps ~3 digits
    assert all(p.dtype == torch.float32 for p in model.params)  # master weights stay fp32


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_model_learns_and_saves_its_precision(tmp_path, precision):
    from passage.io import load, save

    X, Y = _ids_task()
    model = RNN([Embedding(32, 50), GatedRecurrent(32, pool="max"), Dense(1, "sigmoid")], "bce",
                updater=Adam(lr=1e-2), verbose=0, seed=0, precision=precision)
    model.fit(X, Y, n_epochs=10)
    assert np.mean((model.predict(X)[:, 0] > 0.5) == Y) > 0.95
    save(model, tmp_path / "m.passage")
    again = load(tmp_path / "m.passage")
    assert again.precision == precision
    np.testing.assert_array_equal(again.predict(X[:50]), model.predict(X[:50]))


def test_bad_precision_says_what_is_allowed():
    for bad in ("half", ["bf16"]):
        with pytest.raises(ValueError, match="precision must be one of 'fp32', 'bf16', 'fp16'"):
            RNN([Embedding(4, 10), GatedRecurrent(4), Dense(1, "sigmoid")], "bce", precision=bad)


def test_bf16_output_activation_runs_in_float32():
    # a bfloat16 sigmoid of 7 is exactly 1.0 (zero gradient); the Dense computes it in float32
    model = RNN([Embedding(4, 10), GatedRecurrent(4), Dense(1, "sigmoid")], "mse", verbose=0,
                seed=0, precision="bf16")
    with torch.no_grad():
        model.layers[-1].w.zero_()
        model.layers[-1].b.fill_(7.0)
    x, lengths, _ = model._batch([[3, 4, 5]], np.arange(1))
    model.model.train()
    with model.autocast():
        out = model.model(x, lengths)
    assert out.dtype == torch.float32 and 0.99 < out.item() < 1.0
    loss = model.loss(x, lengths, torch.zeros(1, 1))
    loss.backward()
    assert model.layers[-1].b.grad.abs().item() > 1e-4


def test_fp16_step_with_overflowing_gradients_is_skipped_and_the_scale_halved():
    from passage.updates import LossScale

    X, Y = _ids_task(64)
    model = RNN([Embedding(8, 50), GatedRecurrent(8), Dense(1, "sigmoid")], "bce", verbose=0,
                seed=0, precision="fp16")
    before = [p.detach().clone() for p in model.params]
    model._loss_scale = LossScale(scale=2.0 ** 100)  # the scaled gradients overflow float16
    model.fit(X, Y, n_epochs=1, batch_size=64)
    assert model._loss_scale.scale == 2.0 ** 99
    assert all(torch.equal(a, p) for a, p in zip(before, model.params, strict=True))
    model._loss_scale.scale = 1024.0  # a scale that fits: this step is taken
    model.fit(X, Y, n_epochs=1, batch_size=64)
    assert not all(torch.equal(a, p) for a, p in zip(before, model.params, strict=True))


def test_loss_scale_grows_after_good_steps_and_unscales_exactly():
    from passage.updates import LossScale

    scaler = LossScale(scale=4.0, interval=2)
    w = torch.ones(3, requires_grad=True)
    for expected in (4.0, 4.0, 8.0):  # doubles after 2 good steps
        assert scaler.scale == expected
        w.grad = None
        scaler.backward((w * torch.tensor([1.0, 2.0, 3.0])).sum())
        assert scaler.unscale([w])
        assert w.grad.tolist() == [1.0, 2.0, 3.0]
    assert scaler.scale == 8.0 and scaler.good_steps == 1
