"""passage.activations: each activation against its formula in numpy, names, gate scales."""

import numpy as np
import pytest
import torch

from passage import activations
from passage.activations import ACTIVATIONS, GATE_SCALES, get

X = np.concatenate([np.linspace(-8, 8, 161), [-50.0, -6.0, -1.0, -0.5, 0.0, 0.5, 1.0, 5.0, 50.0]])


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


FORMULAS = {
    "linear": lambda x: x,
    "sigmoid": np_sigmoid,
    "steeper_sigmoid": lambda x: np_sigmoid(3.75 * x),
    "hard_sigmoid": lambda x: np.minimum(np.maximum(x + 0.5, 0.0), 1.0),
    "tanh": np.tanh,
    "hard_tanh": lambda x: np.minimum(np.maximum(x, -1.0), 1.0),
    "rectify": lambda x: (x + np.abs(x)) / 2.0,
    "relu": lambda x: np.where(x > 0, x, 0.0),
    "clipped_rectify": lambda x: np.minimum((x + np.abs(x)) / 2.0, 5.0),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
}


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_elementwise_activations_follow_their_formulas(name):
    x = torch.tensor(X, dtype=torch.float32)
    got = get(name)(x)
    assert got.dtype == torch.float32 and got.shape == x.shape
    expected = FORMULAS[name](X.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)
    # elementwise: the shape of the input does not matter
    grid = torch.tensor(X[:160].reshape(4, 5, 8), dtype=torch.float32)
    np.testing.assert_array_equal(get(name)(grid).numpy(), got[:160].numpy().reshape(4, 5, 8))


def test_every_registered_name_has_a_formula_here():
    assert set(ACTIVATIONS) == set(FORMULAS) | {"softmax"}


def np_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_softmax_normalises_the_last_axis_and_does_not_overflow():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(3, 4, 6)) * 5).astype(np.float32)
    x[0, 0] += 1000.0  # exp(1000) overflows: a softmax must subtract the max first
    got = get("softmax")(torch.from_numpy(x)).numpy()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, np_softmax(x.astype(np.float64)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-6)
    # adding a constant to every entry of a row does not change its softmax
    shifted = get("softmax")(torch.from_numpy(x[1:] + np.float32(7.0))).numpy()
    np.testing.assert_allclose(shifted, got[1:], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name, derivative", [
    ("sigmoid", lambda x: np_sigmoid(x) * (1 - np_sigmoid(x))),
    ("steeper_sigmoid", lambda x: 3.75 * np_sigmoid(3.75 * x) * (1 - np_sigmoid(3.75 * x))),
    ("tanh", lambda x: 1 - np.tanh(x) ** 2),
    ("elu", lambda x: np.where(x > 0, 1.0, np.exp(np.minimum(x, 0.0)))),
    ("hard_sigmoid", lambda x: ((x > -0.5) & (x < 0.5)).astype(float)),
    ("clipped_rectify", lambda x: ((x > 0) & (x < 5)).astype(float)),
])
def test_gradients_follow_the_derivatives(name, derivative):
    x0 = np.array([-3.0, -0.7, -0.2, 0.3, 0.9, 2.5, 4.0, 6.0])  # away from the kinks
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    get(name)(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), derivative(x0), rtol=1e-10, atol=1e-12)


def test_gate_scales_name_sigmoids_of_a_scaled_input():
    # what the fused recurrent kernels rely on: the gate is sigmoid(scale * x)
    x = torch.linspace(-4, 4, 81)
    for name, scale in GATE_SCALES.items():
        assert name in ACTIVATIONS
        torch.testing.assert_close(get(name)(x), torch.sigmoid(scale * x), rtol=0, atol=0)
    assert "tanh" not in GATE_SCALES and "hard_sigmoid" not in GATE_SCALES


def test_names_are_case_insensitive_and_relu_is_rectify():
    assert get("TANH") is activations.tanh and get("Steeper_Sigmoid") is activations.steeper_sigmoid
    assert get("relu") is get("ReLU") is activations.rectify is activations.relu


def test_an_unknown_or_non_string_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown activation 'swish'; valid names: .*tanh"):
        get("swish")
    with pytest.raises(ValueError) as info:
        get("swish")
    listed = str(info.value).split("valid names: ", 1)[1].split(", ")
    for name in listed:
        assert get(name) is ACTIVATIONS[name]  # every name the message offers works
    with pytest.raises(TypeError, match=r"activation must be a name \(str\), got function"):
        get(activations.tanh)
