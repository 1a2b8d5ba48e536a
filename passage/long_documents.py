"""Documents longer than the iterator's ``max_tokens``: trained in chunks (truncated BPTT, the
state carried from chunk to chunk) when the stack allows it, else cut; at prediction they stream
through in chunks. ``RNN`` inherits these methods (``LongDocumentsMixin``); the chunked scan
itself is ``passage.recurrent.ChunkedStack``."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from passage import iterators as iterator_registry
from passage import updates as updater_registry
from passage.layers import Layer, is_training
from passage.recurrent import ChunkedStack
from passage.stack import Stack
from passage.training import DataParallel


class LongDocumentsMixin:
    """Chunked training and prediction of long documents for ``RNN``."""

    layers: list[Layer]
    iterator: Any
    model: Stack
    precision: str
    verbose: int
    _logits_cost: Any
    _loss_scale: updater_registry.LossScale | None
    _cost: Callable[..., torch.Tensor]  # (RNN's methods)
    autocast: Callable[[], torch.autocast]

    def _chunker(self, chunk: int | None = None) -> ChunkedStack | None:
        """The stack read in chunks of ``chunk`` steps (default: the iterator's max_tokens), or
        None when there is no budget or the stack cannot be chunked (``ChunkedStack.why_not``)."""
        chunk = chunk or getattr(self.iterator, "max_tokens", None)
        if not chunk or ChunkedStack.why_not(self.layers) is not None:
            return None
        return ChunkedStack(self.layers, chunk, is_training)

    def _head(self, pooled: torch.Tensor, pre_act: bool = False, ids=None,
              id_lengths=None) -> torch.Tensor:
        """The layers above the top recurrent layer, on its pooled output (documents, size);
        ``ids``/``id_lengths``: the documents' token ids, for the n-gram term if any."""
        top = max(i for i, la in enumerate(self.layers) if la.is_recurrent)
        x, lengths = pooled, None
        for layer in self.layers[top + 1:-1]:
            x, lengths = layer(x, lengths)
        return self.model.head(x, lengths, pre_act, ids, id_lengths)

    def _chunked_backward(self, chunker: ChunkedStack, x, lengths, y) -> torch.Tensor:
        """Truncated BPTT on a batch of one long document: forward and backward in chunks
        (gradients in ``.grad``); returns the cost."""
        def loss_of(pooled):
            return self._cost(self._head(pooled, self._logits_cost is not None, x, lengths),
                              lengths, y)

        backward: Callable[[torch.Tensor], None] = torch.Tensor.backward
        if self.precision == "fp16":
            if self._loss_scale is None:
                self._loss_scale = updater_registry.LossScale()
            backward = self._loss_scale.backward
        return chunker.backward(x, loss_of, backward, self.autocast)

    def _long_documents(self, X, trY, lengths, parallel: DataParallel | None = None):
        """Training documents longer than the iterator's budget: counted and said (verbose),
        trained in chunks when the stack allows it, else cut with ``Truncate(max_tokens)``
        (always in a data-parallel fit, ``parallel``). Returns (X, trY, lengths)."""
        budget = getattr(self.iterator, "max_tokens", None)
        n_long = int((lengths > budget).sum()) if budget else 0
        if not n_long or budget is None:
            return X, trY, lengths
        why, cut = ChunkedStack.why_not(self.layers), budget
        if parallel is not None:  # fit_distributed (DDP)
            why = "fit_distributed does not train in chunks"
            # a batch must give every process an example: world_size such documents must fit
            cut = max(1, budget // parallel.world_size)
        if why is None:
            if self.verbose >= 1:
                print(f"{n_long} training document(s) longer than max_tokens={budget}: trained "
                      f"in chunks of {budget} tokens (truncated BPTT, state carried)", flush=True)
            return X, trY, lengths
        from passage.preprocessing import Truncate  # preprocessing does not import models
        warnings.warn(f"{n_long} training document(s) longer than max_tokens={budget} cannot be "
                      f"trained in chunks ({why}): cut to {cut} tokens with "
                      f"Truncate({cut}); raise the iterator's max_tokens, or pass "
                      "len_filter=Truncate(...) yourself to choose how", UserWarning,
                      stacklevel=3)
        X, trY = Truncate(cut).filter(X, trY)
        return X, trY, iterator_registry.sequence_lengths(X)
