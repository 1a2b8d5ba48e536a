"""``passage train``, ``predict`` and ``evaluate``: the model's life from a labelled data file
to predictions and scores.

``train`` keeps the epoch with the best validation accuracy (classes) or R^2 (regression) unless
``--monitor`` says otherwise; ``predict`` writes the index and predictions, plus the input
columns named by ``--keep`` (``--keep all``: every column but the text).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from typing import TYPE_CHECKING, cast

from passage.cli.common import (
    MONITORS,
    data_columns,
    load_model,
    model_coding,
    read_labelled,
    say,
    verbosity,
    write_text,
)
from passage.cli.errors import CLIError
from passage.cli.tables import ALL, read_data
from passage.options import AUTO_MONITOR, TextModelOptions

if TYPE_CHECKING:
    import numpy as np

    from passage.labels import LabelCoding
    from passage.recipe import RecipeRNN


# -- train -----------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    """Train the recipe on a data file and save the model (``--baseline``: and compare)."""
    from passage.io import save
    from passage.labels import LabelCoding

    texts, labels = read_labelled(args.data, args.text_column, args.label_column, args)
    assert labels is not None  # --label-column always names a column here
    coding = LabelCoding.fit(labels, args.task)
    _monitor(args.monitor, coding.task)  # refused now if the task does not compute it
    options = TextModelOptions(
        size=args.size, embedding_size=args.embedding_size, layer=args.layer,
        direction=args.direction, pool=args.pool, wide=args.wide, n_epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, lr_schedule=args.lr_schedule,
        min_df=args.min_df, max_features=args.max_features, character=args.character,
        truncate=args.truncate, validation_split=args.validation_split, refit=args.refit,
        patience=args.patience, monitor=args.monitor, seed=args.seed, verbose=verbosity(args),
        precision=args.precision)
    what = {"binary": f"binary, positive class {coding.classes[-1]!r}" if coding.classes
            else "binary",
            "multiclass": f"{coding.n_outputs} classes", "regression": "regression"}
    say(args, f"{len(texts):,} texts from {args.data}; task: {what[coding.task]}"
         + (f" ({', '.join(map(str, cast(list, coding.classes)))})" if coding.task == "multiclass"
            else ""))
    if args.baseline:
        _check_baseline(len(texts), options)
    start = time.perf_counter()
    model = fit_recipe(texts, labels, coding, options)
    seconds = time.perf_counter() - start
    model.extra_ = {**coding.to_dict(), "text_column": args.text_column,
                    "label_column": args.label_column}
    save(model, args.out)
    best = getattr(model, "best_epoch_", None)
    if best is not None:
        record = model.history_[best - 1]
        scores = ", ".join(f"{k[4:]} {v:.4f}" for k, v in record.items() if k.startswith("val_"))
        say(args, f"kept epoch {best} of {len(model.history_)} by validation {model.monitor_} "
                   f"(validation: {scores})")
    refit = getattr(model, "refit_", None)
    if refit:
        say(args, f"then trained again on all {refit['texts']:,} texts for {refit['epochs']} "
                   "epoch(s) (--no-refit: keep the validated model)")
    say(args, f"vocabulary {model.tokenizer.n_features:,} ids; trained in {seconds:.1f}s; "
               f"saved model to {args.out}")
    if args.baseline:
        _report_baseline(texts, labels, coding, options, model, seconds)
    return 0


def _check_baseline(n: int, options: TextModelOptions) -> None:
    """--baseline needs scikit-learn and a validation split: refused before training."""
    from passage.recipe import validation_indices

    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise CLIError("--baseline fits scikit-learn's TF-IDF + linear model: pip install "
                       "'passage[sklearn]'") from None
    if validation_indices(n, options) is None:
        raise CLIError("--baseline compares both models on the validation split: keep "
                       "--validation-split above 0 (and give at least 20 texts)")


def _report_baseline(texts, labels, coding, options, model, seconds: float) -> None:
    """Fit the TF-IDF + linear model on the RNN's own training part, score both on its
    validation part, and say which won (always printed: it is what was asked for)."""
    from passage.baseline import fit_on_split, validation_score
    from passage.recipe import validation_indices

    split = validation_indices(len(texts), options)
    assert split is not None  # _check_baseline refused options that hold no texts out
    train_idx, val_idx = split
    y = coding.encode(labels)
    val_texts = [texts[i] for i in val_idx]
    base = fit_on_split([texts[i] for i in train_idx], y[train_idx], val_texts, y[val_idx],
                        coding.task)
    # the validated model's outputs: a refitted model has seen these texts
    outputs = getattr(model, "validation_outputs_", None)
    outputs = model.predict(val_texts) if outputs is None else outputs
    rnn_score = validation_score(coding.task, y[val_idx], coding.output_ids(outputs))
    name = "R^2" if coding.task == "regression" else "accuracy"
    print(f"validation {name} on {len(val_idx):,} held-out texts:")
    print(f"  rnn          {rnn_score:.4f}  trained in {seconds:.1f}s")
    params = ", ".join(f"{k.split('__')[-1]}={v}" for k, v in base.best_params.items())
    print(f"  {base.name:<12} {base.cv_score:.4f}  trained in {base.seconds:.1f}s "
          f"(grid search: {params})")
    if base.cv_score > rnn_score:
        print(f"the linear model wins by {base.cv_score - rnn_score:.4f}: for this data it is "
              "the better model (try more epochs, --direction bi or --wide, or use the linear "
              "model)")
    elif base.cv_score == rnn_score:
        print("a tie: the linear model is as good here, and faster")
    else:
        print(f"the RNN wins by {rnn_score - base.cv_score:.4f}")


def _monitor(choice: str, task: str) -> str:
    """The validation score --monitor names ('auto': accuracy for classes, R^2 for regression),
    refused before training when the task does not compute it."""
    monitor = AUTO_MONITOR[task] if choice == "auto" else choice
    if monitor not in MONITORS[task]:
        raise CLIError(f"--monitor {choice} is not computed for a {task} task; choose one of "
                       f"{', '.join(MONITORS[task])} (or auto: {AUTO_MONITOR[task]})")
    return monitor


def fit_recipe(texts: list[str], labels: list, coding: LabelCoding,
               options: TextModelOptions) -> RecipeRNN:
    """The recipe (passage.recipe.fit_text_model) on the texts and labels read."""
    from passage.recipe import fit_text_model

    model = cast("RecipeRNN", fit_text_model(texts, labels, coding, options))
    if model.n_truncated_:
        print(f"passage: {model.n_truncated_:,} training text(s) longer than "
              f"{options.truncate} tokens were trained on their first and last "
              f"{options.truncate} tokens in all (--truncate); prediction reads whole texts",
              file=sys.stderr)
    return model


# -- predict ---------------------------------------------------------------------------------
def prediction_header(coding: LabelCoding) -> list[str]:
    """Columns of the predictions CSV: index, prediction and (classes) the probabilities."""
    if coding.task == "regression":
        return ["index", "prediction"]
    assert coding.classes is not None  # a classification coding has its class names
    return ["index", "prediction", "probability"] + [f"p_{c}" for c in coding.classes]


def prediction_rows(coding: LabelCoding, outputs: np.ndarray) -> tuple[list[str], list[list]]:
    """Header and rows of the predictions CSV (index, prediction, probabilities)."""
    ids = coding.output_ids(outputs)
    header = prediction_header(coding)
    if coding.task == "regression":
        return header, [[i, f"{v:.6g}"] for i, v in enumerate(ids)]
    proba = coding.probabilities(outputs)
    assert coding.classes is not None and proba is not None  # classification: both set
    rows = [[i, coding.classes[k], f"{p[k]:.6f}", *(f"{q:.6f}" for q in p)]
            for i, (k, p) in enumerate(zip(ids, proba, strict=True))]
    return header, rows


def _kept_columns(args: argparse.Namespace):
    """--keep as read_data's keep: a list of names, ALL, or none."""
    if args.keep is None or args.keep == "":
        return ()
    if args.keep == ALL:
        return ALL
    names = [c.strip() for c in args.keep.split(",")]
    if not all(names):
        raise CLIError(f"--keep {args.keep!r}: give column names separated by commas, e.g. "
                       "--keep id,date (or --keep all)")
    return list(dict.fromkeys(names))


def _cell(value) -> str:
    """A kept input value as a CSV cell: text as is, JSON values as JSON, missing as empty."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _with_kept(header: list[str], rows: list[list], columns: dict[str, list]):
    """The predictions with the kept input columns after the index."""
    clash = sorted(set(columns) & set(header))
    if clash:
        raise CLIError(f"the data's column {clash[0]!r} has the name of an output column; "
                       "rename it, or leave it out of --keep")
    names = list(columns)
    header = [header[0], *names, *header[1:]]
    rows = [[row[0], *(_cell(columns[c][i]) for c in names), *row[1:]]
            for i, row in enumerate(rows)]
    return header, rows


def cmd_predict(args: argparse.Namespace) -> int:
    """Write the predictions of a model for the texts of a data file as CSV."""
    model = load_model(args.model)
    coding = model_coding(model)
    text_column, _ = data_columns(args, model)
    table = read_data(args.data, text_column, keep=_kept_columns(args))
    _with_kept(prediction_header(coding), [], table.columns)  # a clash fails before predicting
    # (model_coding: one output per text, an array)
    header, rows = prediction_rows(coding, cast("np.ndarray", model.predict(table.texts)))
    header, rows = _with_kept(header, rows, table.columns)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text(args.out, buf.getvalue())
    if args.out != "-":
        print(f"wrote {len(rows):,} predictions to {args.out}", file=sys.stderr)
    return 0


# -- evaluate --------------------------------------------------------------------------------
def evaluate_outputs(coding: LabelCoding, labels: list, outputs: np.ndarray) -> dict[str, float]:
    """Metrics of model outputs against raw labels: accuracy, macro F1 (and ROC AUC for binary),
    or RMSE, MAE and R^2."""
    import numpy as np

    from passage import metrics

    y = coding.encode(labels)
    if coding.task == "regression":
        pred = coding.output_ids(outputs)
        return {"examples": len(y), "rmse": float(np.sqrt(metrics.mse(y, pred))),
                "mae": metrics.mae(y, pred), "r2": metrics.r2(y, pred)}
    out = {"examples": len(y),  # (classification: probabilities are not None)
           "accuracy": metrics.accuracy(y, cast("np.ndarray", coding.probabilities(outputs))),
           "f1_macro": metrics.f1_macro(y, cast("np.ndarray", coding.probabilities(outputs)))}
    if coding.task == "binary" and len(set(y.tolist())) == 2:
        out["roc_auc"] = metrics.roc_auc(y, np.asarray(outputs)[:, -1])
    return out


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Print (or with --json, write as JSON) the scores of a model on a labelled data file."""
    model = load_model(args.model)
    coding = model_coding(model)
    text_column, label_column = data_columns(args, model)
    texts, labels = read_labelled(args.data, text_column, label_column, args)
    assert labels is not None  # data_columns always gives a label column
    scores = evaluate_outputs(coding, labels, cast("np.ndarray", model.predict(texts)))
    if args.json:
        print(json.dumps(scores))
    else:
        for name, value in scores.items():
            print(f"{name:<10} {value:,}" if name == "examples" else f"{name:<10} {value:.4f}")
    return 0

