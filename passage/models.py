"""``RNN``: a list of layers, a cost and an updater, trained with ``fit`` and used with ``predict``.

>>> from passage.layers import Embedding, GatedRecurrent, Dense
>>> model = RNN([Embedding(size=8, n_features=10), GatedRecurrent(size=8),
...              Dense(size=1, activation='sigmoid')], cost='bce', verbose=0, seed=0)
>>> X, Y = [[3, 4, 5], [6, 7], [3, 3], [8, 9, 9, 9]] * 8, [1, 0, 1, 0] * 8
>>> costs = model.fit(X, Y, n_epochs=2)
>>> model.predict([[3, 4, 5], [6, 7]]).shape
(2, 1)
"""

from __future__ import annotations

import copy
import os
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn

from passage import costs as cost_registry
from passage import iterators as iterator_registry
from passage import metrics
from passage import updates as updater_registry
from passage._checks import (
    check_fit_arguments,
    check_int,
    check_monitor,
    metric_names,
    validation_size,
    warn_if_one_class,
)
from passage.exceptions import NotFittedError  # noqa: F401 (still importable from here)
from passage.layers import (
    AdaptiveSoftmax,
    Dense,
    full_precision,
    inference,
    is_training,
    output_size,
)
from passage.long_documents import LongDocumentsMixin
from passage.model_inputs import InputsMixin
from passage.parallel import map_batches
from passage.registry import register_model
from passage.stack import Stack, build_stack, check_wide  # noqa: F401 (importable here)
from passage.training import (
    Callback,
    Checkpoint,
    DataParallel,
    EarlyStopping,
    EpochLog,
    LinearLR,
    ProgressBar,
    Run,
    Snapshots,
    check_callbacks,
    train,
)
from passage.wide import NgramLinear

if TYPE_CHECKING:
    from passage.costs import Cost
    from passage.iterators import Padded
    from passage.layers import Layer
    from passage.preprocessing import LenFilter, Tokenizer, Truncate
    from passage.updates import Update

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # autocast dtype


def default_device() -> torch.device:
    """CUDA when a GPU is present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@register_model
class RNN(InputsMixin, LongDocumentsMixin):
    """A recurrent model: ``RNN(layers, cost, updater).fit(X, Y)`` then ``.predict(X)``.

    layers: input layer, any mix of recurrent and Dense layers, output layer.
    cost: a name ('bce', 'cce', 'mse', ...) or a function ``cost(y_true, y_pred)``.
    updater: a name ('Adam', 'SGD', ...) or an updater object, e.g. ``Adam(lr=1e-3)``.
    verbose: 0 silent, 1 a line per epoch, 2 a live progress line.
    iterator: 'SortedPadded' (length bucketing), 'Padded' or 'Linear', or an iterator object.
    device: 'cpu', 'cuda', ... (default: CUDA when present). seed: makes a run reproducible.
    tokenizer: a fitted Tokenizer, so fit/predict take raw texts and save keeps it with the model.
    precision: 'fp32', or 'bf16' for mixed-precision training: the matmuls and recurrent kernels
    run in bfloat16 while weights, optimizer and cost stay float32 (faster on CPUs with
    AVX512-BF16 or AMX and on recent GPUs, slower where bfloat16 is emulated); 'fp16' the same in
    float16 with dynamic loss scaling, for GPUs without bfloat16 (slow on most CPUs). predict and
    validation run fp32.
    """

    # set by fit, load or the builders of a model, when they apply (read with getattr/hasattr)
    history_: list[dict]
    best_epoch_: int | None  # (None after a refit whose first run never improved)
    last_epoch_: dict
    extra_: dict | None
    pretrained_layers_: int

    def __init__(self, layers: Iterable[Layer], cost: str | Cost, updater: str | Update = "Adam",
                 verbose: int = 2, Y: object = None, iterator: str | Padded = "SortedPadded",
                 *, device: str | int | torch.device | None = None, seed: int | None = None,
                 tokenizer: Tokenizer | None = None, precision: str = "fp32",
                 wide: NgramLinear | None = None):
        self.layers = list(layers)
        self.cost = cost_registry.get(cost)
        self.updater = updater_registry.get(updater)
        self.iterator = iterator_registry.get(iterator)
        self.verbose = verbose
        self.seed = seed
        self.tokenizer = tokenizer
        if not isinstance(precision, str) or precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}; got "
                             f"{precision!r}")
        self.precision = precision
        self._loss_scale: updater_registry.LossScale | None = None  # fp16: the first update
        self.device = torch.device(device) if device is not None else default_device()
        if seed is not None:
            torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.wide = wide
        self.model = build_stack(self.layers, wide).to(self.device)
        self.out_size = output_size(self.layers[-1])
        self.per_step = self._returns_sequence()
        last = self.layers[-1]
        if isinstance(last, AdaptiveSoftmax):  # its pre-activations are log-probabilities
            fused = cost_registry.logits_cost(self.cost, "softmax")
            if not fused:
                raise ValueError("an AdaptiveSoftmax output needs cost='cce' (it outputs a "
                                 "distribution over classes)")
        else:
            fused = (cost_registry.logits_cost(self.cost, last.activation)
                     if isinstance(last, Dense) else None)
        self._logits_cost = fused or None
        self.costs_: list[float] = []
        self.fitted_ = False  # set by fit, load and resume
        self.target_scale_: tuple[np.ndarray, np.ndarray] | None = None

    # -- structure ---------------------------------------------------------------------------
    def _returns_sequence(self) -> bool:
        seq = True
        for layer in self.layers[1:]:
            if layer.is_recurrent:
                seq = layer.sequence_out
        return seq

    @property
    def params(self) -> list[torch.Tensor]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def get_config(self) -> dict:
        """Everything needed to rebuild the model, as plain data."""
        return {
            "layers": [{"layer": type(la).__name__, "config": la.get_config()}
                       for la in self.layers],
            "cost": cost_registry.name_of(self.cost),
            "updater": {"name": type(self.updater).__name__, "config": self.updater.get_config()},
            "iterator": {"name": type(self.iterator).__name__,
                         "config": self.iterator.get_config()},
            "verbose": self.verbose,
            "precision": self.precision,
            **({"wide": self.wide.get_config()} if self.wide is not None else {}),
        }

    # -- training ------------------------------------------------------------------------------
    def autocast(self) -> torch.autocast:
        """The context the training forward pass runs in: autocast to bfloat16 or float16 for
        ``precision='bf16'`` or 'fp16' while the model is in training mode, else disabled."""
        dtype = PRECISIONS[self.precision]
        return torch.autocast(self.device.type, dtype=dtype or torch.bfloat16,
                              enabled=dtype is not None and is_training(self.model))

    def loss(self, x: torch.Tensor, lengths: torch.Tensor, y: torch.Tensor,
             forward: nn.Module | None = None) -> torch.Tensor:
        """The cost of one padded batch; per-step outputs count real steps only. ``forward``:
        the module to run (default the model's; a data-parallel wrapper of it in
        ``fit_distributed``)."""
        net = forward if forward is not None else self.model
        with self.autocast():
            out = net(x, lengths, pre_act=self._logits_cost is not None)
        return self._cost(out, lengths, y)

    def _cost(self, out, lengths, y) -> torch.Tensor:
        """The cost of the outputs (or pre-activations) ``out`` of a batch against ``y``."""
        out = full_precision(out)  # the cost in float32 whatever the forward pass ran in
        if out.dim() == 3:
            mask = torch.arange(out.shape[1], device=out.device)[None, :] < lengths[:, None]
            out, y = out[mask], y[mask]
        cost = getattr(self, "_train_cost", None) if is_training(self.model) else None
        return (cost or self._logits_cost or self.cost)(y, out)

    def fit(self, trX: Sequence[Any] | np.ndarray, trY: Sequence[Any] | np.ndarray,
            batch_size: int | None = None, n_epochs: int = 1,
            len_filter: LenFilter | Truncate | None = None, snapshot_freq: int = 1,
            path: str | os.PathLike | None = None, *,
            validation_data: tuple[Any, Any] | list[Any] | None = None,
            validation_split: float = 0.0, patience: int | None = None, monitor: str = "cost",
            checkpoint: str | os.PathLike | None = None, resume: bool = False,
            class_weight: str | dict | None = None, lr_schedule: str | None = None,
            callbacks: list[Callback] | tuple[Callback, ...] | None = None) -> list[float]:
        """Train on (trX, trY); returns the cost of every minibatch (as in 2015).

        batch_size: examples per minibatch (default: the iterator's size, 64).
        len_filter: e.g. ``LenFilter(max_len=500)`` to drop long training sequences (it says
        how many), or ``Truncate(256)`` to cut them to their first and last 128 tokens (less
        text per epoch; predict still reads it all); by default everything is trained on.
        path: save a snapshot to ``f"{path}.{epoch}"`` every ``snapshot_freq`` epochs.
        validation_data: ``(X, Y)`` scored after every epoch; or ``validation_split``, a fraction
        of the training data held out for it. With validation, the weights of the best epoch by
        ``monitor`` ('cost', or a metric such as 'accuracy', 'roc_auc', 'r2') are restored at
        the end, and training stops after ``patience`` epochs without improvement.
        The per-epoch record (cost, time, tokens/s, validation metrics) is in ``history_``.
        checkpoint: a file written atomically after every epoch (weights, optimizer, random
        state); with ``resume=True`` the same call continues after its last completed epoch.
        lr_schedule: None (constant) or 'linear': the updater's lr falls linearly to 0 over the
        ``n_epochs`` planned, which often reaches a better model in few epochs.
        class_weight: for imbalanced classes, ``'balanced'`` (n / (classes * count)) or a dict
        ``{class index: weight}``; each example's loss is scaled by its class's weight.
        If the cost becomes NaN/inf, training stops with an error naming epoch and batch, and
        the weights of the last completed epoch are put back (the checkpoint stays as it was).
        callbacks: ``passage.training.Callback`` objects called around every epoch and batch
        (after the model's own: progress, early stopping, checkpoint, snapshots, schedule).
        Arguments that would train nothing (n_epochs < 1, batch_size < 1, a validation split
        that leaves no example on one side, a len_filter that drops every example, a monitor
        the model does not compute) raise a ValueError or TypeError before anything changes.
        """
        # Every argument and the data are checked before anything in the model changes.
        check_fit_arguments(batch_size=batch_size, n_epochs=n_epochs,
                            validation_split=validation_split, patience=patience,
                            snapshot_freq=snapshot_freq, lr_schedule=lr_schedule,
                            len_filter=len_filter)
        check_monitor(monitor, metric_names(self.cost, self.out_size))
        callbacks = check_callbacks(callbacks)
        parallel = next((c for c in callbacks if isinstance(c, DataParallel)), None)
        X = self._inputs(trX, "trX")
        if not hasattr(trY, "__len__"):
            raise TypeError(f"trY must be a list or array of labels, got {type(trY).__name__}")
        if len(X) != len(trY):
            raise ValueError(f"trX has {len(X)} examples but trY has {len(trY)} labels: they "
                             "must match one to one")
        if len(X) == 0:
            raise ValueError("cannot fit on an empty training set (trX has no examples)")
        validation_data = self._validation_inputs(validation_data, validation_split, monitor)
        if patience is not None and validation_data is None and not validation_split:
            warnings.warn("patience has no effect without validation_data or validation_split",
                          UserWarning, stacklevel=2)
        split_rng = copy.deepcopy(self.rng)  # the model's generator moves once the data is good
        if validation_split:
            n_val = validation_size(len(X), validation_split)
            perm = split_rng.permutation(len(X))
            val_idx, tr_idx = perm[:n_val], perm[n_val:]
            validation_data = ([X[i] for i in val_idx], [trY[i] for i in val_idx])
            X, trY = [X[i] for i in tr_idx], [trY[i] for i in tr_idx]
        if len_filter is not None:
            X, trY = len_filter.filter(X, trY)
        lengths = iterator_registry.sequence_lengths(X)
        X, trY, lengths = self._long_documents(X, trY, lengths, parallel)
        Y = self._targets(trY, lengths)
        train_cost = self._weighted_cost(class_weight, Y)
        if not self.per_step:
            warn_if_one_class(Y, self.cost)
        self.rng.bit_generator.state = split_rng.bit_generator.state
        Y = self._scale_targets(Y)
        self._train_cost = train_cost
        if batch_size is not None:
            self.iterator.size = batch_size
        batches = parallel.shard(self.iterator) if parallel else self.iterator
        validate = None
        if validation_data is not None:
            def validate():
                return self.evaluate(*validation_data)
            if parallel:
                validate = parallel.agree(validate)
        run = Run(self, n_epochs, [], validate=validate, batches=batches,
                  forward=parallel.forward if parallel else self.model)
        verbose = 0 if parallel and parallel.rank else self.verbose
        steps = sum(1 for _ in batches.batches(lengths, True, np.random.default_rng(0))) \
            if lr_schedule is not None else 0
        run.callbacks = self._callbacks(verbose, len(lengths), validation_data is not None,
                                        monitor, patience, checkpoint, resume, path,
                                        snapshot_freq, steps, n_epochs) + callbacks
        costs = train(run, lambda run, epoch: self._run_epoch(run, X, Y, lengths))
        self.costs_ += costs
        return costs

    def _callbacks(self, verbose, n_examples, validating, monitor, patience, checkpoint,
                   resume, path, snapshot_freq, steps, n_epochs) -> list[Callback]:
        """The model's own callbacks for one fit, in the order they run."""
        cbs: list[Callback] = []
        if verbose >= 2:  # a live bar with cost, tokens/s and ETA (stderr, like tqdm)
            cbs.append(ProgressBar(n_examples, "ex", _bar_postfix,
                                   advance=lambda logs: logs["examples"]))
        if verbose >= 1:
            cbs.append(EpochLog(_epoch_line))
        if validating:
            cbs.append(EarlyStopping(monitor, patience, verbose))
        if checkpoint:
            cbs.append(Checkpoint(checkpoint, resume))
        if path:
            cbs.append(Snapshots(path, snapshot_freq))
        if steps:
            cbs.append(LinearLR(steps, n_epochs))
        return cbs

    def evaluate(self, X: Sequence[Any] | np.ndarray,
                 Y: Sequence[Any] | np.ndarray) -> dict[str, float]:
        """Validation cost and metrics: accuracy and ROC AUC (binary) or macro F1 (classes),
        or MSE, MAE and R^2 for regression."""
        X = self._inputs(X)
        pred = self.predict(X)
        if self.per_step:
            lengths = iterator_registry.sequence_lengths(X)
            y = np.concatenate(self._targets(Y, lengths))
            pred = np.concatenate(pred) if len(pred) else pred
        else:
            y = self._targets(Y, iterator_registry.sequence_lengths(X))
        return metrics.scores(self.cost, y, cast(np.ndarray, pred))

    def _run_epoch(self, run: Run, X, Y, lengths) -> dict:
        """One pass over the training data, a minibatch per update; returns the epoch's record
        (cost, seconds, tokens, documents trained in chunks)."""
        with _MODE_LOCK:  # a concurrent predict leaves the mode alone from here on
            self._fitting = True
            self.model.train()
        self.model.forget_tables()
        costs: list[float] = []
        tokens, start, chunked = 0, time.time(), 0
        chunker = self._chunker() if run.forward is self.model else None  # not through DDP
        try:
            for idx in cast("Padded", run.batches).batches(lengths, train=True, rng=self.rng):
                x, lt, lengths_np = self._batch(X, idx)
                y = self._target_batch(Y, idx)
                long = chunker is not None and len(idx) == 1 and lengths_np[0] > chunker.chunk
                if long and chunker is not None:  # one long document: truncated BPTT in chunks
                    loss = self._chunked_backward(chunker, x, lt, y)
                    chunked += 1
                else:
                    loss = self.loss(x, lt, y, run.forward)
                if not torch.isfinite(loss):
                    for p in self.params:  # a chunked batch has run its backward already
                        p.grad = None
                    raise FloatingPointError(
                        f"the cost became {loss.item()} in epoch {run.epoch + 1}, batch "
                        f"{len(costs) + 1}: lower the learning rate, set clipnorm on the "
                        "updater, or scale the targets")
                run.batch_begin()
                self._update(loss, backward_done=long)
                costs.append(loss.item())
                tokens += int(lengths_np.sum())
                run.batch_end(costs[-1], len(idx), int(lengths_np.sum()))
        finally:
            with _MODE_LOCK:
                self._fitting = False
        self.last_epoch_ = {"seconds": time.time() - start, "tokens": tokens,
                            "cost": float(np.mean(costs)), "chunked_docs": chunked}
        return dict(self.last_epoch_)

    def _update(self, loss: torch.Tensor, backward_done: bool = False) -> None:
        """Backward (unless ``backward_done``: a chunked document's) and one updater step; with
        fp16 through the loss scale, which skips a step whose gradients overflowed."""
        if self.precision != "fp16":
            if not backward_done:
                loss.backward()
            self.updater.step(self.params)
            return
        if self._loss_scale is None:
            self._loss_scale = updater_registry.LossScale()
        scale = self._loss_scale
        if not backward_done:
            scale.backward(loss)
        if scale.unscale(self.params):
            self.updater.step(self.params)

    # -- prediction ----------------------------------------------------------------------------
    def predict(self, X: Sequence[Any] | np.ndarray,
                batch_size: int = 256) -> np.ndarray | list[np.ndarray]:
        """Outputs in the order of X: an array (examples, units), or for a model whose output is a
        sequence, one (steps, units) array per example.

        Safe from several threads, also while another thread runs ``fit`` on this model: every
        batch of that fit trains in training mode (dropout on) and every prediction runs in
        inference mode (dropout off), as ``passage.layers.inference`` decides per thread; a
        prediction made mid-training uses the weights of the moment."""
        if not self.fitted_:
            raise NotFittedError("this RNN has not been trained: call fit(X, Y) first, or load a "
                                 "trained model with passage.utils.load(path)")
        check_int("batch_size", batch_size, hint=" (examples per prediction batch)")
        X = self._inputs(X)
        lengths = iterator_registry.sequence_lengths(X)
        budget = getattr(self.iterator, "max_tokens", None)  # 4x: no activations kept here
        batches = list(iterator_registry.SortedPadded(
            size=batch_size, max_tokens=4 * budget if budget else None).batches(lengths, False))
        streamer = self._chunker()  # a document over the budget streams through in chunks
        results: list = [None] * len(lengths)
        # The layers run their inference behaviour under inference(), whatever the mode: fit
        # may be training this model in another thread, and its mode must stay as it is. Only
        # when no epoch runs is the module put in eval mode (for layers that read .training).
        with _MODE_LOCK:
            if not getattr(self, "_fitting", False) and any(
                    m.training for m in self.model.modules()):  # (eval() walks them all)
                self.model.eval()
        with torch.inference_mode(), inference():
            tables = self.model.projection_tables(int(lengths.sum()))

        def run(idx):
            x, lt, lengths_np = self._batch(X, idx)
            if streamer is not None and len(idx) == 1 and lengths_np[0] > streamer.chunk:
                out = self._head(streamer.pooled(x), False, x, lt).float().cpu().numpy()
            else:
                out = self.model(x, lt, tables=tables).float().cpu().numpy()
            if self.target_scale_ is not None:  # back to the units of the labels
                out = out * self.target_scale_[1] + self.target_scale_[0]
            for j, i in enumerate(idx):
                results[i] = out[j, :lengths_np[j]] if self.per_step else out[j]

        map_batches(run, batches, self.device)
        if self.per_step:
            return results
        return np.stack(results) if results else np.zeros((0, self.out_size), np.float32)


def _bar_postfix(costs: list, tokens_per_s: float) -> str:
    return f"cost {np.mean(costs[-250:]):.4f} {tokens_per_s:,.0f} tok/s"


def _epoch_line(run: Run, record: dict) -> str:
    seconds = record["seconds"]
    line = (f"Epoch {run.epoch}/{run.n_epochs} cost {record['cost']:.4f} {seconds:.1f}s "
            f"{record['tokens'] / max(seconds, 1e-9):,.0f} tok/s")
    scores = {k[4:]: v for k, v in record.items() if k.startswith("val_")}
    if scores:
        line += "\n  validation " + "  ".join(f"{k} {v:.4f}" for k, v in scores.items())
    return line


_MODE_LOCK = threading.Lock()  # held while a model's train/eval mode and _fitting change
