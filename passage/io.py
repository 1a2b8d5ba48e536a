"""Save and load models: a zip of plain JSON config and ``.npy`` arrays, never a pickle.

Loading reads numbers and strings only (``numpy.load(allow_pickle=False)``), so a model file
cannot run code. Files are written atomically: a crash mid-save leaves the old file intact.
A model saved with its tokenizer predicts straight from raw text.

>>> import os, tempfile
>>> from passage.layers import Embedding, GatedRecurrent, Dense
>>> from passage.models import RNN
>>> m = RNN([Embedding(4, 10), GatedRecurrent(4), Dense(1, 'sigmoid')], 'bce', verbose=0)
>>> _ = m.fit([[3, 4], [5]], [1, 0])
>>> path = os.path.join(tempfile.mkdtemp(), "m.passage")
>>> save(m, path)
>>> bool((load(path).predict([[3, 4]]) == m.predict([[3, 4]])).all())
True
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib

import numpy as np
import torch

from passage import iterators, updates
from passage import layers as layer_registry
from passage.files import atomic_write
from passage.lm import LanguageModel
from passage.models import RNN
from passage.preprocessing import Tokenizer

FORMAT = "passage-model"
FORMAT_VERSION = 1
_CONFIG = "passage.json"
MODELS = {"RNN": RNN, "LanguageModel": LanguageModel}  # what ``load`` can rebuild, by name


def save(model, path: str | os.PathLike, tokenizer=None, extra: dict | None = None) -> None:
    """Write ``model`` (and ``tokenizer``, or the model's own) to ``path``.

    extra: optional JSON-able metadata kept in the file (e.g. class names); ``load`` gives it
    back as ``model.extra_`` (default: the model's own ``extra_``, so a re-save keeps it).
    """
    tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    extra = extra if extra is not None else getattr(model, "extra_", None)
    if extra is not None and not isinstance(extra, dict):
        raise TypeError(f"extra must be a dict or None, got {type(extra).__name__}")
    state = {k: v.detach().cpu().numpy() for k, v in model.model.state_dict().items()}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model.get_config(),
        "tokenizer": tokenizer.get_config() if tokenizer is not None else None,
        "weights": sorted(state),
        "target_scale": None if getattr(model, "target_scale_", None) is None else
        [np.asarray(a).tolist() for a in model.target_scale_],
        "extra": extra,
    }
    try:
        json.dumps(extra, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"extra must hold plain JSON data (dict, list, str, finite numbers, "
                        f"bool, None): {e}") from None
    config = json.dumps(meta, indent=1)

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(_CONFIG, config)
            for name, arr in state.items():
                buf = io.BytesIO()
                np.save(buf, arr, allow_pickle=False)
                z.writestr(f"weights/{name}.npy", buf.getvalue())

    atomic_write(path, write)


def read(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """The config and weight arrays of a model file, checked; clear errors for bad files."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model file at {path!r}")
    try:
        with zipfile.ZipFile(path) as z:
            meta = json.loads(z.read(_CONFIG))
            if meta.get("format") != FORMAT:
                raise ValueError("missing format tag")
            version = meta.get("format_version")
            if not isinstance(version, int) or version > FORMAT_VERSION:
                raise _NewerFormat(version)
            weights = {n: np.load(io.BytesIO(z.read(f"weights/{n}.npy")), allow_pickle=False)
                       for n in meta["weights"]}
    except _NewerFormat as e:
        raise ValueError(
            f"{path!r} was written in model format {e.args[0]}, newer than this Passage reads "
            f"({FORMAT_VERSION}): upgrade passage (pip install -U passage) to load it") from None
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError, json.JSONDecodeError,
            zlib.error) as e:
        raise ValueError(f"{path!r} is not a readable Passage model file (corrupted, truncated "
                         f"or another format: {type(e).__name__}: {e}); save the model again "
                         "with passage.utils.save") from None
    return meta, weights


def load(path: str | os.PathLike, device=None):
    """Rebuild a saved model (with its tokenizer, if one was saved)."""

    meta, weights = read(path)
    cfg = meta["model"]
    try:
        layers = [layer_registry.LAYERS[la["layer"]](**la["config"]) for la in cfg["layers"]]
    except KeyError as e:
        raise ValueError(f"model file uses layer {e.args[0]!r}, which is not registered here; "
                         "import the module that defines it (passage.layers.register)") from None
    tok = Tokenizer.from_config(meta["tokenizer"]) if meta.get("tokenizer") else None
    it = iterators.ITERATORS[cfg["iterator"]["name"].lower()](**cfg["iterator"]["config"])
    cls = MODELS.get(cfg.get("class", "RNN"))
    if cls is None:
        raise ValueError(f"model file holds a {cfg['class']!r}, which this Passage does not "
                         f"know (known: {', '.join(MODELS)})")
    model = cls(layers, cfg["cost"], updater=updates.from_config(**cfg["updater"]),
                verbose=cfg["verbose"], iterator=it, device=device, tokenizer=tok,
                precision=cfg.get("precision", "fp32"), **cfg.get("options", {}))
    state = model.model.state_dict()
    if set(state) != set(weights):
        raise ValueError(f"{os.fspath(path)!r} does not match its own config (weights "
                         f"{sorted(set(state) ^ set(weights))[:5]} differ): the file is damaged")
    for name, arr in weights.items():
        if tuple(arr.shape) != tuple(state[name].shape):
            raise ValueError(f"weight {name} has shape {arr.shape} in the file, the config "
                             f"needs {tuple(state[name].shape)}: the file is damaged")
        state[name] = torch.from_numpy(arr)
    model.model.load_state_dict(state)
    model.fitted_ = True
    if meta.get("target_scale") is not None:
        model.target_scale_ = tuple(np.asarray(a, dtype=np.float32) for a in meta["target_scale"])
    model.extra_ = meta.get("extra")  # None for files written without it
    return model


class _NewerFormat(Exception):
    pass

