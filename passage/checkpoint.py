"""Training checkpoints: weights, optimizer, random-number state and history, no pickle.

A checkpoint is a zip of one JSON document and ``.npy`` arrays, written atomically after every
epoch by ``RNN.fit(..., checkpoint=path)``; ``fit(..., checkpoint=path, resume=True)`` continues
from the last completed epoch, so a run killed at any moment loses at most one epoch. It keeps
the model's ``run_signature``, so resuming another model is refused by ``check_resume``, naming
what differs; the resumed run uses the updater's current hyperparameters (a new lr is honoured).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from passage.files import CORRUPT, Archive, RefusedFile, finite_or_refuse, write_archive

if TYPE_CHECKING:
    RNN = Any  # passage.models.RNN, which imports this module: no import back up
    from passage.updates import Update

_DOC = "checkpoint.json"
FORMAT = "passage-checkpoint"
_ARRAY_KEY = re.compile(r"a\d+")


def _flatten(obj, arrays: dict[str, np.ndarray]):
    """``obj`` with every tensor / array replaced by a reference into ``arrays``."""
    if isinstance(obj, torch.Tensor | np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = obj.detach().cpu().numpy() if isinstance(obj, torch.Tensor) else obj
        return {"__array__": key, "torch": isinstance(obj, torch.Tensor)}
    if isinstance(obj, dict):
        return {"__dict__": [[_flatten(k, arrays), _flatten(v, arrays)] for k, v in obj.items()]}
    if isinstance(obj, list | tuple):
        return [_flatten(v, arrays) for v in obj]
    return obj


def _restore(obj, arrays: dict[str, np.ndarray]):
    if isinstance(obj, dict) and "__array__" in obj:
        arr = arrays[obj["__array__"]]
        return torch.from_numpy(arr) if obj["torch"] else arr
    if isinstance(obj, dict) and "__dict__" in obj:
        return {_restore(k, arrays): _restore(v, arrays) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [_restore(v, arrays) for v in obj]
    return obj


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` (nested dicts/lists of numbers, strings, tensors, arrays) atomically."""
    arrays: dict[str, np.ndarray] = {}
    doc = {"format": FORMAT, "version": 1, "state": _flatten(state, arrays)}

    write_archive(path, _DOC, json.dumps(doc), {f"{k}.npy": a for k, a in arrays.items()},
                  compress=False)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """The state saved by ``save_checkpoint``; a clear error for anything else.

    Read with the bounds of ``passage.files.Archive`` (sizes checked before anything is
    allocated); float arrays holding NaN or infinity are refused."""
    path = os.fspath(path)
    try:
        with Archive(path, "Passage checkpoint") as archive:
            doc = archive.read_json(_DOC)
            if not isinstance(doc, dict) or doc.get("format") != FORMAT or "state" not in doc:
                raise ValueError("missing format tag")
            keys = _array_keys(doc["state"])
            headers = {k: archive.npy_header(f"{k}.npy") for k in keys}  # all, before any data
            arrays = {}
            for key, header in headers.items():
                arrays[key] = archive.read_npy(f"{key}.npy", header)
                finite_or_refuse(archive, f"array {key}", arrays[key])
            return _restore(doc["state"], arrays)
    except RefusedFile:
        raise
    except (*CORRUPT, TypeError) as e:
        raise ValueError(f"{path!r} is not a readable Passage checkpoint ({type(e).__name__}: "
                         f"{e}); delete it to start over") from None


def _array_keys(state) -> list[str]:
    """The array keys ``state`` refers to (``a0``, ``a1``, ...), without recursion."""
    keys, todo = [], [state]
    while todo:
        obj = todo.pop()
        if isinstance(obj, dict) and "__array__" in obj:
            key = obj["__array__"]
            if not isinstance(key, str) or not _ARRAY_KEY.fullmatch(key):
                raise ValueError(f"bad array reference {key!r}")
            keys.append(key)
        elif isinstance(obj, dict):
            todo.extend(obj.values())
        elif isinstance(obj, list):
            todo.extend(obj)
    return sorted(set(keys))


# -- resuming ----------------------------------------------------------------------------------
def run_signature(model: RNN) -> dict:
    """What ``check_resume`` compares, stored in every checkpoint: the model's class, layers
    and cost, the updater's kind and a digest of the tokenizer's vocabulary (if any)."""
    tok, vocab = getattr(model, "tokenizer", None), None
    if tok is not None and hasattr(tok, "encoder"):
        words = json.dumps(tok.get_config().get("vocabulary"))
        vocab = hashlib.sha256(words.encode()).hexdigest()
    layers = [{"layer": type(la).__name__, "config": la.get_config()} for la in model.layers]
    # by name, not through get_config: a cost of one's own (not registered) can be checkpointed
    cost = getattr(model.cost, "__name__", type(model.cost).__name__)
    return json.loads(json.dumps({
        "class": type(model).__name__, "layers": layers, "cost": cost,
        "updater": type(model.updater).__name__, "vocabulary": vocab}))


_IGNORED = ("init",)  # layer options that do not matter once the weights are loaded


def _run_differences(saved: dict, now: dict) -> list[str]:
    out = []
    for key, what in (("class", "model class"), ("cost", "cost"), ("updater", "updater")):
        if saved.get(key) != now[key]:
            out.append(f"{what} {saved.get(key)!r} in the checkpoint, {now[key]!r} here")
    if saved.get("vocabulary") and now["vocabulary"] and saved["vocabulary"] != now["vocabulary"]:
        out.append("the tokenizer's vocabulary differs")
    old, new = saved.get("layers") or [], now["layers"]
    if len(old) != len(new):
        out.append(f"{len(old)} layers in the checkpoint, {len(new)} here")
    for i, (a, b) in enumerate(zip(old, new, strict=False)):
        if a.get("layer") != b["layer"]:
            out.append(f"layers[{i}] is {a.get('layer')} in the checkpoint, {b['layer']} here")
            continue
        ca, cb = a.get("config") or {}, b["config"]
        diff = [f"{k}={ca.get(k)!r} in the checkpoint, {cb.get(k)!r} here"
                for k in sorted(set(ca) | set(cb)) if k not in _IGNORED and ca.get(k) != cb.get(k)]
        if diff:
            out.append(f"layers[{i}] {b['layer']}: {', '.join(diff)}")
    return out


def _weight_differences(saved, model) -> list[str]:
    ours = model.model.state_dict()
    if not isinstance(saved, dict):
        return ["it holds no model weights"]
    out = [f"weight {k} only in the checkpoint" for k in sorted(set(saved) - set(ours))][:3]
    out += [f"weight {k} missing from the checkpoint" for k in sorted(set(ours) - set(saved))][:3]
    for k in sorted(set(saved) & set(ours)):
        theirs = tuple(getattr(saved[k], "shape", ()))
        if theirs != tuple(ours[k].shape):
            out.append(f"weight {k} is {theirs} in the checkpoint, {tuple(ours[k].shape)} here")
    return out


def _optimizer_differences(saved, model) -> list[str]:
    if saved is None:
        return []
    params = [p for p in model.params if p.requires_grad]
    fresh = model.updater.make_optimizer(params).state_dict()["param_groups"]
    groups = saved.get("param_groups") if isinstance(saved, dict) else None
    if not isinstance(groups, list) or len(groups) != len(fresh) or not all(
            isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups):
        return ["its optimizer state does not fit this model"]
    kinds = [sorted(set(g) - {"params"}) for g in groups], [sorted(set(g) - {"params"})
                                                           for g in fresh]
    if kinds[0] != kinds[1]:
        return [f"its optimizer is another kind (settings {kinds[0][0]}, here {kinds[1][0]})"]
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in fresh]:
        return ["its optimizer state covers another number of weights"]
    return []


def _state_problems(state, model) -> list[str]:
    """Fields a resume uses, checked on scratch objects before anything is changed."""
    problems = []
    rng = state.get("torch_rng")
    if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8 or \
            rng.shape != torch.get_rng_state().shape:
        problems.append("torch_rng")
    try:
        type(model.rng.bit_generator)().state = state.get("numpy_rng")
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError):
        problems.append("numpy_rng")
    for key, kind in (("epoch", int), ("costs", list), ("history", list), ("waited", int)):
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            problems.append(key)
    if not isinstance(state.get("best"), int | float):
        problems.append("best")
    return problems


def check_resume(path: str | os.PathLike, state: dict, model: RNN) -> None:
    """Refuse, before anything is loaded, a checkpoint that does not belong to ``model``:
    a ValueError naming what differs (layers and their sizes, vocabulary, cost, updater kind,
    weight shapes). Checkpoints written before ``run_signature`` existed are compared by
    their weights and optimizer state alone. The updater's hyperparameters (lr, ...) may
    differ: see ``current_hyperparameters``."""
    path = os.fspath(path)
    if not isinstance(state, dict):
        raise ValueError(f"{path!r} is not a readable Passage checkpoint; delete it to start over")
    damaged = _state_problems(state, model)
    if damaged:
        raise ValueError(f"{path!r} is a damaged Passage checkpoint (bad {', '.join(damaged)}); "
                         "delete it to start over")
    saved = state.get("run")
    differences = _run_differences(saved, run_signature(model)) if isinstance(saved, dict) \
        else []
    if not differences:
        differences = _weight_differences(state.get("model"), model) or \
            _optimizer_differences(state.get("optimizer"), model)
    if differences:
        raise ValueError(
            f"cannot resume from {path!r}: it is a checkpoint of another model ("
            + "; ".join(differences[:6]) + "). Fit this model with another checkpoint path "
            "(or delete that file) to start it from scratch, or build the model the "
            "checkpoint was written for")


def current_hyperparameters(updater: Update, params: Iterable[torch.Tensor],
                            saved: dict) -> dict:
    """``saved`` optimizer state with ``updater``'s own hyperparameters (lr, momentum, betas,
    ...): a resumed run trains with the updater it is given, e.g. a lowered learning rate
    (what the NaN error advises), while the moments and step counts carry on."""
    fresh = updater.make_optimizer([p for p in params if p.requires_grad])
    groups = [{**old, **{k: v for k, v in new.items() if k != "params"}}
              for old, new in zip(saved["param_groups"], fresh.state_dict()["param_groups"],
                                  strict=True)]
    return {**saved, "param_groups": groups}
