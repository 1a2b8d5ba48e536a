"""passage.stack: the layers as one module, and the projection tables it keeps for inference."""

import numpy as np
import torch

from passage.layers import Dense, Embedding, GatedRecurrent, inference
from passage.models import RNN
from passage.updates import Adam

X = [[3, 4, 5], [6, 7], [3, 3], [8, 9, 9, 9]] * 10
Y = [1, 0, 1, 0] * 10


def small_model(**kw):
    return RNN([Embedding(8, 10), GatedRecurrent(8, direction="bi"), Dense(1, "sigmoid")],
               "bce", updater=Adam(lr=1e-2), verbose=0, seed=0, **kw)


def tables(model, n_tokens):
    """The model's projection tables for n_tokens, asked as predict asks (inference)."""
    model.model.eval()
    with torch.inference_mode(), inference():
        return model.model.projection_tables(n_tokens)


def test_projection_tables_are_kept_while_the_weights_stay_and_remade_when_they_change():
    model = small_model()
    model.fit(X, Y, n_epochs=1)
    first = tables(model, 10_000)
    assert first is not None and tables(model, 1) is first  # kept: used for 1 token (10 ids)
    before = model.predict(X)
    model.fit(X, Y, n_epochs=1)  # the weights move: the kept tables are stale
    assert tables(model, 1) is None  # forgotten, and too costly to make for 1 token
    fresh = small_model()  # the same weights in a model that never made tables
    fresh.model.load_state_dict(model.model.state_dict())
    fresh.fitted_ = True
    assert np.allclose(model.predict(X), fresh.predict(X), atol=1e-6)
    assert not np.allclose(before, model.predict(X))
    assert tables(model, 1) is not None  # predict made them for these weights
    with torch.no_grad():  # a change in place of the embedding: they are stale
        model.layers[0].weight.mul_(2.0)
    assert tables(model, 1) is None
    fresh.model.load_state_dict(model.model.state_dict())
    assert np.allclose(model.predict(X), fresh.predict(X), atol=1e-6)


def test_fixed_tables_are_used_without_comparing_until_forgotten():
    """A service that owns its model fixes the tables: they are used as they are (the weights
    are not compared), until ``forget_tables`` (which every training epoch calls)."""
    model = small_model()
    model.fit(X, Y, n_epochs=1)
    want = model.predict(X)
    with torch.inference_mode(), inference():
        fixed = model.model.fix_tables()
    assert fixed is not None and tables(model, 1) is fixed
    np.testing.assert_allclose(model.predict(X), want, rtol=1e-6)
    with torch.no_grad():  # no one should do this to a fixed model: it is not noticed
        model.layers[0].weight.mul_(2.0)
    assert tables(model, 1) is fixed
    model.model.forget_tables()
    assert tables(model, 1) is None  # compared again, and stale
    model.fit(X, Y, n_epochs=1)  # training forgets them too
    assert not getattr(model.model, "_fixed", False)


def test_a_stack_that_reads_no_ids_has_no_tables():
    from passage.layers import Generic

    model = RNN([Generic(3), GatedRecurrent(4), Dense(1, "sigmoid")], "bce", verbose=0)
    assert model.model.fix_tables() is None
    assert not getattr(model.model, "_fixed", False)
