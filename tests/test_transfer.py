"""Transfer: the classifier starts from the language model's weights, and can be frozen."""

import numpy as np
import pytest
import torch

from passage.layers import AdaptiveSoftmax, Dense, Embedding, GatedRecurrent, LstmRecurrent
from passage.lm import LanguageModel
from passage.transfer import from_language_model, unfreeze


def pretrained(output=None):
    lm = LanguageModel([Embedding(8, 20), LstmRecurrent(12), GatedRecurrent(10),
                        output or Dense(20, "softmax")], verbose=0, seed=0, seq_len=6)
    rng = np.random.default_rng(0)
    lm.fit([list(rng.integers(3, 20, size=12)) for _ in range(30)], batch_size=4)
    return lm


@pytest.mark.parametrize("output", [None, lambda: AdaptiveSoftmax(20, (8,), div_value=2.0)])
def test_copies_the_right_weights(output):
    lm = pretrained(output and output())
    clf = from_language_model(lm, [Dense(3, "softmax")], "cce", verbose=0, seed=1)
    assert len(clf.layers) == 4 and clf.pretrained_layers_ == 3
    for src, dst in zip(lm.layers[:3], clf.layers[:3], strict=True):
        s, d = dict(src.named_parameters()), dict(dst.named_parameters())
        assert s.keys() == d.keys()
        for k in s:
            assert torch.equal(s[k], d[k]) and s[k] is not d[k]  # equal values, own copies
    assert clf.layers[2].sequence_out is False and clf.per_step is False
    X = [[3, 4, 5], [6, 7]]
    assert clf.fit(X, [0, 2]) and clf.predict(X).shape == (2, 3)
    assert not torch.equal(clf.layers[0].weight, lm.layers[0].weight)  # fine-tuning: LM intact


def test_freeze_then_unfreeze():
    lm = pretrained()
    clf = from_language_model(lm, [Dense(1, "sigmoid")], "bce", verbose=0, freeze=True)
    before = [p.detach().clone() for p in clf.layers[1].parameters()]
    head = clf.layers[-1].w.detach().clone()
    clf.fit([[3, 4, 5], [6, 7]] * 5, [1, 0] * 5, n_epochs=2)
    assert all(torch.equal(a, b) for a, b in zip(before, clf.layers[1].parameters(), strict=True))
    assert not torch.equal(head, clf.layers[-1].w)
    unfreeze(clf).fit([[3, 4, 5], [6, 7]] * 5, [1, 0] * 5, n_epochs=1)
    assert not all(torch.equal(a, b) for a, b in
                   zip(before, clf.layers[1].parameters(), strict=True))


def test_needs_a_language_model():
    with pytest.raises(TypeError, match="expected a LanguageModel"):
        from_language_model(object(), [Dense(1, "sigmoid")], "bce")


def test_pooled_head():
    lm = pretrained()
    clf = from_language_model(lm, [Dense(1, "sigmoid")], "bce", verbose=0, pool="max")
    assert clf.layers[2].pool == "max"
    clf.fit([[3, 4, 5], [6]], [1, 0])
    assert clf.predict([[3, 4, 5]]).shape == (1, 1)
    with pytest.raises(ValueError, match="pool must be"):
        from_language_model(lm, [Dense(1, "sigmoid")], "bce", pool="sum")
