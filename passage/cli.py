"""``passage``: train, use and show text models from the command line.

    passage train reviews.csv --text-column text --label-column label --out model.passage
    passage predict model.passage new.csv --out predictions.csv --keep id
    passage evaluate model.passage test.jsonl.gz
    passage showdown train.csv --test test.csv --sizes 1000 5000 --png curve.png
    passage embeddings model.passage train.csv --out words.png
    passage trace model.passage "Not bad at all, I expected much worse." --html trace.html

Data files are CSV, TSV or JSON lines (gzip too), told apart by their names. Every error is one
line on stderr and a non-zero exit status (1; 2 for bad arguments); ``passage --traceback
COMMAND ...`` shows where an error came from. No command writes over one of its own inputs (the
same file, also through a symlink or a hard link): that is refused before any work is done.

Choices made here: ``train`` keeps the epoch with the best validation accuracy (classes) or R^2
(regression) unless ``--monitor`` says otherwise; a label cell that is empty or NA/NaN/N/A/
NULL/None is refused unless ``--drop-missing``; ``predict`` writes the index and predictions,
plus the input columns named by ``--keep`` (``--keep all``: every column but the text).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
import traceback
import warnings

from passage.labels import TASKS
from passage.options import AUTO_MONITOR, TextModelOptions

DEFAULTS = {"text_column": "text", "label_column": "label"}
# argument names that are files a command reads / writes (any subcommand, see check_files)
INPUT_ARGS = {"model": "model file", "data": "data file", "test": "test file (--test)",
              "file": "text file (--file)"}
OUTPUT_ARGS = ("out", "html", "png", "json")
# validation scores that --monitor can keep the best epoch by, per task (RNN.evaluate's names)
MONITORS = {"binary": ("cost", "accuracy", "roc_auc"),
            "multiclass": ("cost", "accuracy", "f1_macro"),
            "regression": ("cost", "mse", "mae", "r2")}
MAX_ERROR = 1000  # characters of an error message shown


class CLIError(Exception):
    """An error to report as one line (no traceback)."""


# -- argument types (argparse turns their ValueError into a usage error, exit 2) --------------
def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


# -- shared helpers ---------------------------------------------------------------------------
def _read(path: str, text_column: str, label_column: str | None = None, args=None):
    """(texts, labels) of a data file; rows without a label are refused, or skipped (and
    counted on stderr) with --drop-missing."""
    from passage.showcase.tables import read_data

    drop = bool(getattr(args, "drop_missing", False))
    table = read_data(path, text_column, label_column, drop_missing=drop)
    if table.dropped:
        lines = ", ".join(map(str, table.dropped[:5])) + (", ..." if len(table.dropped) > 5
                                                         else "")
        print(f"passage: dropped {len(table.dropped):,} row(s) of {path} without a label in "
              f"column {label_column!r} (line(s) {lines})", file=sys.stderr)
    return table.texts, table.labels


def _load_model(path: str):
    """A model for the command line: one with a tokenizer and consistent metadata."""
    from passage.io import load

    if os.path.isdir(path):
        raise CLIError(f"{path!r} is a directory, not a model file")
    model = load(path)
    if getattr(model, "tokenizer", None) is None:
        raise CLIError(f"{path} has no tokenizer: the command line reads raw text, so it needs "
                       "a model trained with one ('passage train', or RNN(..., tokenizer=...))")
    _coding(model)  # refuse inconsistent metadata now, not after the work
    extra = getattr(model, "extra_", None) or {}
    for key in ("text_column", "label_column"):
        if extra.get(key) is not None and not isinstance(extra[key], str):
            raise CLIError(f"{path}: the saved {key} is {extra[key]!r}, not a column name")
    return model


def _coding(model):
    """The model's label coding, checked against its output layer."""
    from passage.labels import LabelCoding
    from passage.layers import output_size

    coding = LabelCoding.from_model(model)
    coding.check_outputs(output_size(model.layers[-1]))
    return coding


def _columns(args, model=None) -> tuple[str, str]:
    """--text-column / --label-column, else what the model was trained with, else defaults."""
    saved = (getattr(model, "extra_", None) or {}) if model is not None else {}
    text = args.text_column or saved.get("text_column") or DEFAULTS["text_column"]
    label = getattr(args, "label_column", None) or saved.get("label_column") or \
        DEFAULTS["label_column"]
    return text, label


def same_file(a: str, b: str) -> bool:
    """Whether paths a and b name the same file: the same real path (symlinks resolved), or,
    both existing, the same device and inode (a hard link)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def check_files(args) -> None:
    """Refuse, before any work, an output that cannot be written where asked or that is one
    of the command's inputs (or another of its outputs). Every subcommand goes through this:
    its file arguments are found by name (INPUT_ARGS, OUTPUT_ARGS)."""
    inputs = [(role, getattr(args, name)) for name, role in INPUT_ARGS.items()
              if isinstance(getattr(args, name, None), str)]
    outputs = [(f"--{name}", getattr(args, name)) for name in OUTPUT_ARGS
               if isinstance(getattr(args, name, None), str) and getattr(args, name) != "-"]
    done: list[tuple[str, str]] = []
    for flag, path in outputs:
        _check_out(path)
        for role, other in inputs:
            if same_file(path, other):
                raise CLIError(f"refusing to write {flag} {path!r}: it is the {role} "
                               f"{other!r}, which would be lost; choose another output path")
        for other_flag, other in done:
            if same_file(path, other):
                raise CLIError(f"{flag} {path!r} and {other_flag} {other!r} are the same file; "
                               "give each output its own path")
        done.append((flag, path))


def _check_out(path: str) -> None:
    """Fail before the work, not after, if the output cannot be written where asked."""
    if path == "-":
        return
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CLIError(f"cannot write {path!r}: directory {directory!r} does not exist")
    if os.path.isdir(path):
        raise CLIError(f"cannot write {path!r}: it is a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise CLIError(f"cannot write {path!r}: no permission to create files in {directory!r}")


def _verbosity(args) -> int:
    if args.quiet:
        return 0
    return 2 if sys.stdout.isatty() else 1


def _say(args, message: str) -> None:
    if not getattr(args, "quiet", False):
        print(message)


def _write_text(path: str, text: str) -> None:
    if path == "-":
        sys.stdout.write(text)
        return
    from passage.files import atomic_write

    def write(tmp):
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)

    atomic_write(path, write)


# -- train -----------------------------------------------------------------------------------
def cmd_train(args) -> int:
    from passage.io import save
    from passage.labels import LabelCoding

    texts, labels = _read(args.data, args.text_column, args.label_column, args)
    coding = LabelCoding.fit(labels, args.task)
    _monitor(args.monitor, coding.task)  # refused now if the task does not compute it
    options = TextModelOptions(
        size=args.size, embedding_size=args.embedding_size, layer=args.layer,
        direction=args.direction, pool=args.pool, wide=args.wide, n_epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, lr_schedule=args.lr_schedule,
        min_df=args.min_df, max_features=args.max_features, character=args.character,
        truncate=args.truncate, validation_split=args.validation_split, refit=args.refit,
        patience=args.patience, monitor=args.monitor, seed=args.seed, verbose=_verbosity(args),
        precision=args.precision)
    what = {"binary": f"binary, positive class {coding.classes[-1]!r}" if coding.classes
            else "binary",
            "multiclass": f"{coding.n_outputs} classes", "regression": "regression"}
    _say(args, f"{len(texts):,} texts from {args.data}; task: {what[coding.task]}"
         + (f" ({', '.join(map(str, coding.classes))})" if coding.task == "multiclass" else ""))
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
        _say(args, f"kept epoch {best} of {len(model.history_)} by validation {model.monitor_} "
                   f"(validation: {scores})")
    refit = getattr(model, "refit_", None)
    if refit:
        _say(args, f"then trained again on all {refit['texts']:,} texts for {refit['epochs']} "
                   "epoch(s) (--no-refit: keep the validated model)")
    _say(args, f"vocabulary {model.tokenizer.n_features:,} ids; trained in {seconds:.1f}s; "
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

    train_idx, val_idx = validation_indices(len(texts), options)
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


def fit_recipe(texts, labels, coding, options: TextModelOptions):
    """The recipe (passage.recipe.fit_text_model) on the texts and labels read."""
    from passage.recipe import fit_text_model

    model = fit_text_model(texts, labels, coding, options)
    if model.n_truncated_:
        print(f"passage: {model.n_truncated_:,} training text(s) longer than "
              f"{options.truncate} tokens were trained on their first and last "
              f"{options.truncate} tokens in all (--truncate); prediction reads whole texts",
              file=sys.stderr)
    return model


# -- predict ---------------------------------------------------------------------------------
def prediction_header(coding) -> list[str]:
    """Columns of the predictions CSV: index, prediction and (classes) the probabilities."""
    if coding.task == "regression":
        return ["index", "prediction"]
    return ["index", "prediction", "probability"] + [f"p_{c}" for c in coding.classes]


def prediction_rows(coding, outputs) -> tuple[list[str], list[list]]:
    """Header and rows of the predictions CSV (index, prediction, probabilities)."""
    ids = coding.output_ids(outputs)
    header = prediction_header(coding)
    if coding.task == "regression":
        return header, [[i, f"{v:.6g}"] for i, v in enumerate(ids)]
    proba = coding.probabilities(outputs)
    rows = [[i, coding.classes[k], f"{p[k]:.6f}", *(f"{q:.6f}" for q in p)]
            for i, (k, p) in enumerate(zip(ids, proba, strict=True))]
    return header, rows


def _kept_columns(args):
    """--keep as read_data's keep: a list of names, ALL, or none."""
    from passage.showcase.tables import ALL

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


def cmd_predict(args) -> int:
    from passage.showcase.tables import read_data

    model = _load_model(args.model)
    coding = _coding(model)
    text_column, _ = _columns(args, model)
    table = read_data(args.data, text_column, keep=_kept_columns(args))
    _with_kept(prediction_header(coding), [], table.columns)  # a clash fails before predicting
    header, rows = prediction_rows(coding, model.predict(table.texts))
    header, rows = _with_kept(header, rows, table.columns)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    _write_text(args.out, buf.getvalue())
    if args.out != "-":
        print(f"wrote {len(rows):,} predictions to {args.out}", file=sys.stderr)
    return 0


# -- evaluate --------------------------------------------------------------------------------
def evaluate_outputs(coding, labels, outputs) -> dict[str, float]:
    """Metrics of model outputs against raw labels: accuracy, macro F1 (and ROC AUC for binary),
    or RMSE, MAE and R^2."""
    import numpy as np

    from passage import metrics

    y = coding.encode(labels)
    if coding.task == "regression":
        pred = coding.output_ids(outputs)
        return {"examples": len(y), "rmse": float(np.sqrt(metrics.mse(y, pred))),
                "mae": metrics.mae(y, pred), "r2": metrics.r2(y, pred)}
    out = {"examples": len(y), "accuracy": metrics.accuracy(y, coding.probabilities(outputs)),
           "f1_macro": metrics.f1_macro(y, coding.probabilities(outputs))}
    if coding.task == "binary" and len(set(y.tolist())) == 2:
        out["roc_auc"] = metrics.roc_auc(y, np.asarray(outputs)[:, -1])
    return out


def cmd_evaluate(args) -> int:
    model = _load_model(args.model)
    coding = _coding(model)
    text_column, label_column = _columns(args, model)
    texts, labels = _read(args.data, text_column, label_column, args)
    scores = evaluate_outputs(coding, labels, model.predict(texts))
    if args.json:
        print(json.dumps(scores))
    else:
        for name, value in scores.items():
            print(f"{name:<10} {value:,}" if name == "examples" else f"{name:<10} {value:.4f}")
    return 0


# -- showdown --------------------------------------------------------------------------------
def cmd_showdown(args) -> int:
    import numpy as np

    from passage.showcase.showdown import (
        SHOWDOWN_RNN,
        format_table,
        plot_learning_curve,
        run_showdown,
    )

    texts, labels = _read(args.data, args.text_column, args.label_column, args)
    if args.test:
        test_texts, test_labels = _read(args.test, args.text_column, args.label_column, args)
    else:
        n_test = int(round(args.test_fraction * len(texts)))
        if not 0 < n_test < len(texts):
            raise CLIError(f"--test-fraction {args.test_fraction} of {len(texts)} texts leaves "
                           "no test or no training texts; give --test FILE instead")
        order = np.random.default_rng(args.seed + 1).permutation(len(texts))
        test_idx, train_idx = order[:n_test], order[n_test:]
        test_texts, test_labels = [texts[i] for i in test_idx], [labels[i] for i in test_idx]
        texts, labels = [texts[i] for i in train_idx], [labels[i] for i in train_idx]
    rnn = SHOWDOWN_RNN.updated(size=args.size, embedding_size=args.embedding_size,
                               n_epochs=args.epochs, min_df=args.min_df,
                               verbose=1 if args.verbose else 0)
    log = None if args.quiet else print
    rows = run_showdown(texts, labels, test_texts, test_labels, sizes=args.sizes,
                        task=args.task, rnn=rnn, n_jobs=args.jobs, seed=args.seed, log=log)
    print(format_table(rows))
    if args.png:
        plot_learning_curve(rows, args.png, title=args.title, n_test=len(test_texts))
        _say(args, f"wrote {args.png}")
    if args.json:
        _write_text(args.json, json.dumps(rows, indent=1) + "\n")
    return 0


# -- embeddings ------------------------------------------------------------------------------
def cmd_embeddings(args) -> int:
    import numpy as np

    from passage.showcase.embedmap import embedding_map

    model = _load_model(args.model)
    coding = _coding(model)
    if coding.task == "multiclass":
        raise CLIError("the embedding map colours words by the average label, which needs a "
                       "binary or regression model; this one has "
                       f"{len(coding.classes)} classes")
    text_column, label_column = _columns(args, model)
    texts, labels = _read(args.data, text_column, label_column, args)
    values = coding.encode(labels).astype(np.float64)
    name = (f"share labelled {coding.classes[-1]!r}" if coding.task == "binary" else
            f"average {label_column}")
    points = embedding_map(model, texts, values, args.out, n_words=args.words,
                           n_labels=args.labels, value_name=name, seed=args.seed,
                           title=args.title)
    _say(args, f"mapped {len(points)} words; wrote {args.out}")
    return 0


# -- trace -----------------------------------------------------------------------------------
def cmd_trace(args) -> int:
    from passage.showcase.trace import plot_trace, to_ansi, trace, write_html

    model = _load_model(args.model)
    text = args.text
    if args.file:
        if text is not None:
            raise CLIError("give the text or --file, not both")
        try:
            with open(args.file, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise CLIError(f"cannot read {args.file!r}: {e.strerror}") from None
    if text is None:
        raise CLIError("no text to trace: give it as an argument or with --file")
    tr = trace(model, text)
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    print(to_ansi(tr, color=color))
    if args.html:
        write_html(tr, args.html)
        print(f"wrote {args.html}", file=sys.stderr)
    if args.png:
        plot_trace(tr, args.png)
        print(f"wrote {args.png}", file=sys.stderr)
    return 0


# -- serve -----------------------------------------------------------------------------------
def cmd_serve(args) -> int:
    from passage.serve.app import create_app
    from passage.serve.requests import Limits
    from passage.serve.server import run

    if not args.max_wait_ms >= 0:
        raise CLIError(f"--max-wait-ms must be 0 or more, got {args.max_wait_ms}")
    limits = Limits(max_body_bytes=args.max_body_bytes, max_texts=args.max_texts,
                    max_chars=args.max_chars)
    app = create_app(args.model, max_batch_size=args.max_batch_size,
                     max_wait_ms=args.max_wait_ms, max_queue=args.max_queue, limits=limits,
                     api_key=args.api_key or os.environ.get("PASSAGE_API_KEY") or None,
                     cors_origins=args.cors_origin)
    if not run(app, args.host, args.port, log_level=args.log_level):
        raise CLIError("the server did not start (the log above says why)")
    return 0


# -- export ----------------------------------------------------------------------------------
def cmd_export(args) -> int:
    from passage.export import export_model, tokenizer_path
    from passage.io import load

    if os.path.isdir(args.model):
        raise CLIError(f"{args.model!r} is a directory, not a model file")
    tok_out = tokenizer_path(args.out)
    if same_file(tok_out, args.model):
        raise CLIError(f"refusing to write {tok_out!r}: it is the model file; choose another "
                       "--out")
    onnx_path, tok_path = export_model(load(args.model), args.out)
    _say(args, f"wrote {onnx_path}" + (f" and {tok_path}" if tok_path else
                                       " (the model has no Passage Tokenizer to export)"))
    return 0


# -- the parser ------------------------------------------------------------------------------
def _add_data_columns(p, label: bool = True, required_defaults: bool = True) -> None:
    default_text = DEFAULTS["text_column"] if required_defaults else None
    p.add_argument("--text-column", default=default_text, metavar="C",
                   help="column (or JSON key) holding the text"
                   + (" (default: %(default)s)" if required_defaults else
                      " (default: the one the model was trained with, else 'text')"))
    if label:
        default_label = DEFAULTS["label_column"] if required_defaults else None
        p.add_argument("--label-column", default=default_label, metavar="L",
                       help="column (or JSON key) holding the label"
                       + (" (default: %(default)s)" if required_defaults else
                          " (default: the one the model was trained with, else 'label')"))
        p.add_argument("--drop-missing", action="store_true",
                       help="skip rows whose label is missing (empty, NA, NaN, N/A, NULL, None) "
                            "and say how many; without it such rows are an error")


def _add_model_options(p, showdown: bool = False) -> None:
    d = TextModelOptions()  # the recipe's defaults: one place (passage/options.py)
    g = p.add_argument_group("model and training")
    g.add_argument("--size", type=positive_int, default=d.size,
                   help="recurrent units (%(default)s)")
    g.add_argument("--embedding-size", type=positive_int, default=d.embedding_size,
                   help="embedding dimensions (%(default)s)")
    g.add_argument("--epochs", type=positive_int, default=d.n_epochs,
                   help="most epochs; early stopping usually ends sooner (%(default)s)")
    g.add_argument("--min-df", type=positive_int, default=d.min_df,
                   help="a word needs this many texts to get its own id (%(default)s)")
    g.add_argument("--seed", type=int, default=0, help="random seed (%(default)s)")
    if showdown:
        return
    g.add_argument("--layer", choices=["gru", "lstm", "simple"], default=d.layer,
                   help="recurrent layer (%(default)s)")
    g.add_argument("--direction", choices=["forward", "backward", "bi"], default=d.direction,
                   help="reading direction; bi: forward and backward, states concatenated "
                        "(%(default)s)")
    g.add_argument("--pool", choices=["last", "max", "mean"], default=d.pool,
                   help="what the recurrent layer hands to the output: its last state, or the "
                        "max or mean over all its states (%(default)s)")
    g.add_argument("--wide", action=argparse.BooleanOptionalAction, default=d.wide,
                   help="add a linear term over the words and word pairs of the text to the "
                        "output, learnt with the RNN (%(default)s)")
    g.add_argument("--batch-size", type=positive_int, default=d.batch_size,
                   help="minibatch size (%(default)s)")
    g.add_argument("--lr", type=positive_float, default=d.lr,
                   help="Adam learning rate (%(default)s)")
    g.add_argument("--lr-schedule", choices=["constant", "linear"], default=d.lr_schedule,
                   help="linear: the learning rate falls to 0 over the planned epochs "
                        "(%(default)s)")
    g.add_argument("--max-features", type=positive_int, default=d.max_features,
                   help="vocabulary size, special ids included (%(default)s)")
    g.add_argument("--character", action="store_true", help="character tokens, not words")
    g.add_argument("--validation-split", type=fraction, default=d.validation_split,
                   help="fraction held out for early stopping; 0 turns it off (%(default)s)")
    g.add_argument("--refit", action=argparse.BooleanOptionalAction, default=d.refit,
                   help="once validation has chosen the epochs and the blend, train again on "
                        "all the texts, the held-out ones too (%(default)s)")
    g.add_argument("--patience", type=positive_int, default=d.patience,
                   help="stop after this many epochs without a better validation score "
                        "(%(default)s)")
    g.add_argument("--monitor", choices=["auto", *dict.fromkeys(sum(MONITORS.values(), ()))],
                   default=d.monitor,
                   help="validation score that picks the epoch kept and drives early stopping; "
                        "auto: accuracy for classes, r2 for regression (cost, mse, mae: lower "
                        "is better; roc_auc binary only, f1_macro multiclass only)")
    g.add_argument("--truncate", type=nonnegative_int, default=d.truncate, metavar="N",
                   help="train on the first and last N/2 tokens of texts longer than N "
                        "(prediction still reads whole texts); 0: train on everything "
                        "(%(default)s)")
    g.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"],
                   default=d.precision,
                   help="auto: bf16 mixed precision where the CPU (AVX512-BF16/AMX) or GPU "
                        "runs it natively, else fp32; fp16: for GPUs without bfloat16 "
                        "(%(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="passage", description="Train, use and show recurrent text models.",
        epilog="Data files: .csv, .tsv or .jsonl, optionally .gz. "
               "Run 'passage COMMAND --help' for a command's options.")
    parser.add_argument("--traceback", action="store_true",
                        help="show the full traceback of an error (for bug reports)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter

    p = sub.add_parser("train", help="train a model on labelled texts and save it",
                       description="Train an RNN (Embedding -> recurrent -> Dense) on a data "
                       "file and save it, with its tokenizer and class names, to one file. "
                       "The task is inferred from the labels unless given: 2 values -> binary, "
                       "a few integers or any strings -> multiclass, floats or many integers "
                       "-> regression (IMDB-style 1-10 ratings count as classes: pass --task "
                       "regression).")
    p.add_argument("data", help="training data file")
    p.add_argument("--out", required=True, help="model file to write, e.g. model.passage")
    _add_data_columns(p)
    p.add_argument("--task", choices=["auto", *TASKS], default="auto",
                   help="what to predict (default: inferred from the labels)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--baseline", action="store_true",
                   help="also fit the TF-IDF + linear model (scikit-learn) on the same training "
                        "texts and print both validation scores and training times")
    _add_model_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="predict the texts of a data file",
                       description="Write one CSV row per text: index, the input columns "
                       "named by --keep, the prediction and, for classification, the "
                       "probability of the prediction and of every class.")
    p.add_argument("model", help="model file written by 'passage train'")
    p.add_argument("data", help="data file with a text column")
    p.add_argument("--out", default="-", help="CSV file to write (default: standard output)")
    _add_data_columns(p, label=False, required_defaults=False)
    p.add_argument("--keep", default=None, metavar="COLS",
                   help="input columns to copy into the output after the index, e.g. "
                        "--keep id,date, so predictions can be joined back; 'all' copies every "
                        "column but the text (default: none)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="score a model on labelled texts",
                       description="Print accuracy, macro F1 and ROC AUC (binary), or RMSE, "
                       "MAE and R^2 (regression), of a model on a labelled data file.")
    p.add_argument("model", help="model file written by 'passage train'")
    p.add_argument("data", help="labelled data file")
    _add_data_columns(p, required_defaults=False)
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("showdown", formatter_class=fmt,
                       help="linear baseline vs RNN over training-set sizes",
                       description="Train the grid-searched TF-IDF linear baseline and an RNN "
                       "on growing random subsets of the training data, score both on the same "
                       "test texts, print the table and draw the learning curve.")
    p.add_argument("data", help="training data file")
    test = p.add_mutually_exclusive_group()
    test.add_argument("--test", help="test data file (default: hold out --test-fraction)")
    test.add_argument("--test-fraction", type=fraction, default=0.2,
                      help="share of DATA held out for testing when there is no --test")
    _add_data_columns(p)
    p.add_argument("--task", choices=["auto", *TASKS], default="auto", help="what to predict")
    p.add_argument("--sizes", type=positive_int, nargs="+", default=[1000, 5000, 25000],
                   help="training-set sizes (capped at the data available)")
    p.add_argument("--png", help="learning-curve PNG to write")
    p.add_argument("--json", help="write the results table as JSON here")
    p.add_argument("--title", help="plot title")
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="parallel jobs for the baseline's grid search")
    p.add_argument("--verbose", action="store_true", help="print every RNN epoch")
    p.add_argument("--quiet", action="store_true", help="print only the final table")
    _add_model_options(p, showdown=True)
    p.set_defaults(func=cmd_showdown)

    p = sub.add_parser("embeddings", formatter_class=fmt,
                       help="t-SNE map of a model's word embeddings",
                       description="Place the model's most frequent words by t-SNE of their "
                       "embedding vectors, coloured by the average label of the texts of DATA "
                       "that contain them; the most extreme words and a sample of others are "
                       "labelled. Binary and regression models.")
    p.add_argument("model", help="model file written by 'passage train'")
    p.add_argument("data", help="labelled texts (e.g. the training file)")
    p.add_argument("--out", required=True, help="PNG file to write")
    _add_data_columns(p, required_defaults=False)
    p.add_argument("--words", type=positive_int, default=500, help="most frequent words to map")
    p.add_argument("--labels", type=nonnegative_int, default=40, help="words to label with text")
    p.add_argument("--title", help="plot title")
    p.add_argument("--seed", type=int, default=0, help="random seed of t-SNE and the sample")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=cmd_embeddings)

    p = sub.add_parser("trace", help="the prediction after every token of a text",
                       description="Print the text with each token coloured by the model's "
                       "prediction after reading up to it (red low, blue high); optionally "
                       "write an HTML page and a PNG.")
    p.add_argument("model", help="model file written by 'passage train'")
    p.add_argument("text", nargs="?", help="the text (quote it), or use --file")
    p.add_argument("--file", help="read the text from this UTF-8 file")
    p.add_argument("--html", help="standalone HTML file to write")
    p.add_argument("--png", help="PNG file to write")
    p.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                   help="ANSI colours in the terminal (default: auto, when it is one)")
    p.set_defaults(func=cmd_trace)

    p = sub.add_parser("serve", formatter_class=fmt, help="serve a model over HTTP",
                       description="Answer POST /predict and /trace over HTTP (FastAPI on "
                       "uvicorn; pip install 'passage[serve]'), with a live reading-trace page "
                       "at /, /health, /ready, /metadata and Prometheus /metrics. Concurrent "
                       "requests are batched. SIGTERM finishes in-flight requests, then exits.")
    p.add_argument("model", help="model file written by 'passage train' or Tagger.save")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 serves other machines too")
    p.add_argument("--port", type=nonnegative_int, default=8000, help="port (0: any free one)")
    p.add_argument("--max-batch-size", type=positive_int, default=64,
                   help="most texts per forward pass")
    p.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="longest wait to fill a batch while requests are concurrent")
    p.add_argument("--max-queue", type=positive_int, default=1024,
                   help="texts that may wait; beyond, 503 with Retry-After")
    p.add_argument("--max-body-bytes", type=positive_int, default=4 << 20,
                   help="largest request body (413 beyond)")
    p.add_argument("--max-texts", type=positive_int, default=256,
                   help="most texts per request (422 beyond)")
    p.add_argument("--max-chars", type=positive_int, default=100_000,
                   help="most characters per text (422 beyond)")
    p.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on every route but "
                   "/health (default: $PASSAGE_API_KEY, else none)")
    p.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                   help="allow browser calls from this origin (repeatable; default: CORS off)")
    p.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"],
                   default="info", help="uvicorn's log level")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("export", help="write a model as ONNX plus a tokenizer.json",
                       description="Write the model as an ONNX file (inputs: token ids and "
                       "lengths; pip install 'passage[export]') and its tokenizer as a Hugging "
                       "Face tokenizer.json beside it (model.onnx -> model.tokenizer.json) that "
                       "gives the same ids. See docs/export.md.")
    p.add_argument("model", help="model file written by 'passage train' or Tagger.save")
    p.add_argument("--out", required=True, help="ONNX file to write, e.g. model.onnx")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=cmd_export)
    return parser


EXPECTED_ERRORS = (CLIError, ValueError, TypeError, OSError, ImportError, KeyError,
                   FloatingPointError)


def _one_line(error: BaseException) -> str:
    """The error as one line of at most MAX_ERROR characters; an unexpected kind is named."""
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, KeyError):
        text = f"missing key {text}"
    elif isinstance(error, MemoryError):
        text = "out of memory" + (f" ({text})" if text != "MemoryError" else "")
    elif not isinstance(error, EXPECTED_ERRORS):
        text = f"{type(error).__name__}: {text} (passage --traceback ... shows where)"
    return text if len(text) <= MAX_ERROR else text[:MAX_ERROR - 3] + "..."


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (argparse exits 2 on bad arguments)."""
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            check_files(args)
            return args.func(args)
        except KeyboardInterrupt:
            print("passage: interrupted", file=sys.stderr)
            return 130
        except Exception as e:  # noqa: BLE001 - every error is one line unless --traceback
            if args.traceback:
                traceback.print_exc()
            sys.stderr.write(f"passage {args.command}: error: {_one_line(e)}\n")
            sys.stderr.flush()
            return 1


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"passage: warning: {' '.join(str(message).split())}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
