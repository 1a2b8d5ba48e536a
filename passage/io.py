"""Save and load models: a zip of plain JSON config and ``.npy`` arrays, never a pickle.

Loading reads numbers and strings only (never a pickle), so a model file cannot run code, and
it checks every size before allocating: the members' sizes against zip-bomb limits, the layer
sizes the config declares against the weights the file holds, each ``.npy`` header against the
weight the model needs; weights holding NaN or infinity are refused (limits:
``passage.files``). Files are written atomically: a crash mid-save leaves the old file intact.
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

import contextlib
import json
import math
import os
import re
import zipfile
from typing import Any, cast

import numpy as np
import torch

from passage import iterators, updates
from passage import layers as layer_registry
from passage.files import (
    CORRUPT,
    Archive,
    RefusedFile,
    finite_or_refuse,
    write_archive,
)
from passage.preprocessing import Tokenizer
from passage.registry import MODELS
from passage.wide import NgramLinear

FORMAT = "passage-model"
FORMAT_VERSION = 1
_CONFIG = "passage.json"
MAX_LAYERS = 1000
MAX_DIM = 2 ** 31 - 1  # any one size in a layer's config
_WEIGHT_NAME = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")  # state-dict keys, no paths
# Files of other objects, written and read by their own modules, which register here (io cannot
# import them: they import io). KINDS: {config member of such a zip: module that reads it}.
SAVERS: dict = {}  # {class: save(obj, path, tokenizer=, extra=)}
LOADERS: dict = {}  # {config member name: load(path, device=)}
KINDS = {"passage-ensemble.json": "passage.ensemble"}
# Objects that wrap a model and keep their own description in its ``extra`` (a Tagger: tag
# names and word features): {extra key: wrap(model, path) -> the object}. ``load`` gives the
# object back when its module is imported (``import passage`` imports them all).
WRAPPERS: dict = {}


def save(model: Any, path: str | os.PathLike, tokenizer: Tokenizer | None = None,
         extra: dict | None = None) -> None:
    """Write ``model`` (and ``tokenizer``, or the model's own) to ``path``.

    extra: optional JSON-able metadata kept in the file (e.g. class names); ``load`` gives it
    back as ``model.extra_`` (default: the model's own ``extra_``, so a re-save keeps it).
    A ``passage.ensemble.Ensemble`` is saved as a zip of its members' model files.
    """
    if type(model) in SAVERS:  # e.g. an Ensemble: its own module writes it
        return SAVERS[type(model)](model, path, tokenizer=tokenizer, extra=extra)
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
        [np.asarray(a).tolist()
         for a in cast("tuple[np.ndarray, np.ndarray]", model.target_scale_)],
        "extra": extra,
    }
    try:
        json.dumps(extra, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"extra must hold plain JSON data (dict, list, str, finite numbers, "
                        f"bool, None): {e}") from None
    write_archive(path, _CONFIG, json.dumps(meta, indent=1),
                  {f"weights/{name}.npy": arr for name, arr in state.items()})


def read(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """The config and weight arrays of a model file, checked; clear errors for bad files.

    Nothing is allocated before it is checked: the config is read with a bounded reader, the
    ``.npy`` headers are checked against their members' sizes, the sizes the layers declare
    against what the file holds (``_check_declared``), and only then are the arrays read;
    arrays holding NaN or infinity are refused. Limits: ``passage.files``.
    """
    with _opened(path) as (archive, meta, headers):
        return meta, _read_arrays(archive, headers)


def load(path: str | os.PathLike, device: str | int | torch.device | None = None) -> Any:
    """Rebuild a saved model (with its tokenizer, if one was saved), or a saved Ensemble, or
    the object that wrapped the model when it was saved (a ``Tagger``: see ``WRAPPERS``).

    The model is built (its weights bounded by what the file holds, see ``read``), its weight
    shapes compared with the file's ``.npy`` headers, and only then are the arrays read."""
    kind = _other_kind(path)
    if kind is not None:  # e.g. an Ensemble's file: its own module reads it
        return _other_loader(path, kind)(path, device=device)
    model = load_model(path, device)
    wrap = next((WRAPPERS[k] for k in (model.extra_ or {}) if k in WRAPPERS), None)
    return wrap(model, path) if wrap is not None else model


def load_model(path: str | os.PathLike,
               device: str | int | torch.device | None = None) -> Any:
    """The model of a model file (``load`` without giving back a wrapping object)."""
    with _opened(path) as (archive, meta, headers):
        model, target_scale = _build(path, meta, device)
        state = model.model.state_dict()
        if set(state) != set(headers):
            raise archive.refuse(f"its weights {sorted(set(state) ^ set(headers))[:5]} do not "
                                 "match its own config: the file is damaged")
        for name, (shape, *_) in headers.items():
            if shape != tuple(state[name].shape):
                raise archive.refuse(f"its config declares weight {name}"
                                     f"{_layer_of(meta['model'], name)} of shape "
                                     f"{tuple(state[name].shape)}, but the file's array is "
                                     f"{shape}")
        weights = _read_arrays(archive, headers)
    model.model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    model.fitted_ = True
    model.target_scale_ = target_scale
    model.extra_ = meta.get("extra")  # None for files written without it
    return model


@contextlib.contextmanager
def _opened(path):
    """(archive, config, checked .npy headers by weight name), with the file's errors worded."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model file at {path!r}")
    try:
        with Archive(path, "Passage model file") as archive:
            meta = archive.read_json(_CONFIG)
            _check_meta(archive, meta)
            headers = {n: archive.npy_header(f"weights/{n}.npy") for n in meta["weights"]}
            for name, (_, dtype, *_) in headers.items():
                if dtype.kind != "f":
                    raise archive.refuse(f"weight {name} holds {dtype} values, not floats")
            _check_declared(archive, meta["model"], headers)
            yield archive, meta, headers
    except _NewerFormat as e:
        raise ValueError(
            f"{path!r} was written in model format {e.args[0]}, newer than this Passage reads "
            f"({FORMAT_VERSION}): upgrade passage (pip install -U passage) to load it") from None
    except RefusedFile:
        raise
    except CORRUPT as e:
        raise ValueError(f"{path!r} is not a readable Passage model file (corrupted, truncated "
                         f"or another format: {type(e).__name__}: {e}); save the model again "
                         "with passage.utils.save") from None


def _build(path, meta: dict, device):
    """The model the config describes, with fresh weights, and its target scale."""
    cfg = meta["model"]
    cls = MODELS.get(cfg.get("class", "RNN"))
    if cls is None:
        raise RefusedFile(f"model file holds a {cfg['class']!r}, which this Passage does not "
                          f"know (known: {', '.join(MODELS)})")
    try:
        layers = _layers(cfg)
        tok = Tokenizer.from_config(meta["tokenizer"]) if meta.get("tokenizer") else None
        it = iterators.ITERATORS[cfg["iterator"]["name"].lower()](**cfg["iterator"]["config"])
        model = cls(layers, cfg["cost"], updater=updates.from_config(**cfg["updater"]),
                    verbose=cfg["verbose"], iterator=it, device=device, tokenizer=tok,
                    precision=cfg.get("precision", "fp32"), **cfg.get("options", {}),
                    **({"wide": NgramLinear(**cfg["wide"])} if cfg.get("wide") else {}))
        target_scale = None if meta.get("target_scale") is None else \
            tuple(np.asarray(a, dtype=np.float32) for a in meta["target_scale"])
    except RefusedFile:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as e:
        raise RefusedFile(f"{os.fspath(path)!r} holds a model config this Passage cannot build "
                          f"({type(e).__name__}: {e}); save the model again with "
                          "passage.utils.save") from None
    return model, target_scale


def _check_meta(archive: Archive, meta) -> None:
    """The config's structure: the types every later step relies on."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError("missing format tag")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise _NewerFormat(version)
    cfg, names = meta.get("model"), meta.get("weights")
    problems = [
        ("model", isinstance(cfg, dict)),
        ("model.layers", isinstance(cfg, dict) and isinstance(cfg.get("layers"), list) and
         0 < len(cfg["layers"]) <= MAX_LAYERS and
         all(isinstance(la, dict) and isinstance(la.get("layer"), str) and
             isinstance(la.get("config"), dict) for la in cfg["layers"])),
        ("model.updater / model.iterator", isinstance(cfg, dict) and all(
            isinstance(cfg.get(k), dict) and isinstance(cfg[k].get("name"), str) and
            isinstance(cfg[k].get("config"), dict) for k in ("updater", "iterator"))),
        ("model.options", isinstance(cfg, dict) and isinstance(cfg.get("options", {}), dict)),
        ("weights", isinstance(names, list) and len(set(map(str, names))) == len(names) and
         all(isinstance(n, str) and _WEIGHT_NAME.fullmatch(n) for n in names)),
        ("tokenizer", meta.get("tokenizer") is None or isinstance(meta["tokenizer"], dict)),
        ("target_scale", meta.get("target_scale") is None or (
            isinstance(meta["target_scale"], list) and len(meta["target_scale"]) == 2)),
        ("extra", meta.get("extra") is None or isinstance(meta["extra"], dict)),
    ]
    bad = [what for what, ok in problems if not ok]
    if bad:
        raise archive.refuse(f"its config is malformed ({', '.join(bad)}; at most {MAX_LAYERS} "
                             "layers); save the model again with passage.utils.save")


def _layers(cfg: dict) -> list:
    """The layers the config describes (no weights yet)."""
    out = []
    for i, la in enumerate(cfg["layers"]):
        kind = layer_registry.LAYERS.get(la["layer"])
        if kind is None:
            raise RefusedFile(f"model file uses layer {la['layer']!r}, which is not registered "
                              "here; import the module that defines it (passage.layers.register)")
        config = dict(la["config"])
        try:
            out.append(kind(**config))
        except (TypeError, ValueError, KeyError, OverflowError) as e:
            raise RefusedFile(f"model file's layers[{i}] ({la['layer']}) has an invalid "
                              f"config: {e}") from None
    return out


# the weights a built-in layer has at least, from its config and input size (a lower bound:
# what it declares can then be checked against what the file holds before anything is built)
_GATES = {"SimpleRecurrent": 1, "GatedRecurrent": 3, "LstmRecurrent": 4}


def _least_weights(kind: str, c: dict, n_in: int) -> tuple[int, int]:
    """(at least how many weights the layer has, how many features it outputs)."""
    size = c.get("size", 1) if isinstance(c.get("size", 1), int) else 1
    if kind in ("Embedding", "FeatureEmbedding"):
        n_slots = c.get("n_slots", 1) if isinstance(c.get("n_slots", 1), int) else 1
        return c.get("n_features", 256) * size, size * n_slots
    if kind == "OneHot":
        return 0, c.get("n_features", 1)
    if kind == "Dense":
        return size * (n_in + 1), size
    if kind in _GATES:
        ways = 2 if str(c.get("direction", "forward")).lower().startswith("bi") else 1
        return ways * _GATES[kind] * size * (n_in + size + 2), ways * size
    if kind == "AdaptiveSoftmax" and isinstance(c.get("cutoffs"), list) and c["cutoffs"]:
        return c["cutoffs"][0] * n_in, size
    return 0, size


def _check_declared(archive: Archive, cfg: dict, headers: dict) -> None:
    """Refuse layer sizes that need more weights than the file holds, before building."""
    held = sum(math.prod(h[0]) for h in headers.values())
    need, n_in = 0, 0
    for i, la in enumerate(cfg["layers"]):
        config = la["config"]
        for key, v in config.items():
            if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_DIM:
                raise archive.refuse(f"its layers[{i}] ({la['layer']}) declares {key}={v}, "
                                     f"beyond any real model (limit {MAX_DIM:,})")
        if not all(isinstance(v, int) for k, v in config.items() if k in _SIZES):
            continue  # an invalid size: the layer's own constructor words the error
        least, n_in = _least_weights(la["layer"], config, n_in)
        need += least
        if need > held:
            raise archive.refuse(
                f"its layers[{i}], {la['layer']}({_sizes(config)}), needs at least "
                f"{need:,} weights with the layers before it, but the file holds {held:,}: "
                "the config and the weights disagree (a damaged or forged file)")


_SIZES = ("size", "n_features", "n_slots")


def _read_arrays(archive: Archive, headers: dict) -> dict[str, np.ndarray]:
    """The weight arrays (headers already checked), each refused if it holds NaN or inf."""
    weights = {}
    for name, header in headers.items():
        weights[name] = archive.read_npy(f"weights/{name}.npy", header)
        finite_or_refuse(archive, f"weight {name}", weights[name])
    return weights


def _sizes(config: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in config.items()
                     if isinstance(v, int) and not isinstance(v, bool))


def _layer_of(cfg: dict, weight: str) -> str:
    """`` (layers[i], Kind(size=..., ...))`` for a weight named ``layers.i....``."""
    parts = weight.split(".")
    if len(parts) < 2 or not parts[1].isdigit() or int(parts[1]) >= len(cfg["layers"]):
        return ""
    la = cfg["layers"][int(parts[1])]
    return f" (layers[{parts[1]}], {la['layer']}({_sizes(la['config'])}))"


class _NewerFormat(Exception):
    pass


def _other_kind(path) -> str | None:
    """The config member naming one of ``KINDS`` if ``path`` is such a zip, else None (and
    ``read`` words any error)."""
    try:
        with zipfile.ZipFile(path) as z:
            return next((n for n in z.namelist() if n in KINDS), None)
    except CORRUPT:
        return None


def _other_loader(path, kind: str):
    if kind not in LOADERS:
        raise ValueError(f"{os.fspath(path)!r} is a file of {KINDS[kind]}, whose reader is "
                         f"registered when it is imported: `import {KINDS[kind]}` before "
                         "loading it")
    return LOADERS[kind]
