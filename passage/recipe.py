"""The text model from a few options: the one recipe behind ``passage train``, the sklearn
estimators, the demo and the showdown.

Raw texts and labels in; a fitted ``Tokenizer`` and an ``RNN`` (Embedding -> recurrent layer ->
Dense output, plus an optional linear n-gram term) out. The output follows the task: binary ->
Dense(1, sigmoid) + bce, multiclass -> Dense(k, softmax) + cce, regression -> Dense(1, linear)
+ mse. A fraction of the training texts is held out for early stopping on ``monitor``.

>>> from passage.recipe import TextModelOptions, fit_text_model
>>> texts = ["good fun", "bad bore", "good good", "bad awful"] * 10
>>> labels = ["+", "-", "+", "-"] * 10
>>> model = fit_text_model(texts, labels, options=TextModelOptions(size=8, n_epochs=2, min_df=1))
>>> model.extra_["classes"], model.predict(["good", "bad"]).shape
(['+', '-'], (2, 1))
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from passage import metrics
from passage._checks import validation_size
from passage.iterators import SortedPadded
from passage.labels import LabelCoding
from passage.layers import Dense, Embedding, GatedRecurrent, LstmRecurrent, SimpleRecurrent
from passage.models import RNN
from passage.options import AUTO_MONITOR, MIN_FOR_METRIC, MIN_FOR_VALIDATION, TextModelOptions
from passage.precision import auto_precision
from passage.preprocessing import Tokenizer, Truncate, check_texts
from passage.updates import Adam
from passage.wide import NgramLinear, activated, fit_term, prepared_targets, term_logits

BLEND_RIDGE = 1e-3  # see _fit_weights
BATCH_TOKENS = 32768  # padded positions per training batch (longer documents: in chunks)
RECURRENT = {"gru": GatedRecurrent, "lstm": LstmRecurrent, "simple": SimpleRecurrent}
OUTPUTS = {"binary": ("sigmoid", "bce"), "multiclass": ("softmax", "cce"),
           "regression": ("linear", "mse")}

if TYPE_CHECKING:
    import torch

    class RecipeRNN(RNN):
        """For type checkers only: an RNN with the attributes the recipe sets on it."""

        monitor_: str  # what picked the epoch kept
        n_truncated_: int  # training texts cut by ``truncate``
        linear_: dict  # the blend's weights and validation scores (see ``blend``)
        validation_outputs_: np.ndarray  # a refitted model's: the validated model's outputs
        refit_: dict  # a refitted model's: texts and epochs of the second run


def build_text_model(task: str, n_outputs: int, tokenizer: Tokenizer,
                     options: TextModelOptions) -> RNN:
    """An untrained RNN for ``task`` ('binary', 'multiclass', 'regression') with ``n_outputs``
    output units, the (fitted) tokenizer attached."""
    if options.layer not in RECURRENT:
        raise ValueError(f"layer must be one of {', '.join(RECURRENT)}; got {options.layer!r}")
    if options.pool not in ("last", "max", "mean"):
        raise ValueError(f"pool must be 'last', 'max' or 'mean'; got {options.pool!r}")
    activation, cost = OUTPUTS[task]
    pool = None if options.pool == "last" else options.pool
    layers = [Embedding(options.embedding_size, tokenizer.n_features),
              RECURRENT[options.layer](options.size, direction=options.direction, pool=pool),
              Dense(n_outputs, activation)]
    wide = NgramLinear(tokenizer.n_features, n_outputs) if options.wide else None
    precision = auto_precision() if options.precision == "auto" else options.precision
    # a smaller token budget than the library's: a bidirectional, pooled layer keeps every
    # state of a batch, and prediction batches hold 4x the budget
    iterator = SortedPadded(size=options.batch_size, max_tokens=BATCH_TOKENS)
    return RNN(layers, cost, updater=Adam(lr=options.lr), verbose=options.verbose,
               iterator=iterator, seed=options.seed, tokenizer=tokenizer, wide=wide,
               precision=precision)


def _tokenizer(options: TextModelOptions) -> Tokenizer:
    return Tokenizer(max_features=options.max_features, min_df=options.min_df,
                     character=options.character)


@contextlib.contextmanager
def _without_term(model: RNN):
    """The model with its n-gram term detached (the RNN alone), for training or predicting."""
    term, model.model.wide = model.model.wide, None
    try:
        yield model
    finally:
        model.model.wide = term


def _fit_rnn(model: RNN, X, y, options: TextModelOptions, n_epochs: int, monitor: str,
             class_weight, validation=None) -> Truncate | None:
    """``model.fit`` of the RNN alone with the recipe's settings; returns the Truncate used."""
    cut = Truncate(options.truncate) if options.truncate else None
    with _without_term(model):
        model.fit(X, y, batch_size=options.batch_size, n_epochs=n_epochs,
                  validation_data=validation,
                  patience=options.patience if validation is not None else None,
                  monitor=monitor, len_filter=cut, class_weight=class_weight,
                  lr_schedule=None if options.lr_schedule == "constant"
                  else options.lr_schedule)
    return cut


def validation_indices(n: int, options: TextModelOptions
                       ) -> tuple[np.ndarray, np.ndarray] | None:
    """(training, validation) indices of ``n`` texts as the recipe splits them (a random
    ``validation_split`` of them, by ``seed``), or None when it holds none out (no split asked,
    or fewer than ``MIN_FOR_VALIDATION`` texts)."""
    if options.validation_split <= 0 or n < MIN_FOR_VALIDATION:
        return None
    n_val = validation_size(n, options.validation_split)
    order = np.random.default_rng(options.seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def fit_encoded(texts: Iterable[str], y: Sequence[Any] | np.ndarray, task: str, n_outputs: int,
                options: TextModelOptions | None = None,
                class_weight: str | dict | None = None) -> RNN:
    """The recipe on raw texts and encoded targets ``y`` (class ids, or values of shape
    (texts,) or (texts, n_outputs)); returns the trained model.

    The tokenizer learns its vocabulary from the training part only, so the validation texts
    score the model as new texts would."""
    options = options or TextModelOptions()
    texts = check_texts(texts)
    if len(texts) != len(y):
        raise ValueError(f"{len(texts)} texts but {len(y)} labels: they must match")
    y = np.asarray(y)
    split = validation_indices(len(texts), options)
    monitor = options.monitor if split is not None else "cost"
    if monitor == "auto":  # the task's metric, unless too few texts make it a coarse step
        few = split is None or len(split[1]) < MIN_FOR_METRIC
        monitor = "cost" if few else AUTO_MONITOR[task]
    train_idx = split[0] if split is not None else np.arange(len(texts))
    tokenizer = _tokenizer(options)
    tokenizer.fit([texts[i] for i in train_idx])
    tokens = tokenizer.transform(texts, as_array=True)  # flat int32 ids: a fraction of lists
    model = cast("RecipeRNN", build_text_model(task, n_outputs, tokenizer, options))
    validation = None
    if split is not None:
        validation = (tokens.take(split[1]), y[split[1]])
    train_tokens = tokens.take(train_idx)
    del tokens
    linear = None
    if model.wide is not None:  # the linear n-gram model first: cheap, and blended in below
        linear = fit_term(model, train_tokens, y[train_idx], validation, monitor)
    cut = _fit_rnn(model, train_tokens, y[train_idx], options, options.n_epochs, monitor,
                   class_weight, validation)
    if linear is not None:
        blend(model, linear["bias"], validation, monitor, options.verbose)
    model.monitor_ = monitor  # what picked the epoch kept
    model.n_truncated_ = cut.n_cut_ if cut is not None else 0  # training texts cut
    if options.refit and split is not None:
        assert validation is not None  # set above when there is a split
        outputs = model.predict(validation[0])
        del train_tokens, validation  # the first run's data, before the second one's
        model = _refit(model, texts, y, task, n_outputs, options, class_weight, linear,
                       outputs)
    return model


def _refit(first: RecipeRNN, texts, y, task: str, n_outputs: int, options: TextModelOptions,
           class_weight, linear: dict | None, validation_outputs) -> RecipeRNN:
    """The model again, on every text (the validation part too), with what validation chose:
    the vocabulary, then the linear term's C, the RNN's best number of epochs, the blend's
    weights. ``history_``, ``best_epoch_``, ``linear_`` and ``validation_outputs_`` (the
    first model's outputs for the held-out texts) are those of the validated run."""
    first.model.forget_tables()  # its inference tables: not needed again
    tokenizer = _tokenizer(options)
    tokens = tokenizer.fit_transform(texts, as_array=True)
    model = cast("RecipeRNN", build_text_model(task, n_outputs, tokenizer, options))
    epochs = getattr(first, "best_epoch_", None) or len(first.history_) or options.n_epochs
    bias = None
    if model.wide is not None:
        assert linear is not None  # the first model had the term too: the same options
        bias = fit_term(model, tokens, y, strengths=(linear["C"],))["bias"]
    cut = _fit_rnn(model, tokens, y, options, epochs, first.monitor_, class_weight)
    if bias is not None:
        a, b = first.linear_["weights"]
        _fold(model, bias, a, b, first.linear_["offset"])
        model.linear_ = first.linear_
    # best_epoch_ is None if no epoch of the first run improved
    model.history_, model.best_epoch_ = first.history_, getattr(first, "best_epoch_", None)
    model.monitor_, model.n_truncated_ = first.monitor_, cut.n_cut_ if cut is not None else 0
    model.validation_outputs_ = validation_outputs
    model.refit_ = {"texts": len(texts), "epochs": epochs}
    return model


def _fold(model: RNN, linear_bias, a: float, b: float, c) -> None:
    """Fold the blend ``a * linear + b * rnn + c`` into the term and the output layer."""
    import torch

    last = cast(Dense, model.layers[-1])
    c = torch.as_tensor(c, dtype=last.b.dtype)
    with torch.no_grad():
        cast(NgramLinear, model.wide).weight.mul_(a)  # a model with the term
        last.w.mul_(b)
        last.b.copy_(b * last.b + a * linear_bias + c)


def fit_text_model(texts: Iterable[str], labels: Iterable[object],
                   coding: LabelCoding | None = None, options: TextModelOptions | None = None,
                   task: str = "auto") -> RNN:
    """Fit a tokenizer and an RNN on raw texts and labels (class names or numbers); returns
    the trained model.

    coding: the label coding (default: fitted on ``labels`` with ``task``); the model's
    ``extra_`` holds it, so ``passage.io.save`` writes one file that predicts class names.
    ``history_`` / ``best_epoch_`` tell how validation went.
    """
    labels = list(labels)
    coding = coding or LabelCoding.fit(labels, task)
    model = fit_encoded(texts, coding.encode(labels), coding.task, coding.n_outputs, options)
    model.extra_ = coding.to_dict()
    return model


def blend(model: RNN, linear_bias: torch.Tensor, validation: tuple[Any, Any] | None,
          monitor: str, verbose: int = 0) -> dict:
    """Weigh the trained RNN and the linear n-gram term into one model, on validation data.

    The output's pre-activation becomes ``a * linear + b * rnn + c``, with (a, b, c) that
    minimise the validation cost: a few parameters fitted on held-out texts, a or b near 0
    when that part adds nothing. They are folded into the weights (term scaled by a, output
    layer by b, c into its bias), so the model keeps its shape: predict, save, export and
    serve see one RNN. Without validation data the two are averaged. ``model.linear_``
    records the weights and the validation ``monitor`` of the blend and of each part alone
    (the blend is kept whatever they say: choosing among three by a metric on a few hundred
    texts would choose by noise).
    """
    import torch

    table: dict[str, float] = {}
    if validation is None:
        a, b, c = 0.5, 0.5, torch.zeros_like(linear_bias)
    else:
        X, Y = validation
        _, targets = prepared_targets(model, X, Y)
        y = torch.from_numpy(targets)
        z_lin = torch.from_numpy(term_logits(model, X, linear_bias))
        with _without_term(model):
            z_rnn = torch.from_numpy(_logits(model, cast(np.ndarray, model.predict(X))))
        a, b, c = _fit_weights(model._logits_cost or model.cost, y, z_lin, z_rnn)
        for name, z in (("blend", a * z_lin + b * z_rnn + c), ("linear", z_lin),
                        ("rnn", z_rnn)):
            out = activated(model, z).numpy()
            table[name] = metrics.scores(model.cost, cast(np.ndarray, targets), out)[monitor]
    _fold(model, linear_bias, a, b, c)
    cast("RecipeRNN", model).linear_ = {
        "weights": [float(a), float(b)], "offset": [float(v) for v in c],
        **{f"val_{monitor}_{k}": v for k, v in table.items()}}
    if verbose and table:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in table.items())
        print(f"validation {monitor}: {shown} (weights: linear {a:.3f}, rnn {b:.3f})",
              file=sys.stderr)
    return cast("RecipeRNN", model).linear_


def _logits(model: RNN, outputs: np.ndarray) -> np.ndarray:
    """The output layer's pre-activations (standardized units for regression) from
    ``predict``'s outputs: inverse sigmoid, log of softmax, or the value."""
    act = cast(Dense, model.layers[-1]).activation.lower()
    out = np.asarray(outputs, np.float64)
    if act == "sigmoid":
        p = np.clip(out, 1e-7, 1 - 1e-7)
        return np.log(p / (1 - p)).astype(np.float32)
    if act == "softmax":
        return np.log(np.clip(out, 1e-12, None)).astype(np.float32)
    if model.target_scale_ is not None:
        mean, std = model.target_scale_
        out = (out - mean) / std
    return out.astype(np.float32)


def _fit_weights(cost, y, z_lin, z_rnn):
    """(a, b, c) minimising cost(y, a z_lin + b z_rnn + c): a few steps of L-BFGS from the
    average, convex for the logistic, softmax and squared costs."""
    import torch

    a = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    c = torch.zeros(z_lin.shape[1], dtype=torch.float64, requires_grad=True)
    zl, zr = z_lin.double(), z_rnn.double()
    yy = y.double() if y.is_floating_point() else y
    opt = torch.optim.LBFGS([a, b, c], lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        # a light ridge on (a, b): on validation texts that either part separates perfectly
        # the weights would otherwise grow without bound (overconfident probabilities)
        loss = cost(yy, a * zl + b * zr + c) + BLEND_RIDGE * (a * a + b * b)
        loss.backward()
        return loss

    opt.step(closure)
    return float(a.detach()), float(b.detach()), c.detach().float()
