"""The layers of a model as one module (``Stack``), and how they are connected.

``build_stack`` connects a list of layers in order; ``Stack.forward`` runs them, reading token
ids straight into the first recurrent layer at inference (skip-padding scans, the vocabulary's
projection kept as tables while the weights stay the same).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from passage.layers import Dense, Embedding, Layer, full_precision, output_size
from passage.wide import NgramLinear

if TYPE_CHECKING:
    from collections.abc import Iterable

    from passage.recurrent_layers import _Direction, _Recurrent


class Stack(nn.Module):
    """The layers as one module: ids or vectors in, outputs (or pre-activations) out."""

    layers: nn.ModuleList  # of Layer, the input layer first
    wide: NgramLinear | None
    _tables: tuple[str, list[torch.Tensor], list[tuple[torch.Tensor, ...]]] | None
    _fixed: bool

    def __init__(self, layers: list[Layer], wide: NgramLinear | None = None):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.wide = wide  # a linear n-gram term added to the output's pre-activation

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, pre_act: bool = False,
                states: list | None = None, tables: list | None = None,
                head: bool = True) -> torch.Tensor:
        """Outputs of the last layer. ``states`` (one entry per recurrent layer, None for its
        learned initial state) makes the recurrent layers start from it; the list is then
        updated in place with their final states, as a language model carries state.
        ``tables``: ``projection_tables()``, for inference straight from token ids.
        ``head=False``: the input of the last layer instead (for a cost it computes itself)."""
        ids, id_lengths = x, lengths
        k, layers = 0, list(self.layers)[:-1]  # (a list: slicing a ModuleList builds one)
        if states is None and self._reads_ids():
            recurrent = cast("_Recurrent", layers[1])
            x, lengths = recurrent.infer(x, lengths, embedding=cast(Embedding, layers[0]),
                                         tables=tables)
            layers = layers[2:]
        for layer in layers:
            if states is not None and layer.is_recurrent:
                x, lengths, states[k] = layer(x, lengths, state=states[k], return_state=True)
                k += 1
            else:
                x, lengths = layer(x, lengths)
        if not head:
            return x
        return self.head(x, lengths, pre_act, ids, id_lengths)

    def head(self, x: torch.Tensor, lengths: torch.Tensor | None, pre_act: bool,
             ids: torch.Tensor | None = None,
             id_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The last layer on ``x``, plus the n-gram term of the token ``ids`` if there is one."""
        last = self.layers[-1]
        if self.wide is None:
            return last(x, lengths, pre_act=True)[0] if pre_act else last(x, lengths)[0]
        z = last(x, lengths, pre_act=True)[0] + self.wide(ids, id_lengths)
        return z if pre_act else cast(Dense, last).act(full_precision(z))  # see check_wide

    def _reads_ids(self) -> bool:
        """An Embedding then a recurrent layer that can skip padding: inference then feeds the
        token ids to the recurrent layer, which embeds (or looks up projections) per step."""
        first = self.layers[0]
        second = cast("Layer | None", self.layers[1] if len(self.layers) > 2 else None)
        return (type(first) is Embedding and second is not None and second.is_recurrent
                and cast("_Recurrent", second).skips_padding(first.weight))

    def projection_tables(self, n_tokens: int) -> list | None:
        """For inference on ``n_tokens`` tokens: the first recurrent layer's projection of the
        whole vocabulary, with its recurrent weights as the scan reads them
        (``_Recurrent.projection_tables``), when it costs less than projecting the tokens
        themselves (x4), or when the tables of the current weights are already made. They are
        kept with a copy of the weights they were made from and used again only while those
        weights are equal (compared in full: any write counts, even one through ``.data``), so
        a service predicting again and again with the same weights makes them once. The
        comparison reads the embedding once, which costs about as much as projecting
        n_features / 16 tokens: fewer tokens than that are projected directly."""
        kept = getattr(self, "_tables", None)  # (gate activation, weights copied, tables)
        if kept is not None and getattr(self, "_fixed", False):
            return kept[2]  # (fixed: no comparison to pay for, however few the tokens)
        if not self._reads_ids() or 16 * n_tokens < cast(Embedding, self.layers[0]).n_features:
            return None
        embedding, recurrent = cast(Embedding, self.layers[0]), cast("_Recurrent", self.layers[1])
        directions = cast("Iterable[_Direction]", recurrent.directions)
        weights = [embedding.weight] + [w for d in directions
                                        for w in (d.w_ih, d.b_ih, d.w_hh, d.b_hh)]
        if (kept is not None and kept[0] == recurrent.gate_activation
                and len(kept[1]) == len(weights)
                and all(a.shape == b.shape and torch.equal(a, b)
                        for a, b in zip(kept[1], weights, strict=True))):
            return kept[2]
        if embedding.n_features > 4 * n_tokens:
            return None
        tables = recurrent.projection_tables(embedding)
        self._tables = (recurrent.gate_activation, [w.detach().clone() for w in weights],
                        tables)
        return tables

    def fix_tables(self) -> list | None:
        """Make the projection tables now and use them without comparing the weights again,
        until ``forget_tables``: for an owner that knows the weights will not change (a
        service that loaded its own copy of a model), where the comparison is a tenth of a
        small batch's time. Returns the tables (None when this stack reads no ids)."""
        self._fixed = False
        tables = self.projection_tables(cast(Embedding, self.layers[0]).n_features) \
            if self._reads_ids() else None
        self._fixed = tables is not None
        return tables

    def forget_tables(self) -> None:
        """Drop the kept projection tables (training is about to change the weights)."""
        self._tables, self._fixed = None, False

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_tables"], state["_fixed"] = None, False  # made again where needed, never
        # copied or pickled
        return state


def build_stack(layers: list[Layer], wide: NgramLinear | None = None) -> Stack:
    """Connect the layers in order; a recurrent layer returns sequences if a later one needs."""
    if not layers:
        raise ValueError("a model needs at least an input layer and an output layer")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"layers[{i}] is a {type(layer).__name__}, not a passage layer")
        if layer.is_input != (i == 0):
            raise ValueError(
                f"layers[{i}] ({type(layer).__name__}) "
                + ("must come first: input layers (Embedding, OneHot, Generic) start a model"
                   if layer.is_input else
                   "cannot start a model: begin with Embedding, OneHot or Generic"))
    if not hasattr(layers[0], "n_in"):
        layers[0].connect(0)
    n_in = output_size(layers[0])
    for i, layer in enumerate(layers[1:], start=1):
        if layer.is_recurrent:
            rec = cast("_Recurrent", layer)
            rec.sequence_out = rec.seq_output or any(lr.is_recurrent for lr in layers[i + 1:])
        if not hasattr(layer, "n_in") or layer.n_in != n_in:
            layer.connect(n_in)
        n_in = output_size(layer)
    if wide is not None:
        check_wide(layers, wide)
    return Stack(layers, wide)


def check_wide(layers: list[Layer], wide: NgramLinear) -> None:
    """A linear n-gram term needs token ids in (an Embedding first) and one output per
    document, of the term's size, from a Dense layer."""
    if not isinstance(wide, NgramLinear):
        raise TypeError(f"wide must be a passage.wide.NgramLinear, got {type(wide).__name__}")
    last = layers[-1]
    if type(layers[0]) is not Embedding or not isinstance(last, Dense):
        raise ValueError("wide=NgramLinear(...) needs an Embedding first (token ids in) and a "
                         "Dense output layer")
    if any(la.is_recurrent and la.sequence_out for la in layers[1:]):
        raise ValueError("wide=NgramLinear(...) is for one output per document; this model "
                         "outputs a sequence")
    if wide.n_out != last.size or wide.n_features != layers[0].n_features:
        raise ValueError(f"wide=NgramLinear(n_features={wide.n_features}, n_out={wide.n_out}) "
                         f"does not match the model: Embedding n_features="
                         f"{layers[0].n_features}, Dense size={last.size}")
