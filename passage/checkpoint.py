"""Training checkpoints: weights, optimizer, random-number state and history, no pickle.

A checkpoint is a zip of one JSON document and ``.npy`` arrays, written atomically after every
epoch by ``RNN.fit(..., checkpoint=path)``; ``fit(..., checkpoint=path, resume=True)`` continues
from the last completed epoch, so a run killed at any moment loses at most one epoch.
"""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import torch

from passage.files import atomic_write

_DOC = "checkpoint.json"
FORMAT = "passage-checkpoint"


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

    def write(tmp):
        with zipfile.ZipFile(tmp, "w") as z:
            z.writestr(_DOC, json.dumps(doc))
            for key, arr in arrays.items():
                buf = io.BytesIO()
                np.save(buf, arr, allow_pickle=False)
                z.writestr(f"{key}.npy", buf.getvalue())

    atomic_write(path, write)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """The state saved by ``save_checkpoint``; a clear error for anything else."""
    try:
        with zipfile.ZipFile(path) as z:
            doc = json.loads(z.read(_DOC))
            if doc.get("format") != FORMAT:
                raise ValueError("missing format tag")
            arrays = {n[:-4]: np.load(io.BytesIO(z.read(n)), allow_pickle=False)
                      for n in z.namelist() if n.endswith(".npy")}
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError, json.JSONDecodeError) as e:
        raise ValueError(f"{os.fspath(path)!r} is not a readable Passage checkpoint ({e}); "
                         "delete it to start over") from None
    return _restore(doc["state"], arrays)
