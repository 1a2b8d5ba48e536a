"""passage.layers (the public front) and passage.basic_layers: configs, the 2015 weights=
argument, what each non-recurrent layer computes. The recurrent layers: tests/test_recurrent.py."""

import numpy as np
import pytest
import torch

import passage.layers as layers
from passage import basic_layers, recurrent_layers
from passage.layers import (
    LAYERS,
    AdaptiveSoftmax,
    Dense,
    Embedding,
    FeatureEmbedding,
    GatedRecurrent,
    Generic,
    Layer,
    OneHot,
    output_size,
    register,
)

EXAMPLES = {  # a layer of each kind and the input size it connects to
    "Embedding": (Embedding(size=4, n_features=9), 0),
    "FeatureEmbedding": (FeatureEmbedding(size=3, n_features=9, n_slots=2), 0),
    "OneHot": (OneHot(n_features=6), 0),
    "Generic": (Generic(size=5), 0),
    "Dense": (Dense(size=3, activation="tanh", p_drop=0.1), 5),
    "AdaptiveSoftmax": (AdaptiveSoftmax(size=20, cutoffs=(5, 10)), 32),
    "SimpleRecurrent": (layers.SimpleRecurrent(size=3, direction="bi"), 4),
    "GatedRecurrent": (GatedRecurrent(size=3, pool="max"), 4),
    "LstmRecurrent": (layers.LstmRecurrent(size=3, direction="backward"), 4),
}


def test_the_2015_names_are_the_engines_classes():
    assert set(LAYERS) == set(EXAMPLES)
    for name in layers.__all__:
        assert hasattr(layers, name), name
    assert layers.GatedRecurrent is recurrent_layers.GatedRecurrent
    assert layers.Dense is basic_layers.Dense
    assert all(issubclass(cls, Layer) for cls in LAYERS.values())


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_layer_rebuilds_from_its_config(name):
    layer, n_in = EXAMPLES[name]
    config = layer.get_config()
    again = LAYERS[name](**config)
    assert again.get_config() == config
    layer.connect(n_in)
    again.connect(n_in)
    shapes = [tuple(p.shape) for p in layer.parameters()]
    assert shapes == [tuple(p.shape) for p in again.parameters()]
    assert output_size(again) == output_size(layer) > 0


def test_weights_are_copied_in_parameter_order_and_checked():
    table = np.arange(12, dtype=np.float32).reshape(3, 4)
    emb = Embedding(size=4, n_features=3, weights=[table])
    emb.connect()
    np.testing.assert_array_equal(emb.weight.detach().numpy(), table)
    dense = Dense(size=2, activation="linear", weights=[np.ones((2, 3)), np.array([1.0, -1.0])])
    dense.connect(3)
    out, _ = dense(torch.ones(1, 3), None)
    np.testing.assert_allclose(out.detach().numpy(), [[4.0, 2.0]])
    with pytest.raises(ValueError, match="has 2 weight arrays, but weights= gives 1"):
        Dense(size=2, weights=[np.ones((2, 3))]).connect(3)
    with pytest.raises(ValueError, match="shape"):
        Embedding(size=4, n_features=3, weights=[np.ones((4, 4))]).connect()


def test_what_the_input_layers_give():
    ids = torch.tensor([[1, 2, 0]])
    out, lengths = OneHot(n_features=4)(ids, torch.tensor([3]))
    np.testing.assert_array_equal(out[0].numpy(), np.eye(4)[[1, 2, 0]])
    assert lengths.tolist() == [3]
    x = torch.randn(2, 3, 5)
    assert Generic(size=5)(x, None)[0] is x
    feat = FeatureEmbedding(size=2, n_features=7, n_slots=3)
    feat.connect()
    out, _ = feat(torch.tensor([[[1, 2, 3]]]), torch.tensor([1]))
    want = torch.cat([feat.weight[1], feat.weight[2], feat.weight[3]])
    torch.testing.assert_close(out[0, 0], want)
    with pytest.raises(ValueError, match=r"takes \(examples, steps, 3\) ids"):
        feat(torch.tensor([[1, 2]]), torch.tensor([2]))


def test_dense_applies_its_activation_per_step_and_keeps_pre_activations():
    dense = Dense(size=3, activation="sigmoid")
    dense.connect(4)
    x = torch.randn(2, 5, 4)
    out, _ = dense(x, torch.tensor([5, 5]))
    pre, _ = dense(x, torch.tensor([5, 5]), pre_act=True)
    assert out.shape == (2, 5, 3)
    torch.testing.assert_close(out, torch.sigmoid(pre))


def test_a_frozen_embedding_keeps_its_weights_through_training():
    from passage.models import RNN

    emb = Embedding(size=4, n_features=10, trainable=False)
    model = RNN([emb, GatedRecurrent(size=4), Dense(1, "sigmoid")], "bce", verbose=0, seed=0)
    before = emb.weight.detach().clone()
    model.fit([[1, 2, 3], [4, 5]] * 8, [1, 0] * 8, n_epochs=2)
    assert not emb.weight.requires_grad
    assert torch.equal(emb.weight.detach(), before)


def test_register_makes_a_layer_of_your_own_loadable_by_name(tmp_path):
    from passage.io import load, save
    from passage.models import RNN

    @register
    class Doubler(Layer):
        def __init__(self, size: int = 4):
            super().__init__()
            self.size = size

        def forward(self, x, lengths):
            return 2 * x, lengths

    try:
        model = RNN([Embedding(size=4, n_features=10), Doubler(4), GatedRecurrent(size=3),
                     Dense(1, "sigmoid")], "bce", verbose=0, seed=0)
        model.fit([[1, 2, 3], [4, 5]] * 4, [1, 0] * 4)
        save(model, tmp_path / "m.passage")
        again = load(tmp_path / "m.passage")
        assert type(again.layers[1]).__name__ == "Doubler"
        np.testing.assert_allclose(again.predict([[1, 2, 3]]), model.predict([[1, 2, 3]]),
                                   rtol=1e-6)
    finally:
        del LAYERS["Doubler"]
