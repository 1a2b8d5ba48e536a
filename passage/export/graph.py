"""The ONNX graph of a Passage model, written node by node with ``onnx.helper``.

Inputs: ``ids`` int64 (batch, time) — or (batch, time, slots) after a ``FeatureEmbedding``, or
``x`` float32 (batch, time, features) for a ``Generic`` input — and ``lengths`` int64 (batch).
Batches are right-padded; ``lengths`` gives each row's real steps (0 allowed, none above time).

Recurrent layers are ONNX ``GRU`` / ``LSTM`` / ``RNN`` operators with ``sequence_lens``: each
row's scan stops at its own length, and a backward direction reverses each row within its
length (onnxruntime checked against a step loop in tests/test_export.py), which is Passage's
semantics. A sequence of length 0 runs the operator for one step on padding (the operators need
a length >= 1); that step is never read: its outputs are masked and its last state is replaced
by the learned initial state, as ``predict`` gives. The id inputs at padding are replaced by 0
before any lookup, so what the client pads with never matters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import numpy as np

try:  # the export extra; passage.export.onnx_model says how to install it when missing
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError:  # pragma: no cover - this module is then only imported, never used
    onnx = TensorProto = helper = numpy_helper = None  # type: ignore[assignment, misc]

from passage import activations
from passage.layers import Dense, Embedding, FeatureEmbedding, Generic, OneHot
from passage.recurrent import gate_scale_vector
from passage.recurrent_layers import _Recurrent
from passage.wide import HASH_MULTIPLIER

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import numpy.typing as npt

    from passage.layers import Layer
    from passage.recurrent_layers import _Direction
    from passage.wide import NgramLinear

OPSET = 17
# Passage activation -> (ONNX recurrent activation, alpha, beta) for the operators' attributes
RECURRENT_ACTIVATIONS = {
    "tanh": ("Tanh",), "sigmoid": ("Sigmoid",), "rectify": ("Relu",), "relu": ("Relu",),
    "linear": ("Affine", 1.0, 0.0), "hard_sigmoid": ("HardSigmoid", 1.0, 0.5),
    "elu": ("Elu", 1.0),
}
# ONNX order of the gate blocks, as indices of PyTorch's blocks (GRU r z n, LSTM i f g o)
GATE_ORDER = {"gru": [1, 0, 2], "lstm": [0, 3, 1, 2], "simple": [0]}
OPS = {"gru": "GRU", "lstm": "LSTM", "simple": "RNN"}


class _Graph:
    """Nodes and initializers under unique names."""

    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, hint: str) -> str:
        self.n += 1
        return f"{hint}_{self.n}"

    def const(self, value, hint: str = "c", dtype=np.float32) -> str:
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attrs):
        names = [self.name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names


def _activation(g: _Graph, x: str, name: str) -> str:
    """A Dense layer's activation (every one in passage.activations)."""
    name = name.lower()
    if name == "linear":
        return x
    if name == "steeper_sigmoid":
        return g.op("Sigmoid", g.op("Mul", x, g.const(3.75)))
    if name == "hard_sigmoid":
        return g.op("Clip", g.op("Add", x, g.const(0.5)), g.const(0.0), g.const(1.0))
    clips = {"hard_tanh": (-1.0, 1.0), "clipped_rectify": (0.0, 5.0)}
    if name in clips:
        lo, hi = clips[name]
        return g.op("Clip", x, g.const(lo), g.const(hi))
    simple = {"sigmoid": "Sigmoid", "tanh": "Tanh", "rectify": "Relu", "relu": "Relu",
              "elu": "Elu"}
    if name in simple:
        return g.op(simple[name], x)
    if name == "softmax":
        return g.op("Softmax", x, axis=-1)
    raise ValueError(f"activation {name!r} has no ONNX form here; known: "
                     f"{', '.join(activations.ACTIVATIONS)}")


def check_recurrent(layer: _Recurrent, i: int) -> None:
    """Raise if the layer's activations have no ONNX recurrent-operator form."""
    gate = layer.gate_activation.lower()
    act = layer.activation.lower()
    bad = [] if act in RECURRENT_ACTIVATIONS else [f"activation={layer.activation!r}"]
    if layer.kind != "simple" and gate not in activations.GATE_SCALES \
            and gate not in RECURRENT_ACTIVATIONS:
        bad.append(f"gate_activation={layer.gate_activation!r}")
    if bad:
        ok = sorted(set(RECURRENT_ACTIVATIONS) | set(activations.GATE_SCALES))
        raise ValueError(f"layers[{i}] ({type(layer).__name__}) uses {' and '.join(bad)}, which "
                         f"the ONNX {OPS[layer.kind]} operator cannot run; exportable recurrent "
                         f"activations: {', '.join(ok)}")


def _recurrent_attrs(layer: _Recurrent) -> tuple[list[str], list[float], list[float], float]:
    """The operator's activations, alphas and betas (for every direction), and the factor the
    gate rows are scaled by (steeper gates are a plain sigmoid of scaled weights)."""
    gate = layer.gate_activation.lower()
    scale = activations.GATE_SCALES.get(gate)
    gate_spec = ("Sigmoid",) if scale is not None else RECURRENT_ACTIVATIONS.get(gate)
    act_spec = RECURRENT_ACTIVATIONS[layer.activation.lower()]
    # no None: check_recurrent refused the gates without a spec, for the layers with gates
    per_dir = cast(list[tuple], {"gru": [gate_spec, act_spec],
                                 "lstm": [gate_spec, act_spec, act_spec],
                                 "simple": [act_spec]}[layer.kind]) * len(layer.reversed)
    alphas, betas = [], []  # onnxruntime reads them in order, only for the functions using them
    for spec in per_dir:
        if len(spec) > 1:
            alphas.append(spec[1])
        if len(spec) > 2:
            betas.append(spec[2])
    return [s[0] for s in per_dir], alphas, betas, 1.0 if scale is None else scale


def _recurrent_weights(layer: _Recurrent, scale: float):
    """W, R, B and the initial states (D, 1, H) as numpy arrays in ONNX's layout."""
    size, kind = layer.size, layer.kind
    s = gate_scale_vector(kind, size, scale).numpy() if kind != "simple" else np.ones(size)
    order = GATE_ORDER[kind]

    def onnx_rows(w):
        blocks = np.split(w.detach().cpu().numpy().astype(np.float64) * s.reshape(
            -1, *([1] * (w.dim() - 1))), len(order))
        return np.concatenate([blocks[k] for k in order]).astype(np.float32)

    ws, rs, bs, h0, c0 = [], [], [], [], []
    for d in cast("Iterable[_Direction]", layer.directions):
        ws.append(onnx_rows(d.w_ih))
        rs.append(onnx_rows(d.w_hh))
        bs.append(np.concatenate([onnx_rows(d.b_ih), onnx_rows(d.b_hh)]))
        h0.append(d.h0.detach().cpu().numpy().astype(np.float32)[None])
        if kind == "lstm":
            c0.append(d.c0.detach().cpu().numpy().astype(np.float32)[None])
    return np.stack(ws), np.stack(rs), np.stack(bs), np.stack(h0), np.stack(c0) if c0 else None


class _Builder:
    """Walks the layers, keeping the current tensor and whether it is a sequence."""

    def __init__(self, g: _Graph, lengths: str, time_steps: str):
        self.g, self.lengths = g, lengths
        steps = g.op("Range", g.const(0, dtype=np.int64), time_steps, g.const(1, dtype=np.int64))
        self.mask = g.op("Less", g.op("Unsqueeze", steps, g.const([0], dtype=np.int64)),
                         g.op("Unsqueeze", lengths, g.const([1], dtype=np.int64)))  # (B, T)
        self.mask3 = g.op("Unsqueeze", self.mask, g.const([2], dtype=np.int64))
        self.mask3f = g.op("Cast", self.mask3, to=TensorProto.FLOAT)
        self.nonempty = g.op("Unsqueeze", g.op("Greater", lengths, g.const(0, dtype=np.int64)),
                             g.const([1], dtype=np.int64))  # (B, 1)
        self.batch = g.op("Shape", lengths)

    def recurrent(self, layer: _Recurrent, x: str) -> tuple[str, bool]:
        g = self.g
        acts, alphas, betas, scale = _recurrent_attrs(layer)
        w, r, b, h0, c0 = _recurrent_weights(layer, scale)
        n_dir, size = len(layer.reversed), layer.size
        state_shape = g.op("Concat", g.const([n_dir], dtype=np.int64), self.batch,
                           g.const([size], dtype=np.int64), axis=0)
        init_h = g.op("Expand", g.const(h0, "h0"), state_shape)
        seq_lens = g.op("Cast", g.op("Max", self.lengths, g.const(1, dtype=np.int64)),
                        to=TensorProto.INT32)
        inputs = [g.op("Transpose", x, perm=[1, 0, 2]), g.const(w, "W"), g.const(r, "R"),
                  g.const(b, "B"), seq_lens, init_h]
        if c0 is not None:
            inputs.append(g.op("Expand", g.const(c0, "c0"), state_shape))
        direction = {(False,): "forward", (True,): "reverse"}.get(layer.reversed,
                                                                   "bidirectional")
        attrs = {"hidden_size": size, "direction": direction, "activations": acts}
        if alphas:
            attrs["activation_alpha"] = alphas
        if betas:
            attrs["activation_beta"] = betas
        if layer.kind == "gru":
            attrs["linear_before_reset"] = 1
        outs = g.op(OPS[layer.kind], *inputs, outputs=2, **attrs)
        y, y_h = outs[0], outs[1]
        if layer.sequence_out or layer.pool:  # (T, D, B, H) -> (B, T, D * H), padding zero
            seq = g.op("Reshape", g.op("Transpose", y, perm=[2, 0, 1, 3]),
                       g.const([0, 0, -1], dtype=np.int64))
            seq = g.op("Mul", seq, self.mask3f)
            if layer.sequence_out:
                return seq, True
            assert layer.pool is not None  # set: the layer pools
            return self._pool(seq, layer.pool), False
        last = g.op("Reshape", g.op("Transpose", y_h, perm=[1, 0, 2]),
                    g.const([0, -1], dtype=np.int64))
        return g.op("Where", self.nonempty, last, g.const(h0.reshape(1, -1), "h0_flat")), False

    def _pool(self, seq: str, how: str) -> str:
        g = self.g
        if how == "max":
            masked = g.op("Where", self.mask3, seq, g.const(-np.inf))
            pooled = g.op("ReduceMax", masked, axes=[1], keepdims=0)
            return g.op("Where", self.nonempty, pooled, g.const(0.0))
        total = g.op("ReduceSum", seq, g.const([1], dtype=np.int64), keepdims=0)
        count = g.op("Cast", g.op("Max", self.lengths, g.const(1, dtype=np.int64)),
                     to=TensorProto.FLOAT)
        return g.op("Div", total, g.op("Unsqueeze", count, g.const([1], dtype=np.int64)))

    def dense(self, layer: Dense, x: str, wide: str | None = None) -> str:
        g = self.g
        w = layer.w.detach().cpu().numpy().astype(np.float32).T
        y = g.op("Add", g.op("MatMul", x, g.const(w, "dense_w")),
                 g.const(layer.b.detach().cpu().numpy(), "dense_b"))
        if wide is not None:  # the n-gram term joins the output's pre-activation
            y = g.op("Add", y, wide)
        return _activation(g, y, layer.activation)

    def ngram_term(self, wide, ids: str) -> str:
        """``passage.wide.NgramLinear`` on the (padding-zeroed) ids: (B, n_out)."""
        g = self.g
        one, zero = g.const([1], dtype=np.int64), g.const([0], dtype=np.int64)
        end = g.const([np.iinfo(np.int64).max], dtype=np.int64)
        # each row's weights times its idf, and its idf squared, looked up per occurrence
        weight = wide.weight.detach().cpu().numpy().astype(np.float32)
        idf = wide.idf.detach().cpu().numpy().astype(np.float32)
        table = g.const(weight * idf[:, None], "ngram_w")
        squares = g.const(idf * idf, "ngram_idf2")

        def summed(rows: str, mask: str) -> tuple[str, str]:  # over time, real steps only
            maskf = g.op("Cast", mask, to=TensorProto.FLOAT)
            vectors = g.op("Mul", g.op("Gather", table, rows, axis=0),
                           g.op("Unsqueeze", maskf, g.const([2], dtype=np.int64)))
            total = g.op("ReduceSum", vectors, g.const([1], dtype=np.int64), keepdims=0)
            norm = g.op("ReduceSum", g.op("Mul", g.op("Gather", squares, rows, axis=0), maskf),
                        g.const([1], dtype=np.int64), keepdims=0)
            return total, norm

        first = g.op("Slice", ids, zero, g.const([-1], dtype=np.int64), one)
        second = g.op("Slice", ids, one, end, one)
        pair = g.op("Slice", self.mask, one, end, one)
        rows = g.op("Add", g.op("Mod", g.op("Add", g.op("Mul", first, g.const(
            HASH_MULTIPLIER, dtype=np.int64)), second), g.const(wide.buckets, dtype=np.int64)),
            g.const(wide.n_features, dtype=np.int64))
        (uni, uni_n), (bi, bi_n) = summed(ids, self.mask), summed(rows, pair)
        norm = g.op("Max", g.op("Sqrt", g.op("Add", uni_n, bi_n)), g.const(1e-12))
        return g.op("Div", g.op("Add", uni, bi),
                    g.op("Unsqueeze", norm, g.const([1], dtype=np.int64)))


def _input(g: _Graph, layer, b: _Builder, padded: str) -> str:
    """The input layer's output (B, T, features) from the padded input."""
    if isinstance(layer, Generic):
        return g.op("Mul", padded, b.mask3f)
    mask = b.mask3 if isinstance(layer, FeatureEmbedding) else b.mask
    ids = g.op("Where", mask, padded, g.const(0, dtype=np.int64))
    if isinstance(layer, OneHot):
        return g.op("OneHot", ids, g.const([layer.n_features], dtype=np.int64),
                    g.const([0.0, 1.0]), axis=-1)
    table = g.const(layer.weight.detach().cpu().numpy(), "embedding")
    out = g.op("Gather", table, ids, axis=0)
    if isinstance(layer, FeatureEmbedding):
        out = g.op("Reshape", out, g.const([0, 0, -1], dtype=np.int64))
    return out


def check_layers(layers: Sequence[Layer]) -> None:
    """Raise a clear error for a layer this exporter cannot write."""
    first = layers[0]
    if type(first) not in (Embedding, FeatureEmbedding, OneHot, Generic):
        raise ValueError(f"layers[0] is a {type(first).__name__}; ONNX export supports "
                         "Embedding, FeatureEmbedding, OneHot and Generic inputs")
    for i, layer in enumerate(layers[1:], start=1):
        if isinstance(layer, _Recurrent):
            check_recurrent(layer, i)
        elif type(layer) is not Dense:
            raise ValueError(f"layers[{i}] is a {type(layer).__name__}; ONNX export supports "
                             "recurrent and Dense layers after the input (a language model's "
                             "AdaptiveSoftmax is not exported)")


def build_graph(layers: Sequence[Layer], per_step: bool,
                target_scale: Sequence[npt.ArrayLike] | None = None,
                wide: NgramLinear | None = None) -> onnx.GraphProto:
    """The graph of a connected stack of layers (see the module docstring); ``wide``: the
    model's ``NgramLinear`` term, if any."""
    check_layers(layers)
    g = _Graph()
    first = layers[0]
    if isinstance(first, Generic):
        x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                               ["batch", "time", first.size])
    else:
        shape = ["batch", "time"] + ([first.n_slots] if isinstance(first, FeatureEmbedding)
                                     else [])
        x_info = helper.make_tensor_value_info("ids", TensorProto.INT64, shape)
    rank = len(x_info.type.tensor_type.shape.dim)
    lengths = "lengths"
    time_in = g.op("Shape", x_info.name, start=1, end=2)
    # a batch of width 0 is padded to one step: the operators need a step to run
    extra = g.op("Max", g.op("Sub", g.const([1], dtype=np.int64), time_in),
                 g.const([0], dtype=np.int64))
    zeros = g.const([0], dtype=np.int64)
    pads = g.op("Concat", *([zeros] * (rank + 1)), extra, *([zeros] * (rank - 2)), axis=0)
    padded = g.op("Pad", x_info.name, pads)
    time_steps = g.op("Squeeze", g.op("Shape", padded, start=1, end=2),
                      g.const([0], dtype=np.int64))
    b = _Builder(g, lengths, time_steps)
    x, seq = _input(g, first, b, padded), True
    term = None
    if wide is not None:
        term = b.ngram_term(wide, g.op("Where", b.mask, padded, g.const(0, dtype=np.int64)))
    for i, layer in enumerate(layers[1:], start=1):
        if isinstance(layer, _Recurrent):
            x, seq = b.recurrent(layer, x)
        else:
            x = b.dense(cast(Dense, layer), x,  # (check_layers: Dense)
                        term if i == len(layers) - 1 else None)
    if target_scale is not None:  # regression: back to the units of the labels
        mean, std = (np.asarray(a, np.float32) for a in target_scale)
        x = g.op("Add", g.op("Mul", x, g.const(std, "std")), g.const(mean, "mean"))
    if per_step:
        x = g.op("Mul", x, b.mask3f)  # padding steps are 0
        x = g.op("Slice", x, zeros, time_in, g.const([1], dtype=np.int64))
    g.nodes.append(helper.make_node("Identity", [x], ["outputs"]))
    out_shape = ["batch", "time", None] if per_step else ["batch", None]
    return helper.make_graph(
        g.nodes, "passage", [x_info, helper.make_tensor_value_info(
            "lengths", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("outputs", TensorProto.FLOAT, out_shape)], g.inits)
