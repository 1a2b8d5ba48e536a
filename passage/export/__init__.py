"""Export a trained model to ONNX and its tokenizer to a Hugging Face ``tokenizer.json``.

    from passage.export import to_onnx, tokenizer_to_json
    to_onnx(model, "model.onnx")        # ids (batch, time) + lengths (batch) -> outputs
    tokenizer_to_json(model.tokenizer, "model.tokenizer.json")

The ONNX graph takes ``ids`` int64 (batch, time), right-padded (any pad value), and ``lengths``
int64 (batch); both dimensions are dynamic. Its ``outputs`` are what ``model.predict`` returns:
(batch, units), or for a model whose output is a sequence (a tagger) (batch, time, units) with
zeros at the padding (``predict`` returns each row cut to its length). The task, the label names,
the output kind and the Passage version are in the model's ``metadata_props``. Needs the
``export`` extra (``pip install "passage[export]"``): onnx, plus onnxruntime and tokenizers to
run the files. See docs/export.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from passage.exceptions import NotFittedError
from passage.files import atomic_write

if TYPE_CHECKING:
    import onnx

    from passage.models import RNN
    from passage.preprocessing import Tokenizer

__all__ = ["to_onnx", "onnx_model", "tokenizer_to_json", "tokenizer_json", "export_model",
           "metadata"]


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install \"passage[export]\" "
                          "(onnx, onnxruntime, tokenizers)") from None
    return onnx


def metadata(model: RNN, labels: Iterable[object] | None = None,
             task: str | None = None) -> dict[str, str]:
    """The ``metadata_props`` of the exported model: task, labels (JSON), output kind, input
    kind, Passage version. Labels and task default to those saved with the model (``passage
    train`` keeps them in ``model.extra_``; a Tagger keeps its tags)."""
    from passage import __version__
    from passage.layers import FeatureEmbedding, Generic

    extra = getattr(model, "extra_", None) or {}
    tagger = extra.get("tagger") or {}
    if labels is None:
        labels = extra.get("classes", tagger.get("tags"))
    if task is None:
        task = extra.get("task") or ("tagging" if tagger else None)
    first = model.layers[0]
    kind = "vectors" if isinstance(first, Generic) else \
        "feature_ids" if isinstance(first, FeatureEmbedding) else "ids"
    props = {"passage_version": __version__, "producer": "passage.export",
             "output": "per_step" if model.per_step else "per_example", "input": kind,
             "padding": "right; lengths gives each row's real steps",
             "labels": json.dumps(None if labels is None else list(labels)),
             "task": task or "unknown"}
    if kind != "vectors":
        props["n_features"] = str(first.n_features)
    return props


def onnx_model(model: object, labels: Iterable[object] | None = None,
               task: str | None = None) -> onnx.ModelProto:
    """The ``onnx.ModelProto`` of a trained ``RNN`` (checked with ``onnx.checker``)."""
    onnx = _onnx()
    from passage.export.graph import OPSET, build_graph
    from passage.models import RNN

    if type(model).__name__ == "LanguageModel" or not isinstance(model, RNN):
        raise TypeError(f"to_onnx exports a passage RNN (classifier, regressor or tagger); got "
                        f"a {type(model).__name__}")
    if not getattr(model, "fitted_", False):
        raise NotFittedError("this RNN has not been trained: fit or load it before exporting")
    graph = build_graph(model.layers, model.per_step, getattr(model, "target_scale_", None),
                        wide=getattr(model, "wide", None))
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                                   producer_name="passage")
    proto.ir_version = min(proto.ir_version, 8)  # readable by onnxruntime >= 1.13
    onnx.helper.set_model_props(proto, metadata(model, labels, task))
    onnx.checker.check_model(proto)
    return proto


def to_onnx(model: object, path: str | os.PathLike, labels: Iterable[object] | None = None,
            task: str | None = None) -> None:
    """Write ``model`` as an ONNX file (atomically). ``labels``/``task`` override the ones
    saved with the model in the metadata."""
    _write(path, onnx_model(model, labels, task).SerializeToString())


def tokenizer_json(tokenizer: Tokenizer) -> str:
    """The Hugging Face ``tokenizer.json`` text of a fitted Passage ``Tokenizer``; raises
    where the ``tokenizers`` library could give other ids (see ``passage.export.tokenizer``)."""
    from passage.export.tokenizer import tokenizer_json as make

    return make(tokenizer)


def tokenizer_to_json(tokenizer: Tokenizer, path: str | os.PathLike) -> None:
    """Write ``tokenizer_json(tokenizer)`` to ``path`` (atomically)."""
    _write(path, tokenizer_json(tokenizer).encode("utf-8"))


def _write(path: str | os.PathLike, data: bytes) -> None:
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, write)


def tokenizer_path(onnx_path: str | os.PathLike) -> str:
    """Where ``export_model`` puts the tokenizer: model.onnx -> model.tokenizer.json."""
    root, ext = os.path.splitext(os.fspath(onnx_path))
    return (root if ext == ".onnx" else os.fspath(onnx_path)) + ".tokenizer.json"


def export_model(model: object, path: str | os.PathLike, labels: Iterable[object] | None = None,
                 task: str | None = None) -> tuple[str, str | None]:
    """The ONNX file at ``path`` and, if the model has a tokenizer, its tokenizer.json beside
    it; returns both paths (None for no tokenizer). Everything is checked before either file
    is written."""
    proto = onnx_model(model, labels, task)
    tok = getattr(model, "tokenizer", None)
    text = tokenizer_json(tok) if tok is not None else None
    tok_path = tokenizer_path(path) if text is not None else None
    _write(path, proto.SerializeToString())
    if text is not None:
        assert tok_path is not None  # set with text
        _write(tok_path, text.encode("utf-8"))
    return os.fspath(path), tok_path
