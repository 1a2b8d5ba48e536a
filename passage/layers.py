"""Layers: a model is a list of them, input layer first.

Input: ``Embedding`` (token ids), ``OneHot`` (token ids), ``Generic`` (real vectors per step).
Recurrent: ``SimpleRecurrent``, ``GatedRecurrent`` (GRU), ``LstmRecurrent``; forward, backward or
bidirectional (``direction='bi'``, outputs concatenated). Output: ``Dense`` (or, for a language
model over a large vocabulary, ``AdaptiveSoftmax``).

Each layer takes its config in the constructor (names and defaults of 2015 Passage) and makes its
parameters in ``connect(n_in)``, once the size of its input is known. Every layer maps
``(x, lengths) -> (x, lengths)``, where x is (batch, time, features) for sequences or (batch,
features) after a recurrent layer that returns only its last state.

>>> import torch
>>> gru = GatedRecurrent(size=4, direction="bi")
>>> gru.connect(3)
>>> out, _ = gru(torch.randn(2, 5, 3), torch.tensor([5, 2]))
>>> tuple(out.shape)
(2, 8)
"""

from __future__ import annotations

from passage.basic_layers import (
    AdaptiveSoftmax,
    Dense,
    Embedding,
    FeatureEmbedding,
    Generic,
    Layer,
    OneHot,
    full_precision,
    inference,
    is_training,
    output_size,
)
from passage.recurrent_layers import (
    DIRECTIONS,
    GatedRecurrent,
    LstmRecurrent,
    SimpleRecurrent,
)

__all__ = ["AdaptiveSoftmax", "DIRECTIONS", "Dense", "Embedding", "FeatureEmbedding",
           "GatedRecurrent", "Generic", "LAYERS", "Layer", "LstmRecurrent", "OneHot",
           "SimpleRecurrent", "full_precision", "inference", "is_training", "output_size",
           "register"]

LAYERS: dict[str, type[Layer]] = {
    c.__name__: c for c in (Embedding, FeatureEmbedding, OneHot, Generic, Dense, AdaptiveSoftmax,
                            SimpleRecurrent, GatedRecurrent, LstmRecurrent)
}


def register(cls: type[Layer]) -> type[Layer]:
    """Make a user-defined layer class loadable by name (use as a decorator)."""
    LAYERS[cls.__name__] = cls
    return cls
