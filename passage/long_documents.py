"""Documents longer than the iterator's ``max_tokens``: trained in chunks (truncated BPTT, the
state carried from chunk to chunk) when the stack allows it, else cut; at prediction they stream
through in chunks. ``ChunkedStack`` runs a stack over one document in chunks; ``RNN`` inherits
``LongDocumentsMixin``, which decides when to use it."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast, overload

import torch

from passage import iterators as iterator_registry
from passage import updates as updater_registry
from passage.layers import Layer, is_training
from passage.stack import Stack
from passage.training import DataParallel

if TYPE_CHECKING:
    from passage.recurrent_layers import _Recurrent

PER_STEP_LAYERS = ("Embedding", "FeatureEmbedding", "OneHot", "Generic", "Dense")


def _per_step(layer) -> bool:
    """A layer that maps each step on its own (no mixing across time): chunking cannot change
    what it computes."""
    return any(c.__name__ in PER_STEP_LAYERS for c in type(layer).__mro__)


class ChunkedStack:
    """Runs a model's stack over one long document in chunks of ``chunk`` steps, carrying each
    recurrent layer's state from chunk to chunk, so that memory is bounded by the chunk whatever
    the document's length.

    The pooled output (the top recurrent layer's last state, or its max or mean over steps)
    equals the whole-document forward pass in value: the last state is the state after the last
    chunk; max and mean are a running max and a running sum. A backward direction runs over the
    reversed document, so its chunks start at the document's end. Training (``backward``) is
    truncated BPTT: the state is detached at chunk borders; the gradients are those of the
    whole-document graph with the states cut there. Every chunk is run once without keeping its
    graph, to get the pooled output and the cost, then each chunk that the cost depends on
    (all of them for max and mean, the last for the last state) is run again with its graph
    and back-propagated alone, from the state and random state it started with.

    What can be chunked (``why_not`` says why not): one vector per document (not per-step
    outputs), steps-independent layers (Embedding, Dense, ...) around recurrent ones, and every
    recurrent layer below the top one forward-only; a backward or bidirectional top layer only
    when it is the only recurrent layer. ``is_training(layer)``: whether a layer drops out now
    (``passage.layers.is_training``).
    """

    layers: list[Any]  # the Layers (the recurrent ones read through _Recurrent's attributes)

    def __init__(self, layers: Iterable[Layer], chunk: int,
                 is_training: Callable = lambda m: m.training):
        self.layers, self.chunk, self.is_training = list(layers), int(chunk), is_training
        rec = [i for i, la in enumerate(self.layers) if getattr(la, "is_recurrent", False)]
        self.top = rec[-1] if rec else None
        self.n_rec = len(rec)

    @staticmethod
    def why_not(layers: Sequence[Layer]) -> str | None:
        """None when a stack of these layers can run in chunks, else the reason."""
        rec = [i for i, la in enumerate(layers) if getattr(la, "is_recurrent", False)]
        if not rec:
            return "the model has no recurrent layer"
        top = cast("_Recurrent", layers[rec[-1]])
        if top.sequence_out:
            return "the model outputs a sequence (one output per step)"
        for i, layer in enumerate(layers[:rec[-1]]):
            if getattr(layer, "is_recurrent", False):
                if tuple(cast("_Recurrent", layer).reversed) != (False,):
                    return (f"layers[{i}] ({type(layer).__name__}) runs backward and feeds "
                            "another recurrent layer")
            elif not _per_step(layer):
                return f"layers[{i}] ({type(layer).__name__}) is not known to act step by step"
        if len(rec) > 1 and tuple(top.reversed) != (False,):
            return "a backward or bidirectional recurrent layer sits above another one"
        return None

    # -- the forward pass ----------------------------------------------------------------------
    def _run(self, x, states: list, direction: int) -> torch.Tensor:
        """One chunk ``x`` (1, steps[, features]) through the layers up to the top recurrent
        one (its ``direction``); ``states`` (one per recurrent layer) is updated in place.
        Returns the top layer's outputs (1, steps, size)."""
        lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device)
        k = 0
        assert self.top is not None  # why_not: there is a recurrent layer
        for i, layer in enumerate(self.layers[:self.top + 1]):
            if layer.is_recurrent:
                d = layer.directions[direction if i == self.top else 0]
                x = torch.nn.functional.dropout(x, layer.p_drop, self.is_training(layer))
                # (predicting, on the CPU: the skip-padding scan, C when built, not the
                # training kernel)
                scan = layer.infer_carried if layer.skips_padding(x) else layer._scan
                x, states[k] = scan(d, x, states[k])
                states[k] = tuple(s.detach() for s in states[k])
                k += 1
            else:
                x, lengths = layer(x, lengths)
        return x

    def _passes(self, x) -> list[tuple[int, torch.Tensor]]:
        """(direction index, the document as that direction reads it) of the top layer."""
        assert self.top is not None
        top = self.layers[self.top]
        return [(i, x.flip(1) if rev else x) for i, rev in enumerate(top.reversed)]

    def _spans(self, steps: int) -> list[tuple[int, int]]:
        return [(s, min(s + self.chunk, steps)) for s in range(0, max(steps, 1), self.chunk)]

    @overload
    def pooled(self, x: torch.Tensor, record: Literal[False] = False) -> torch.Tensor: ...

    @overload
    def pooled(self, x: torch.Tensor,
               record: Literal[True]) -> tuple[torch.Tensor, list[tuple[list, Any]]]: ...

    def pooled(self, x: torch.Tensor,
               record: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[tuple[list, Any]]]:
        """The top recurrent layer's pooled output (1, out_size) for one document ``x`` (1,
        steps[, features]) read in chunks. ``record``: also, per direction, what ``backward``
        needs (each chunk's starting states and random state, the max's tie counts)."""
        assert self.top is not None
        how = self.layers[self.top].pool
        outs, records = [], []
        for direction, seq in self._passes(x):
            states = [None] * self.n_rec
            acc = count = None
            rec = []
            for a, b in self._spans(seq.shape[1]):
                if record:
                    rec.append((list(states), _rng_state(x.device)))
                out = self._run(seq[:, a:b], states, direction).detach()
                out = out.float() if out.dtype in (torch.bfloat16, torch.float16) else out
                if how == "max":
                    m = out.amax(1)
                    n = (out == m[:, None]).sum(1)
                    if acc is None:
                        acc, count = m, n
                    else:
                        assert count is not None  # set with acc
                        count = torch.where(m > acc, n, count + torch.where(m == acc, n, 0))
                        acc = torch.maximum(acc, m)
                elif how == "mean":
                    acc = out.sum(1) if acc is None else acc + out.sum(1)
                else:
                    acc = out[:, -1]
            assert acc is not None  # _spans gives at least one chunk
            if how == "mean":
                acc = acc / max(seq.shape[1], 1)
            outs.append(acc)
            records.append((rec, count))
        pooled = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
        return (pooled, records) if record else pooled

    # -- training ------------------------------------------------------------------------------
    def backward(self, x: torch.Tensor, loss_of: Callable[[torch.Tensor], torch.Tensor],
                 backward: Callable[[torch.Tensor], None] = torch.Tensor.backward,
                 context: Callable = torch.enable_grad) -> torch.Tensor:
        """Truncated BPTT on one document: ``loss_of(pooled)`` is the cost of the layers above
        (gradients reach them and the pooled vector), ``backward(loss)`` back-propagates it
        (e.g. through a loss scale); then each chunk the cost depends on is run again and
        back-propagated. Gradients accumulate in ``.grad``; returns the (detached) loss."""
        with context():
            pooled, records = self.pooled(x, record=True)
            after = _rng_state(x.device)
            leaf = pooled.detach().requires_grad_(True)
            loss = loss_of(leaf)
        backward(loss)
        if leaf.grad is None:
            return loss.detach()
        assert self.top is not None
        how, size = self.layers[self.top].pool, self.layers[self.top].size
        for direction, seq in self._passes(x):
            grad = leaf.grad[:, direction * size:(direction + 1) * size]
            target = pooled[:, direction * size:(direction + 1) * size]
            rec, count = records[direction]
            spans = self._spans(seq.shape[1])
            todo = range(len(spans)) if how in ("max", "mean") else [len(spans) - 1]
            for c in todo:
                states, rng = rec[c]
                _set_rng_state(x.device, rng)
                with context():
                    out = self._run(seq[:, spans[c][0]:spans[c][1]], list(states), direction)
                    out = out.float() if out.dtype in (torch.bfloat16, torch.float16) else out
                    if how == "mean":
                        part = out.sum(1) / max(seq.shape[1], 1)
                        weight = grad
                    elif how == "max":
                        part = out.amax(1)
                        n = (out.detach() == part.detach()[:, None]).sum(1)
                        weight = grad * (part.detach() == target) * n / count.clamp(min=1)
                    else:
                        part, weight = out[:, -1], grad
                    surrogate = (part * weight).sum()
                if surrogate.requires_grad:
                    surrogate.backward()
        _set_rng_state(x.device, after)
        return loss.detach()


def _rng_state(device: torch.device):
    """The random state dropout draws from on ``device`` (the CPU's, and the GPU's on CUDA)."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(device: torch.device, state) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


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
