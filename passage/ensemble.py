"""Ensembles: several models trained side by side, one process each, their predictions averaged.

On a CPU, a recurrent layer's step is a small matmul that one thread runs nearly as fast as two,
so two single-threaded trainings at once get more out of two cores than one training on two
threads (measured on IMDB in bf16: 82-89k tokens/s each, against 100-115k for one model on both
cores). So a forward and a backward GRU train in about 1.25x the time of one model, and on an
IMDB hold-out their average was 0.5-0.7 points more accurate than the better of the two.

    from functools import partial
    from passage.ensemble import fit_ensemble
    from passage.layers import Dense, Embedding, GatedRecurrent
    from passage.models import RNN

    def make_model(n_features, direction):   # module level: the worker processes import it
        return RNN([Embedding(128, n_features), GatedRecurrent(128, direction=direction),
                    Dense(1, 'sigmoid')], cost='bce', seed=0)

    if __name__ == '__main__':                # the workers skip this when they import it
        ...                                   # X, Y, test_X and a fitted Tokenizer tok
        ensemble = fit_ensemble([partial(make_model, tok.n_features, d)
                                 for d in ('forward', 'backward')], X, Y, n_epochs=2)
        ensemble.predict(test_X)              # the members' mean prediction

Averaging trained models needs no processes:

>>> import numpy as np
>>> from passage.layers import Dense, Embedding, GatedRecurrent
>>> from passage.models import RNN
>>> X, Y = [[3, 4, 5], [5, 4], [4, 4, 4, 3]], [1, 0, 1]
>>> members = []
>>> for s in (0, 1):
...     m = RNN([Embedding(4, 6), GatedRecurrent(4), Dense(1, "sigmoid")], "bce", verbose=0,
...             seed=s)
...     _ = m.fit(X, Y)
...     members.append(m)
>>> p = Ensemble(members).predict(X)
>>> bool(np.allclose(p, (members[0].predict(X) + members[1].predict(X)) / 2))
True

``passage.utils.save(ensemble, path)`` writes one file holding the members' model files
(``save_ensemble``); ``passage.utils.load(path)`` gives the Ensemble back (``load_ensemble``):
plain data, as for one model, and each member is read by ``passage.io.load``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
import torch

from passage import _processes, distributed
from passage import io as model_io
from passage.exceptions import NotFittedError
from passage.files import Archive, atomic_write
from passage.models import RNN

FORMAT = "passage-ensemble"
FORMAT_VERSION = 1
CONFIG = "passage-ensemble.json"  # the zip member naming the members; see passage.io.KINDS
MAX_MEMBERS = 1000


class Ensemble:
    """Trained ``passage.models.RNN`` models whose outputs (``predict``) are averaged; all must
    give outputs of one shape. Not a scikit-learn estimator: it is fitted by ``fit_ensemble`` or
    made of models trained one by one."""

    extra_: dict | None  # the metadata a loaded ensemble file kept

    def __init__(self, models: Sequence[RNN]):
        self.models = models

    def predict(self, X: Sequence[Any] | np.ndarray,
                batch_size: int = 256) -> np.ndarray | list[np.ndarray]:
        """The mean of the members' ``predict(X)``: an array, or one array per example for
        models whose output is a sequence (e.g. taggers)."""
        outs = [m.predict(X, batch_size=batch_size) for m in _checked_members(self)]
        if isinstance(outs[0], np.ndarray):
            shapes = {o.shape for o in cast(list[np.ndarray], outs)}
            if len(shapes) > 1:
                raise ValueError(f"the members' predictions have different shapes {sorted(shapes)}:"
                                 " an ensemble averages models with the same output layer")
            return np.mean(outs, axis=0)
        return [np.mean(parts, axis=0) for parts in zip(*outs, strict=True)]


def fit_ensemble(make_models: Sequence[Callable[[], RNN]], trX: Sequence, trY: Sequence, *,
                 threads: int | None = None, **fit_kwargs) -> Ensemble:
    """Train ``make_models[i]()`` on (trX, trY) in process i, all at once; returns their Ensemble.

    make_models: zero-argument functions building the untrained members (at least two). They are
    sent to the worker processes, so each must be picklable: a function defined at module level,
    or a ``functools.partial`` of one.
    threads: intra-op threads per process (default: CPU cores / members, at least 1).
    fit_kwargs: passed to every member's ``fit`` (n_epochs, batch_size, len_filter, ...).
    Each member runs on the device its ``make_model`` gives it; with GPUs, process i's current
    CUDA device is GPU i (modulo their number), which ``device='cuda'`` uses.
    The call must sit under ``if __name__ == '__main__':`` in a script: the workers import it.
    Only process 0 prints progress. The members come back through model files
    (``passage.utils.load``), with their ``history_`` but without their updaters' state.
    The workers never outlive this process, even killed; on SIGTERM it removes the job's
    temporary folder (the data) before ending (see ``passage._processes``).
    """
    if callable(make_models) or isinstance(make_models, str) \
            or not isinstance(make_models, Sequence):
        raise TypeError("make_models must be a list of zero-argument functions building the "
                        f"members (got {type(make_models).__name__}); e.g. "
                        "[partial(make_model, 'forward'), partial(make_model, 'backward')]")
    make_models = list(make_models)
    if len(make_models) < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {len(make_models)}; to "
                         "train one model, call its fit (or fit_distributed for data-parallel)")
    for i, make in enumerate(make_models):
        if not callable(make) or isinstance(make, RNN):
            raise TypeError(f"make_models[{i}] must be a zero-argument function that builds an "
                            f"RNN, got {type(make).__name__}")
        _processes.check_picklable(make)
    if distributed.launched_by_torchrun():
        raise RuntimeError("fit_ensemble starts its own processes: run the script with python, "
                           "not torchrun")
    _processes.check_threads(threads)
    _processes.check_fit_kwargs(fit_kwargs, "fit_ensemble")
    _processes.check_not_in_worker_import("fit_ensemble")
    n = len(make_models)
    return Ensemble(_processes.spawn(_train_member, n, make_models, trX, trY, fit_kwargs,
                                     threads, None, 1800.0, returns=n))


def _train_member(rank, world, make_models, X, Y, fit_kwargs, backend, timeout) -> RNN:
    """What process ``rank`` started by ``fit_ensemble`` runs: member ``rank``, alone."""
    if torch.cuda.is_available():  # one GPU per member, in turn
        torch.cuda.set_device(rank % torch.cuda.device_count())
    model = make_models[rank]()
    if not isinstance(model, RNN):
        raise TypeError(f"make_models[{rank}]() must return a passage.models.RNN, got "
                        f"{type(model).__name__}")
    model.verbose = model.verbose if rank == 0 else 0
    model.fit(X, Y, **fit_kwargs)
    return model


# -- files -----------------------------------------------------------------------------------------
def save_ensemble(ensemble: Ensemble, path: str | os.PathLike, tokenizer: object = None,
                  extra: dict | None = None) -> None:
    """Write ``ensemble`` to ``path``: a zip of its members' model files (``passage.io.save``)
    and a JSON list of them; atomic, like a model file. ``extra``: JSON metadata given back as
    the loaded ensemble's ``extra_``. What ``passage.utils.save`` does with an Ensemble."""
    if tokenizer is not None:
        raise ValueError("an Ensemble is saved without a tokenizer argument: each member keeps "
                         "its own (RNN(..., tokenizer=...)); save it with save(ensemble, path)")
    members = _checked_members(ensemble, trained=True)
    extra = extra if extra is not None else getattr(ensemble, "extra_", None)
    if extra is not None and not isinstance(extra, dict):
        raise TypeError(f"extra must be a dict or None, got {type(extra).__name__}")
    try:
        meta = json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION,
                           "members": [_member_name(i) for i in range(len(members))],
                           "extra": extra}, indent=1, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"extra must hold plain JSON data (dict, list, str, finite numbers, "
                        f"bool, None): {e}") from None
    with tempfile.TemporaryDirectory(prefix="passage-ensemble-") as tmp:
        files = []
        for i, member in enumerate(members):  # every member written before the target is
            files.append(os.path.join(tmp, f"{i}.passage"))
            model_io.save(member, files[-1])

        def write(target):
            # deflated, not stored: a truncated file must not open as the zip of its first
            # member (a zip reader looks for the end-of-archive record from the end)
            with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
                z.writestr(CONFIG, meta)
                for i, name in enumerate(files):
                    z.write(name, _member_name(i))

        atomic_write(path, write)


def load_ensemble(path: str | os.PathLike,
                  device: str | int | torch.device | None = None) -> Ensemble:
    """The Ensemble saved at ``path`` by ``save_ensemble``, each member read by
    ``passage.io.load`` (plain data: no code runs). What ``passage.utils.load`` does with an
    ensemble file."""
    path = os.fspath(path)
    try:
        with Archive(path, "Passage ensemble file") as archive, \
                tempfile.TemporaryDirectory(prefix="passage-ensemble-") as tmp:
            meta = archive.read_json(CONFIG)
            members: list[RNN] = []
            for name in _member_names(archive, meta):
                local = os.path.join(tmp, "member.passage")
                _extract(archive, name, local)
                try:
                    members.append(cast(RNN, model_io.load(local, device=device)))
                except ValueError as e:  # worded for the temporary copy: name the member
                    raise ValueError(f"{path!r}, member {name}: "
                                     f"{str(e).replace(repr(local), 'it')}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, KeyError,
            UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path!r} is not a readable Passage ensemble file (damaged or "
                         f"truncated: {type(e).__name__}: {e}); save the ensemble again") from None
    ensemble = Ensemble(members)
    ensemble.extra_ = meta.get("extra")
    return ensemble


def _checked_members(ensemble: Ensemble, trained: bool = False) -> list[RNN]:
    """The ensemble's models as a list: at least one, all ``passage.models.RNN`` (and, with
    ``trained``, all fitted)."""
    members = list(ensemble.models)
    if not members:
        raise ValueError("an Ensemble needs at least one model; got none")
    for i, m in enumerate(members):
        if not isinstance(m, RNN):
            raise TypeError(f"models[{i}] is a {type(m).__name__}; an Ensemble averages "
                            "passage.models.RNN outputs (for RNNClassifier, average "
                            "predict_proba yourself)")
        if trained and not m.fitted_:
            raise NotFittedError(f"models[{i}] has not been trained: fit it (or load it) before "
                             "saving the ensemble")
    return members


def _member_name(i: int) -> str:
    return f"members/{i}.passage"


def _member_names(archive: Archive, meta) -> list[str]:
    """The member files listed by the config, which must be the ones save_ensemble writes."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise archive.refuse(f"{CONFIG} is not an ensemble config (format tag missing)")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise archive.refuse(f"it was written in ensemble format {version!r}, newer than this "
                             f"Passage reads ({FORMAT_VERSION}): upgrade passage to load it")
    names = meta.get("members")
    if not isinstance(names, list) or not 1 <= len(names) <= MAX_MEMBERS or \
            names != [_member_name(i) for i in range(len(names))]:
        raise archive.refuse(f"its member list must be 1 to {MAX_MEMBERS} names "
                             "members/0.passage, members/1.passage, ...")
    if meta.get("extra") is not None and not isinstance(meta["extra"], dict):
        raise archive.refuse("its extra metadata is not a JSON object")
    return names


def _extract(archive: Archive, name: str, target: str) -> None:
    """Copy member ``name`` to the file ``target``, in chunks: the size its entry declares is
    checked first (``Archive.info``: zip-bomb limits), and the zip reader never expands a
    member past that size."""
    try:
        info = archive.info(name)
    except KeyError:
        raise archive.refuse(f"member {name!r} is missing") from None
    with archive.zip.open(info) as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)


model_io.SAVERS[Ensemble] = save_ensemble
model_io.LOADERS[CONFIG] = load_ensemble
