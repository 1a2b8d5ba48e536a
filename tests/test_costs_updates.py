import numpy as np
import pytest
import torch

from passage import costs, updates

rng = np.random.default_rng(0)
P = rng.uniform(0.05, 0.95, size=(6, 3))
P3 = P / P.sum(1, keepdims=True)
Yb = rng.integers(0, 2, size=(6, 3)).astype(float)
Yr = rng.normal(size=(6, 3))

REFERENCE = {  # numpy formulas written independently of the torch code
    "bce": (Yb, P, lambda y, p: np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)))),
    "cce": (np.eye(3)[[0, 2, 1, 1, 0, 2]], P3, lambda y, p: np.mean(-(y * np.log(p)).sum(1))),
    "mse": (Yr, P, lambda y, p: np.mean((y - p) ** 2)),
    "mae": (Yr, P, lambda y, p: np.mean(np.abs(y - p))),
    "Hinge": (2 * Yb - 1, Yr, lambda y, p: np.mean(np.maximum(0, 1 - y * p))),
    "SquaredHinge": (2 * Yb - 1, Yr, lambda y, p: np.mean(np.maximum(0, 1 - y * p) ** 2)),
}


@pytest.mark.parametrize("name", list(REFERENCE))
def test_cost_matches_numpy(name):
    y, p, ref = REFERENCE[name]
    got = costs.get(name.upper())(torch.tensor(y), torch.tensor(p))
    assert float(got) == pytest.approx(ref(y, p), rel=1e-9)


def test_cce_integer_labels_and_logit_costs_agree():
    z = torch.randn(6, 3, dtype=torch.float64)
    k = torch.tensor([0, 2, 1, 1, 0, 2])
    plain = costs.cce(k, torch.softmax(z, -1))
    assert float(plain) == pytest.approx(float(costs.cce(torch.eye(3)[k].double(),
                                                         torch.softmax(z, -1))))
    assert float(costs.logits_cost(costs.cce, "softmax")(k, z)) == pytest.approx(float(plain))
    y = torch.tensor(Yb)
    assert float(costs.logits_cost(costs.bce, "sigmoid")(y, z)) == pytest.approx(
        float(costs.bce(y, torch.sigmoid(z))), rel=1e-6)


def test_unknown_cost_lists_names():
    with pytest.raises(ValueError, match="valid names: .*BinaryCrossEntropy"):
        costs.get("crossent")


def _problem():
    torch.manual_seed(0)
    X, w_true = torch.randn(64, 5), torch.randn(5, 1)
    return X, X @ w_true


@pytest.mark.parametrize("name", list(updates.UPDATERS))
def test_every_updater_lowers_the_loss(name):
    X, y = _problem()
    w = torch.nn.Parameter(torch.zeros(5, 1))
    cls = updates.UPDATERS[name]
    opt = cls(lr=max(cls.defaults["lr"], 0.05))  # Adam's 2015 default (2e-4) is slow here
    start = ((X @ w - y) ** 2).mean().item()
    for _ in range(300):
        ((X @ w - y) ** 2).mean().backward()
        opt.step([w])
    assert ((X @ w - y) ** 2).mean().item() < 0.8 * start


def test_adam_b1_b2_mean_one_minus_beta():
    X, y = _problem()
    w1, w2 = torch.nn.Parameter(torch.zeros(5, 1)), torch.nn.Parameter(torch.zeros(5, 1))
    ours = updates.Adam(lr=0.01, b1=0.2, b2=0.01, clipnorm=0)
    ref = torch.optim.Adam([w2], lr=0.01, betas=(0.8, 0.99), eps=1e-8)
    for _ in range(20):
        ((X @ w1 - y) ** 2).mean().backward()
        ours.step([w1])
        ref.zero_grad()
        ((X @ w2 - y) ** 2).mean().backward()
        ref.step()
    torch.testing.assert_close(w1, w2)


def test_clipnorm_and_regularizer():
    w = torch.nn.Parameter(torch.ones(2, 2))
    opt = updates.SGD(lr=1.0, clipnorm=1.0)
    (w.sum() * 100).backward()
    assert opt.step([w]) == pytest.approx(200.0)  # norm before clipping
    torch.testing.assert_close(w.detach(), torch.full((2, 2), 0.5))  # step of norm 1
    w = torch.nn.Parameter(torch.full((2, 3), 3.0))
    opt = updates.SGD(lr=1e-12, regularizer=updates.Regularizer(maxnorm=1.0))
    w.sum().backward()
    opt.step([w])
    torch.testing.assert_close(w.norm(dim=1), torch.ones(2), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("lr", [0, 0.0, -1e-3, float("nan"), float("inf")])
def test_a_learning_rate_that_cannot_train_is_refused(lr):
    with pytest.raises(ValueError, match=r"Adam\(lr=\.\.\.\) must be a finite number in \(0, "):
        updates.Adam(lr=lr)
    with pytest.raises(TypeError, match="must be a number"):
        updates.SGD(lr="fast")


def test_clipping_is_on_by_default():
    w = torch.nn.Parameter(torch.zeros(4))
    (w * 100.0).sum().backward()
    updates.SGD(lr=1.0).step([w])
    assert w.norm().item() == pytest.approx(1.0)
