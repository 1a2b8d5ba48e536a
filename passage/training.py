"""The training loop shared by every model, and the callbacks that run around it.

``RNN.fit`` (and through it ``Tagger.fit``, the sklearn estimators and ``fit_distributed``) and
``LanguageModel.fit`` each say how to train one epoch; ``train`` runs the epochs, scores the
validation data, keeps the history and calls the callbacks. Everything around the loop is a
callback: keeping the best epoch and stopping early, checkpoints and resume, the learning-rate
schedules, snapshots, the progress bar and the per-epoch lines. Users add their own with
``fit(..., callbacks=[...])``.

A callback overrides any of the hooks of ``Callback``; each receives the ``Run``, which holds
the model, the epoch, the history and a ``stop`` flag a callback may set:

>>> import csv
>>> class CSVLog(Callback):
...     def __init__(self, path):
...         self.path = path
...     def on_epoch_end(self, run, epoch, record):
...         with open(self.path, "a", newline="") as f:
...             csv.writer(f).writerow([record["epoch"], record["cost"]])

Order: the model's own callbacks (checkpoint, early stopping, schedules, progress) run before
the user's, in that order, so a user's ``on_epoch_end`` sees the epoch's final record.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np
import torch

from passage._memory import release_free_memory
from passage.checkpoint import (
    check_resume,
    current_hyperparameters,
    load_checkpoint,
    run_signature,
    save_checkpoint,
)
from passage.io import save

if TYPE_CHECKING:
    from passage.iterators import Padded
    RNN = Any  # passage.models.RNN, which imports this module: no import back up

__all__ = ["Callback", "Checkpoint", "DataParallel", "EarlyStopping", "EpochLog", "LinearLR",
           "PlateauLR", "ProgressBar", "Run", "Snapshots", "train"]


C = TypeVar("C", bound="Callback")


class Callback:
    """Hooks around the training loop; every one does nothing unless overridden.

    on_train_begin(run): before the first epoch (a resumed run has ``run.epoch`` > 0 after it).
    on_epoch_begin(run, epoch): ``epoch`` counts from 0.
    on_batch_begin(run, batch) / on_batch_end(run, batch, logs): around each update; ``logs``
    holds ``cost`` (float), ``examples`` and ``tokens`` (ints) of the batch.
    on_epoch_end(run, epoch, record): ``record`` is the epoch's entry of the history: ``epoch``
    (1-based over all fits of the model), ``cost``, ``seconds``, and ``val_<metric>`` scores.
    on_train_end(run): after the last epoch (also after an early stop).
    on_failure(run, error): training failed (e.g. the cost became NaN, the weights of the
    epoch before are back); returns a sentence of advice for the error message, or "".
    """

    def on_train_begin(self, run: Run) -> None: ...
    def on_epoch_begin(self, run: Run, epoch: int) -> None: ...
    def on_batch_begin(self, run: Run, batch: int) -> None: ...
    def on_batch_end(self, run: Run, batch: int, logs: dict) -> None: ...
    def on_epoch_end(self, run: Run, epoch: int, record: dict) -> None: ...
    def on_train_end(self, run: Run) -> None: ...

    def on_failure(self, run: Run, error: BaseException) -> str:
        return ""


class Run:
    """What one call of ``train`` shares with its callbacks.

    model: the model being trained. n_epochs: epochs planned. epoch: the next epoch to run.
    history: the model's ``history_`` (one record per epoch, over all its fits). costs: every
    batch's cost in this call (with a resumed run's earlier ones). stop: set it to end training
    after the current epoch. batch: batches run so far in the current epoch.
    forward: the module the step runs the forward pass through (the model's own, or a
    data-parallel wrapper set by a callback), batches: what draws the batches (the model's
    iterator, or a per-process share), validate: scores the validation data (or None).
    """

    def __init__(self, model: RNN, n_epochs: int, callbacks: Sequence[Callback], *,
                 validate: Callable[[], dict] | None = None, batches: Padded | None = None,
                 forward: torch.nn.Module | None = None):
        self.model, self.n_epochs = model, n_epochs
        self.callbacks = list(callbacks)
        self.validate, self.batches, self.forward = validate, batches, forward
        self.epoch, self.batch, self.stop = 0, 0, False
        if not isinstance(getattr(model, "history_", None), list):
            model.history_ = []
        self.history: list[dict] = model.history_
        self.costs: list[float] = []

    def find(self, kind: type[C]) -> C | None:
        """The first callback of type ``kind``, or None."""
        return next((c for c in self.callbacks if isinstance(c, kind)), None)

    def call(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    def batch_begin(self) -> None:
        """Called by an epoch's step before each update."""
        self.call("on_batch_begin", self.batch)

    def batch_end(self, cost: float, examples: int, tokens: int) -> None:
        """Called by an epoch's step after each update."""
        self.costs.append(cost)
        self.call("on_batch_end", self.batch, {"cost": cost, "examples": examples,
                                               "tokens": tokens})
        self.batch += 1


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the module's state (to restore later)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def train(run: Run, epoch_step: Callable[[Run, int], dict]) -> list[float]:
    """Run the epochs of ``run``: ``epoch_step(run, epoch)`` trains one epoch (calling
    ``run.batch_begin`` / ``run.batch_end`` around each update) and returns its record (cost,
    seconds, ...); validation scores are added as ``val_<name>``. Returns every batch's cost.

    If an epoch fails with a FloatingPointError (a NaN cost), the weights from before it are
    put back and the error says so, with the callbacks' advice."""
    model = run.model
    run.call("on_train_begin")
    while run.epoch < run.n_epochs and not run.stop:
        epoch = run.epoch
        run.batch = 0
        run.call("on_epoch_begin", epoch)
        good = weights(model.model)
        try:
            stats = epoch_step(run, epoch)
        except FloatingPointError as e:
            model.model.load_state_dict(good)  # never leave NaN weights in the model
            advice = "".join(cb.on_failure(run, e) for cb in run.callbacks)
            raise FloatingPointError(f"{e}. The weights from before epoch {epoch + 1} were "
                                     f"restored{advice}") from None
        model.fitted_ = True
        record = {"epoch": len(run.history) + 1, **stats}
        if run.validate is not None:
            record.update({f"val_{k}": v for k, v in run.validate().items()})
        run.history.append(record)
        run.epoch = epoch + 1
        release_free_memory()  # the epoch's freed blocks: back to the OS, not kept (see there)
        run.call("on_epoch_end", epoch, record)
    run.call("on_train_end")
    return run.costs


# -- the callbacks the models use ------------------------------------------------------------------
LOWER_IS_BETTER = ("cost", "mse", "mae", "perplexity", "bits")


class EarlyStopping(Callback):
    """Keeps the weights of the best epoch by the validation score ``monitor`` (restored when
    training ends) and, with ``patience``, stops after that many epochs without improvement.
    A tie on a metric goes to the epoch of lower validation cost.

    After each epoch ``improved`` says whether it was the best so far.
    """

    def __init__(self, monitor: str = "cost", patience: int | None = None,
                 verbose: int = 0):
        self.monitor, self.patience, self.verbose = monitor, patience, verbose
        self.sign = -1.0 if monitor in LOWER_IS_BETTER else 1.0  # larger is better after sign
        self.best, self.best_cost, self.waited = -np.inf, np.inf, 0
        self.best_state: dict | None = None
        self.best_epoch: int | None = None
        self.improved = False

    def _exhausted(self) -> bool:
        return self.patience is not None and self.waited > 0 and self.waited >= self.patience

    def on_train_begin(self, run: Run) -> None:
        if self._exhausted():  # a resumed run that had already stopped
            run.stop = True

    def on_epoch_end(self, run: Run, epoch: int, record: dict) -> None:
        key = f"val_{self.monitor}"
        if key not in record:
            scores = sorted(k[4:] for k in record if k.startswith("val_"))
            raise ValueError(f"monitor={self.monitor!r} is not computed for this model; choose "
                             f"one of {scores}")
        score, cost = self.sign * record[key], record.get("val_cost", np.inf)
        self.improved = score > self.best or (score == self.best and self.monitor != "cost"
                                              and cost < self.best_cost)
        if self.improved:
            self.best, self.best_cost, self.waited = score, cost, 0
            self.best_epoch = run.model.best_epoch_ = record["epoch"]
            self.best_state = weights(run.model.model)
        else:
            self.waited += 1
        if self._exhausted():
            if self.verbose >= 1:
                print(f"  no improvement in {self.patience} epochs: stopping")
            run.stop = True

    def on_train_end(self, run: Run) -> None:
        if self.best_state is not None:
            run.model.model.load_state_dict(self.best_state)
            if self.verbose >= 1:
                print(f"  kept epoch {self.best_epoch} (best validation {self.monitor})")

    def state_dict(self) -> dict:
        return {"best": self.best, "best_cost": self.best_cost, "waited": self.waited,
                "best_state": self.best_state, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.waited = state["best"], state["waited"]
        self.best_state, self.best_cost = state["best_state"], state.get("best_cost", np.inf)
        self.best_epoch = state.get("best_epoch")


class Checkpoint(Callback):
    """Writes ``path`` atomically after every epoch (weights, optimizer, random state, history,
    early-stopping state); with ``resume=True`` a run whose file exists continues after its
    last completed epoch (a checkpoint of another model is refused, naming what differs)."""

    def __init__(self, path: str | os.PathLike, resume: bool = False):
        self.path, self.resume = os.fspath(path), resume

    def on_train_begin(self, run: Run) -> None:
        if not (self.resume and os.path.exists(self.path)):
            return
        model = run.model
        st = load_checkpoint(self.path)
        check_resume(self.path, st, model)  # another model: refused here
        model.model.load_state_dict(st["model"])
        if st["optimizer"] is not None:  # moments carry on; lr etc. are this updater's
            model.updater.load_state(model.params, current_hyperparameters(
                model.updater, model.params, st["optimizer"]))
        torch.set_rng_state(st["torch_rng"])
        model.rng.bit_generator.state = st["numpy_rng"]
        run.epoch, run.costs = st["epoch"] + 1, st["costs"]
        run.history[:] = st["history"]
        model.fitted_ = True
        stopping = run.find(EarlyStopping)
        if stopping is not None:
            stopping.load_state_dict(st)
            stopping.on_train_begin(run)
        if st["best_epoch"] is not None:
            model.best_epoch_ = st["best_epoch"]
        if model.verbose >= 1:
            print(f"resumed from {self.path} after epoch {run.epoch}")

    def on_epoch_end(self, run: Run, epoch: int, record: dict) -> None:
        model, opt = run.model, run.model.updater.optimizer
        stopping = run.find(EarlyStopping) or EarlyStopping()
        save_checkpoint(self.path, {
            "run": run_signature(model), "epoch": epoch, "model": model.model.state_dict(),
            "optimizer": opt.state_dict() if opt is not None else None,
            "torch_rng": torch.get_rng_state(), "numpy_rng": model.rng.bit_generator.state,
            "costs": run.costs, "history": run.history, **stopping.state_dict()})

    def on_failure(self, run: Run, error: BaseException) -> str:
        if not os.path.exists(self.path):
            return ""
        return (f"; the last good checkpoint is {self.path!r}: after lowering the learning "
                "rate, fit again with resume=True")


class Snapshots(Callback):
    """Saves the model to ``f"{path}.{epoch}"`` (epoch from 0) every ``every`` epochs."""

    def __init__(self, path: str | os.PathLike, every: int = 1):
        self.path, self.every = os.fspath(path), every

    def on_epoch_end(self, run: Run, epoch: int, record: dict) -> None:
        if epoch % self.every == 0:
            save(run.model, f"{self.path}.{epoch}")


def _set_lr(model, lr: Callable[[float], float]) -> None:
    """Each of the optimizer's learning rates becomes ``lr(current)`` (none before a step)."""
    opt = model.updater.optimizer
    if opt is not None:
        for group in opt.param_groups:
            group["lr"] = lr(group["lr"])


class LinearLR(Callback):
    """The learning rate falls linearly from the updater's ``lr`` to 0 over ``n_epochs`` epochs
    of ``steps_per_epoch`` updates (a resumed run carries on where it was)."""

    def __init__(self, steps_per_epoch: int, n_epochs: int):
        self.per_epoch, self.total = steps_per_epoch, max(1, steps_per_epoch * n_epochs)
        self.base = 0.0  # the updater's lr, read when training begins
        self.step = 0

    def on_train_begin(self, run: Run) -> None:
        self.base = cast(Any, run.model.updater).lr  # (the built-in updaters all have one)

    def on_epoch_begin(self, run: Run, epoch: int) -> None:
        self.step = epoch * self.per_epoch

    def on_batch_begin(self, run: Run, batch: int) -> None:
        lr = self.base * max(0.0, 1.0 - self.step / self.total)
        _set_lr(run.model, lambda _: lr)
        self.step += 1


class PlateauLR(Callback):
    """Multiplies the learning rate by ``factor`` after each epoch the validation score did not
    improve (as ``EarlyStopping`` judges it); or, with ``after=k``, after every epoch past the
    k-th whatever validation says (Zaremba et al.'s schedule)."""

    def __init__(self, factor: float, after: int | None = None):
        self.factor, self.after = factor, after

    def on_epoch_end(self, run: Run, epoch: int, record: dict) -> None:
        if self.factor == 1.0:
            return
        if self.after is not None:
            decay = epoch + 1 >= self.after
        else:
            stopping = run.find(EarlyStopping)
            decay = stopping is not None and not stopping.improved
        if decay:
            _set_lr(run.model, lambda lr: lr * self.factor)


class ProgressBar(Callback):
    """A live bar per epoch (stderr, tqdm) over ``total`` items (``unit``); each batch advances
    it by ``advance(logs)`` and sets ``postfix(costs, tokens_per_s)`` beside it, from the
    epoch's batch costs so far."""

    def __init__(self, total: int, unit: str, postfix: Callable[[list, float], str],
                 advance: Callable[[dict], int] = lambda logs: 1):
        self.total, self.unit, self.postfix, self.advance = total, unit, postfix, advance
        self.bar: Any = None
        self.start, self.tokens = 0.0, 0
        self.costs: list[float] = []

    def on_epoch_begin(self, run: Run, epoch: int) -> None:
        from tqdm.auto import tqdm  # only when a bar is shown

        self.start, self.costs, self.tokens = time.time(), [], 0
        self.bar = tqdm(total=self.total, desc=f"Epoch {epoch + 1}/{run.n_epochs}",
                        unit=self.unit, leave=False, mininterval=0.5, dynamic_ncols=True)

    def on_batch_end(self, run: Run, batch: int, logs: dict) -> None:
        self.costs.append(logs["cost"])
        self.tokens += logs["tokens"]
        rate = self.tokens / max(time.time() - self.start, 1e-9)
        self.bar.update(self.advance(logs))
        self.bar.set_postfix_str(self.postfix(self.costs, rate), refresh=False)

    def on_epoch_end(self, run: Run, epoch: int, record: dict) -> None:
        self.close()

    def on_failure(self, run: Run, error: BaseException) -> str:
        self.close()
        return ""

    def close(self) -> None:
        if self.bar is not None:
            self.bar.refresh()
            self.bar.close()
            self.bar = None


class EpochLog(Callback):
    """Prints ``line(run, record)`` after every epoch."""

    def __init__(self, line: Callable[[Run, dict], str]):
        self.line = line

    def on_epoch_end(self, run: Run, epoch: int, record: dict) -> None:
        print(self.line(run, record), flush=True)


class DataParallel(Callback):
    """Marks a fit as one process's part of a data-parallel run (``fit_distributed`` passes it):
    the step runs the forward pass through ``forward`` (e.g. a DistributedDataParallel of the
    model), draws its batches through ``shard(iterator)`` (this process's share), and scores
    validation through ``agree(validate)`` (one decision for all processes). Process ``rank``
    0 alone prints; documents over the token budget are cut (no chunked training)."""

    def __init__(self, forward: torch.nn.Module, rank: int, world_size: int,
                 shard: Callable, agree: Callable):
        self.forward, self.rank, self.world_size = forward, rank, world_size
        self.shard, self.agree = shard, agree


def check_callbacks(callbacks: object) -> list[Callback]:
    """``callbacks`` (None or a list of ``Callback`` objects) as a list, or a TypeError."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback) or not isinstance(callbacks, list | tuple):
        raise TypeError("callbacks must be a list of passage.training.Callback objects, got "
                        f"{type(callbacks).__name__}")
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks[{i}] is a {type(cb).__name__}, not a "
                            "passage.training.Callback: subclass it and override its hooks")
    return list(callbacks)
