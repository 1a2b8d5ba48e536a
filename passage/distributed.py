"""Data-parallel training on several processes, with PyTorch's ``DistributedDataParallel``.

Every process holds a full copy of the model and computes the gradient of its share of each
minibatch; DDP averages the gradients across processes (all-reduce, overlapped with the backward
pass), so every copy takes the same step and the copies stay identical. On CPU the processes talk
through ``gloo``, on GPUs through ``nccl``.

Two ways to start it, one function::

    from functools import partial
    from passage.distributed import fit_distributed

    def make_model(n_features):   # module level: the worker processes import it
        return RNN([Embedding(128, n_features), GatedRecurrent(128), Dense(1, 'sigmoid')],
                   cost='bce', updater=Adam(lr=1e-3), seed=0)

    if __name__ == '__main__':    # the workers skip this when they import the script
        model = fit_distributed(partial(make_model, tok.n_features), X, Y, workers=2,
                                n_epochs=3, batch_size=64)

called from Python, it starts ``workers`` processes itself and returns the trained model; in a
script run by ``torchrun --nproc_per_node=2 script.py`` (RANK and WORLD_SIZE set), the same call
trains with the processes torchrun started and returns the model in every one of them.

Batch size is global: ``batch_size=64`` with 2 workers gives each process 32 examples of every
minibatch (examples 0, 2, 4, ... and 1, 3, 5, ... of the 64), and the averaged gradient is that of
the whole 64-example minibatch. A distributed run therefore takes the same number of steps as a
one-process run with the same arguments, and the same learning rate is right for it; only the
time per step shrinks. Length bucketing is kept: each share of a sorted minibatch is sorted too,
and the processes get sequences of the same lengths, so none waits long for the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from passage import _processes, iterators
from passage.models import RNN
from passage.training import DataParallel


class ShardedBatches(iterators.Padded):
    """Process ``rank``'s share of every minibatch of ``base``: its examples ``rank``,
    ``rank + world_size``, ...

    Every process must draw the same minibatches (same iterator, same random state) and run the
    same number of steps, or DDP waits forever for the missing ones. A minibatch with fewer than
    ``world_size`` examples (at most the last of each length bucket) cannot give every process an
    example, so it is skipped by all of them. Shares of one minibatch differ by at most one example.
    ``size`` is the base iterator's, i.e. the global batch size.
    """

    def __init__(self, base: iterators.Padded, rank: int, world_size: int):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0..{world_size - 1}, got {rank}")
        self.base, self.rank, self.world_size = base, rank, world_size

    @property
    def size(self) -> int:
        return self.base.size

    @size.setter
    def size(self, value: int) -> None:  # RNN.fit(batch_size=...) sets the global size
        _check_batch_size(value, self.world_size)
        self.base.size = value

    @property
    def max_tokens(self) -> int | None:  # type: ignore[override]  # read-only: the base's
        """The base iterator's token budget (for a whole minibatch, before sharding)."""
        return getattr(self.base, "max_tokens", None)

    def get_config(self) -> dict:
        return self.base.get_config()

    def batches(self, lengths: np.ndarray, train: bool = True,
                rng: np.random.Generator | None = None) -> Iterator[np.ndarray]:
        for idx in self.base.batches(lengths, train, rng):
            if len(idx) >= self.world_size:
                yield idx[self.rank::self.world_size]


def launched_by_torchrun() -> bool:
    """True in a process started by ``torchrun`` (or anything that sets RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def fit_distributed(make_model: Callable[[], RNN], trX: Sequence, trY: Sequence,
                    workers: int | None = None, *,
                    threads: int | None = None, backend: str | None = None,
                    timeout: float = 1800.0, **fit_kwargs) -> RNN:
    """Train ``make_model()`` on (trX, trY) with ``workers`` processes; returns the trained RNN.

    make_model: a zero-argument function building the (untrained) RNN; each process calls it.
    When this function starts the processes, ``make_model`` must be picklable: a function defined
    at module level (not a lambda, nor a function defined inside another), or a
    ``functools.partial`` of one.
    workers: processes to start (default: one per GPU, or one per CPU core). Under torchrun the
    processes already exist: leave it None (or give torchrun's WORLD_SIZE).
    threads: intra-op threads per process (default: CPU cores / processes on this machine).
    backend: 'gloo' or 'nccl' (default: nccl when the model is on CUDA, else gloo).
    timeout: seconds a process waits for the others in a collective before failing, so a crashed
    process never leaves the rest hanging.
    fit_kwargs: passed to ``RNN.fit`` (n_epochs, batch_size, validation_data, patience, ...);
    ``batch_size`` is the global minibatch size (see the module docstring): keep the learning
    rate of the one-process run. ``checkpoint``, ``resume`` and ``path`` are not supported yet.

    With validation, process 0 scores each epoch and sends the scores to the others, so all
    take the same early-stopping decision. The returned model has the weights (identical in all
    processes, which is checked) and process 0's ``history_`` and ``costs_`` (costs of its
    share of each minibatch). When this function started the processes, the model comes back
    through a model file (``passage.utils.load``), so without the updater's state; the
    workers never outlive this process, even killed (see ``passage._processes``).
    """
    if not callable(make_model) or isinstance(make_model, RNN):
        raise TypeError("make_model must be a zero-argument function that builds the RNN (got "
                        f"{type(make_model).__name__}); e.g. def make_model(): return RNN(...)")
    _processes.check_fit_kwargs(fit_kwargs)
    if launched_by_torchrun():
        world = int(os.environ["WORLD_SIZE"])
        if workers is not None and workers != world:
            raise ValueError(f"workers={workers} but torchrun started {world} processes: leave "
                             "workers=None under torchrun (its --nproc_per_node decides)")
        rank = int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        _processes.set_threads(threads, local_world)
        return _train(rank, world, local_rank, make_model, trX, trY, fit_kwargs, backend, timeout)
    if workers is None:
        workers = torch.cuda.device_count() if torch.cuda.is_available() else _processes.cores()
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise TypeError(f"workers must be an int (number of processes), got "
                        f"{type(workers).__name__}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    _processes.check_threads(threads)
    if fit_kwargs.get("batch_size") is not None:
        _check_batch_size(fit_kwargs["batch_size"], workers)
    _processes.check_picklable(make_model)
    _processes.check_not_in_worker_import("fit_distributed")
    return _processes.spawn(_train_share, workers, [make_model], trX, trY, fit_kwargs, threads,
                            backend, timeout, returns=1)[0]


# -- checks --------------------------------------------------------------------------------------
def _check_batch_size(batch_size: int, world_size: int) -> None:
    if batch_size < world_size:
        raise ValueError(f"batch_size={batch_size} is smaller than the number of processes "
                         f"({world_size}): batch_size is global, each process gets "
                         "batch_size / processes examples; use at least one per process")


def _check_model(model) -> None:
    if not isinstance(model, RNN):
        raise TypeError(f"make_model() must return a passage.models.RNN, got "
                        f"{type(model).__name__}")
    for name in ("fit", "_run_epoch", "loss"):
        if getattr(type(model), name) is not getattr(RNN, name):
            raise TypeError(f"{type(model).__name__} has its own training loop ({name}); "
                            "fit_distributed trains RNN models only")


# -- one process's work ----------------------------------------------------------------------------
def _train(rank, world, local_rank, make_model, X, Y, fit_kwargs, backend, timeout) -> RNN:
    """Join the process group, train this process's copy with DDP, return it."""
    if backend in (None, "nccl") and torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    model = make_model()
    _check_model(model)
    cuda = model.device.type == "cuda"
    own_group = not dist.is_initialized()
    if own_group:
        dist.init_process_group(backend or ("nccl" if cuda else "gloo"), rank=rank,
                                world_size=world, timeout=timedelta(seconds=timeout))
    try:
        # Same batches everywhere: every process draws from process 0's random state.
        state = [model.rng.bit_generator.state]
        dist.broadcast_object_list(state, src=0, device=model.device if cuda else None)
        model.rng.bit_generator.state = state[0]
        # DDP gets a group of its own: torch 2.13 never frees the group a DDP used (its gloo
        # threads outlive destroy_process_group), so the default group, used for everything
        # else, can still be shut down cleanly.
        device_ids = [next(model.model.parameters()).device.index] if cuda else None
        ddp = DistributedDataParallel(model.model, device_ids=device_ids,  # copies rank 0's
                                      process_group=dist.new_group())  # initial weights
        parallel = DataParallel(ddp, rank, world,  # RNN.loss runs the forward pass through DDP
                                shard=lambda it: ShardedBatches(it, rank, world),
                                agree=lambda validate: _agreed(validate, rank,
                                                               model.device if cuda else None))
        try:
            own = [parallel, *(fit_kwargs.get("callbacks") or [])]
            model.fit(X, Y, **{**fit_kwargs, "callbacks": own})
        finally:
            del parallel, ddp
        _check_identical(model)
    finally:
        if own_group:
            dist.destroy_process_group()
    return model


def _agreed(validate, rank, device):
    """``validate`` run by process 0 and its scores sent to all: one early-stopping decision."""
    def agreed():
        scores = [validate() if rank == 0 else None]
        dist.broadcast_object_list(scores, src=0, device=device)
        return scores[0]
    return agreed


def _check_identical(model: RNN) -> None:
    """Fail loudly (in every process) if the copies' weights differ after training."""
    flat = torch.cat([v.detach().reshape(-1).float() for v in model.model.state_dict().values()])
    ref = flat.clone()
    dist.broadcast(ref, src=0)
    differ = torch.tensor([0.0 if torch.equal(ref, flat) else 1.0], device=flat.device)
    dist.all_reduce(differ)
    if differ.item():
        raise RuntimeError("the processes ended with different weights; the model must run the "
                           "same forward pass on every process (RNN.loss through DDP)")


def _train_share(rank, world, make_models, X, Y, fit_kwargs, backend, timeout) -> RNN:
    """What each process started by ``fit_distributed`` runs (see ``_processes.spawn``)."""
    return _train(rank, world, rank, make_models[0], X, Y, fit_kwargs, backend, timeout)
