"""What ``RNN`` does to its data before a batch reaches the layers: inputs checked (raw texts
tokenized), padded batches of ids or vectors checked against the input layer, targets coded
for the cost (regression targets standardized), class weights, validation data checked before
training starts. ``RNN`` inherits these methods (``InputsMixin``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from passage import costs as cost_registry
from passage import iterators as iterator_registry
from passage import targets
from passage.layers import Dense, Layer


class InputsMixin:
    """Data preparation of ``RNN`` (see the module docstring); uses the model's layers, cost,
    tokenizer and device."""

    layers: list[Layer]
    cost: Any
    tokenizer: Any
    device: torch.device
    per_step: bool
    out_size: int
    _logits_cost: Any
    target_scale_: tuple[np.ndarray, np.ndarray] | None

    def _inputs(self, X, what="X"):
        """X as sequences of ids or vectors; raw texts are tokenized by the attached tokenizer."""
        if isinstance(X, str):
            raise TypeError(f"{what} must be a list of examples, got a single str; wrap it: [text]")
        if X is None or not hasattr(X, "__len__"):
            raise TypeError(f"{what} must be a list or array of sequences, got "
                            f"{type(X).__name__}")
        if len(X) and isinstance(X[0], str):
            if self.tokenizer is None:
                raise TypeError(f"{what} holds raw text but this model has no tokenizer: pass "
                                "Tokenizer.transform(texts), or build the model with "
                                "RNN(..., tokenizer=fitted_tokenizer)")
            return self.tokenizer.transform(X)
        return X

    def _batch(self, X, idx):
        x, lengths = iterator_registry.make_batch(X, idx)
        first = self.layers[0]
        if hasattr(first, "n_features"):
            if x.dtype.kind != "i":
                raise TypeError(f"{type(first).__name__} takes token ids (ints); got "
                                f"{x.dtype} values")
            lo, hi = int(x.min(initial=0)), int(x.max(initial=0))
            if lo < 0 or hi >= first.n_features:
                bad = hi if hi >= first.n_features else lo
                raise ValueError(
                    f"token id {bad} is outside the range of {type(first).__name__}(n_features="
                    f"{first.n_features}) (valid ids 0..{first.n_features - 1}); set n_features "
                    "to the tokenizer's n_features")
        elif x.dtype.kind != "f" or x.ndim != 3 or x.shape[2] != first.size:
            raise ValueError(f"Generic(size={first.size}) takes real-valued sequences of shape "
                             f"(examples, time, {first.size}); got a batch of shape {x.shape}")
        return (torch.from_numpy(x).to(self.device),
                torch.from_numpy(lengths).to(self.device), lengths)

    def _targets(self, Y, lengths):
        if self.per_step:
            return targets.prepare_per_step(Y, self.cost, self.out_size, lengths)
        return targets.prepare(Y, self.cost, self.out_size)

    def _target_batch(self, Y, idx):
        if self.per_step:
            y, _ = iterator_registry.make_batch(Y, idx)
        else:
            y = Y[idx]
        return torch.from_numpy(y).to(self.device)

    def _scale_targets(self, Y):
        """Regression through a linear output trains on standardized targets (set on the first
        fit, undone by predict): the cost starts near 1 whatever the labels' units."""
        last = self.layers[-1]
        regression = self.cost in (cost_registry.MeanSquaredError, cost_registry.MeanAbsoluteError)
        if not (regression and isinstance(last, Dense) and last.activation.lower() == "linear"):
            return Y
        if self.target_scale_ is None:
            flat = np.concatenate(Y) if self.per_step else Y
            std = flat.std(axis=0)
            self.target_scale_ = (flat.mean(axis=0), np.where(std > 0, std, 1.0))
        mean, std = self.target_scale_
        if self.per_step:
            return [((y - mean) / std).astype(np.float32) for y in Y]
        return ((Y - mean) / std).astype(np.float32)

    def _weighted_cost(self, class_weight, Y):
        """The training cost with class weights applied (None: the plain cost)."""
        if class_weight is None:
            return None
        w = targets.class_weights(class_weight, Y, self.cost, self.out_size, self.per_step)
        return cost_registry.class_weighted(
            self.cost, torch.tensor(w, dtype=torch.float32, device=self.device),
            logits=self._logits_cost is not None)

    def _validation_inputs(self, validation_data, validation_split, monitor):
        """``validation_data`` as (inputs, labels), checked now rather than after an epoch of
        training (raw texts tokenized once, not at every epoch)."""
        if validation_data is None:
            return None
        if validation_split:
            raise ValueError("give validation_data or validation_split, not both")
        if not isinstance(validation_data, tuple | list) or len(validation_data) != 2:
            raise TypeError("validation_data must be a pair (X, Y) of inputs and labels, got "
                            f"{type(validation_data).__name__}")
        vX, vY = self._inputs(validation_data[0], "validation_data[0]"), validation_data[1]
        if not hasattr(vY, "__len__") or len(vY) != len(vX) or len(vX) == 0:
            raise ValueError(f"validation_data has {len(vX)} examples and "
                             f"{len(vY) if hasattr(vY, '__len__') else 'no'} labels: give a "
                             "non-empty pair (X, Y) of the same length")
        y = self._targets(vY, iterator_registry.sequence_lengths(vX))
        if monitor == "roc_auc" and len(np.unique(np.concatenate(y) if self.per_step else y)) < 2:
            raise ValueError("monitor='roc_auc' needs both classes among the validation labels; "
                             "monitor 'accuracy' or 'cost', or validate on more examples")
        return vX, vY
