"""Transfer: a classifier (or regressor) that starts from a pretrained language model.

Pretraining an LM on plenty of unlabelled text teaches the embedding and recurrent layers what
the words mean in context; ``from_language_model`` copies those layers (weights included) under a
new output head, so a few labels go much further than training from scratch.

>>> from passage.layers import Embedding, GatedRecurrent, Dense
>>> from passage.lm import LanguageModel
>>> lm = LanguageModel([Embedding(8, 10), GatedRecurrent(8), Dense(10, "softmax")], verbose=0)
>>> _ = lm.fit([[3, 4, 5, 6]] * 20, batch_size=4)
>>> clf = from_language_model(lm, [Dense(1, "sigmoid")], "bce", verbose=0)
>>> bool((clf.layers[0].weight == lm.layers[0].weight).all())
True
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from passage.layers import Layer
from passage.lm import LanguageModel
from passage.models import RNN

if TYPE_CHECKING:
    from passage.costs import Cost
    from passage.updates import Update


def from_language_model(lm: LanguageModel, head: list[Layer], cost: str | Cost,
                        updater: str | Update = "Adam", *, freeze: bool = False,
                        pool: str | None = None, **rnn_kwargs: Any) -> RNN:
    """An ``RNN`` made of copies of ``lm``'s input and recurrent layers, then ``head`` (e.g.
    ``[Dense(1, 'sigmoid')]``). The last recurrent layer now returns its final state only.
    ``pool='max'|'mean'`` makes it summarise all its states instead.
    ``freeze=True`` keeps the copied layers fixed (train the head first; ``unfreeze`` later).
    The LM's tokenizer comes along, so the classifier takes the same texts."""
    if not isinstance(lm, LanguageModel):
        raise TypeError(f"expected a LanguageModel, got {type(lm).__name__}")
    if not head:
        raise ValueError("give at least one head layer, e.g. [Dense(1, 'sigmoid')]")
    if pool not in (None, "max", "mean"):
        raise ValueError(f"pool must be None (the last state), 'max' or 'mean'; got {pool!r}")
    body = [copy.deepcopy(layer) for layer in lm.layers[:-1]]
    recurrent = [layer for layer in body if layer.is_recurrent]
    if recurrent:
        recurrent[-1].seq_output = False
        recurrent[-1].pool = pool
    for layer in body:  # tied output weights stay behind with the LM's Dense
        for p in layer.parameters():
            p.requires_grad_(not freeze and getattr(layer, "trainable", True))
    rnn_kwargs.setdefault("tokenizer", lm.tokenizer)
    rnn_kwargs.setdefault("device", lm.device)
    rnn_kwargs.setdefault("precision", lm.precision)
    model = RNN(body + list(head), cost, updater, **rnn_kwargs)
    model.pretrained_layers_ = len(body)
    return model


def unfreeze(model: RNN) -> RNN:
    """Let the copied pretrained layers train too (the optimizer is rebuilt to include them)."""
    for layer in model.layers[:getattr(model, "pretrained_layers_", 0)]:
        for p in layer.parameters():
            p.requires_grad_(getattr(layer, "trainable", True))
    model.updater.optimizer = None
    return model

