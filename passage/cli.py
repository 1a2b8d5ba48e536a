"""``passage``: train, use and show text models from the command line.

    passage train reviews.csv --text-column text --label-column label --out model.passage
    passage predict model.passage new.csv --out predictions.csv
    passage evaluate model.passage test.jsonl.gz
    passage showdown train.csv --test test.csv --sizes 1000 5000 --png curve.png
    passage embeddings model.passage train.csv --out words.png
    passage trace model.passage "Not bad at all, I expected much worse." --html trace.html

Data files are CSV, TSV or JSON lines (gzip too), told apart by their names. Every error is one
line on stderr and a non-zero exit status (1; 2 for bad arguments).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import traceback
import warnings

from passage.showcase.labels import TASKS

DEFAULTS = {"text_column": "text", "label_column": "label"}


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
def _read(path: str, text_column: str, label_column: str | None = None):
    from passage.showcase.tables import read_table

    return read_table(path, text_column, label_column)


def _load_model(path: str):
    from passage.io import load

    if os.path.isdir(path):
        raise CLIError(f"{path!r} is a directory, not a model file")
    return load(path)


def _columns(args, model=None) -> tuple[str, str]:
    """--text-column / --label-column, else what the model was trained with, else defaults."""
    saved = (getattr(model, "extra_", None) or {}) if model is not None else {}
    text = args.text_column or saved.get("text_column") or DEFAULTS["text_column"]
    label = getattr(args, "label_column", None) or saved.get("label_column") or \
        DEFAULTS["label_column"]
    return text, label


def _check_out(path: str) -> None:
    """Fail before the work, not after, if the output cannot be written where asked."""
    if path == "-":
        return
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CLIError(f"cannot write {path!r}: directory {directory!r} does not exist")
    if os.path.isdir(path):
        raise CLIError(f"cannot write {path!r}: it is a directory")


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
    from passage.showcase.labels import LabelCoding
    from passage.showcase.training import TrainOptions, train_model

    _check_out(args.out)
    texts, labels = _read(args.data, args.text_column, args.label_column)
    coding = LabelCoding.fit(labels, args.task)
    options = TrainOptions(
        size=args.size, embedding_size=args.embedding_size, layer=args.layer,
        direction=args.direction, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        min_df=args.min_df, max_features=args.max_features, character=args.character,
        validation_split=args.validation_split, patience=args.patience, seed=args.seed,
        verbose=_verbosity(args), precision=args.precision)
    what = {"binary": f"binary, positive class {coding.classes[-1]!r}" if coding.classes
            else "binary",
            "multiclass": f"{coding.n_outputs} classes", "regression": "regression"}
    _say(args, f"{len(texts):,} texts from {args.data}; task: {what[coding.task]}"
         + (f" ({', '.join(map(str, coding.classes))})" if coding.task == "multiclass" else ""))
    model = train_model(texts, labels, options=options, coding=coding)
    model.extra_ = {**coding.to_dict(), "text_column": args.text_column,
                    "label_column": args.label_column}
    save(model, args.out)
    best = getattr(model, "best_epoch_", None)
    if best is not None:
        record = model.history_[best - 1]
        scores = ", ".join(f"{k[4:]} {v:.4f}" for k, v in record.items() if k.startswith("val_"))
        _say(args, f"kept epoch {best} of {len(model.history_)} (validation: {scores})")
    _say(args, f"vocabulary {model.tokenizer.n_features:,} ids; saved model to {args.out}")
    return 0


# -- predict ---------------------------------------------------------------------------------
def prediction_rows(coding, outputs) -> tuple[list[str], list[list]]:
    """Header and rows of the predictions CSV (index, prediction, probabilities)."""
    ids = coding.output_ids(outputs)
    if coding.task == "regression":
        return ["index", "prediction"], [[i, f"{v:.6g}"] for i, v in enumerate(ids)]
    proba = coding.probabilities(outputs)
    header = ["index", "prediction", "probability"] + [f"p_{c}" for c in coding.classes]
    rows = [[i, coding.classes[k], f"{p[k]:.6f}", *(f"{q:.6f}" for q in p)]
            for i, (k, p) in enumerate(zip(ids, proba, strict=True))]
    return header, rows


def cmd_predict(args) -> int:
    from passage.showcase.labels import LabelCoding

    _check_out(args.out)
    model = _load_model(args.model)
    coding = LabelCoding.from_model(model)
    text_column, _ = _columns(args, model)
    texts, _ = _read(args.data, text_column)
    header, rows = prediction_rows(coding, model.predict(texts))
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
    from passage.showcase.labels import LabelCoding

    model = _load_model(args.model)
    coding = LabelCoding.from_model(model)
    text_column, label_column = _columns(args, model)
    texts, labels = _read(args.data, text_column, label_column)
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

    for out in (args.png, args.json):
        if out:
            _check_out(out)
    texts, labels = _read(args.data, args.text_column, args.label_column)
    if args.test:
        test_texts, test_labels = _read(args.test, args.text_column, args.label_column)
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
                               epochs=args.epochs, min_df=args.min_df,
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
    from passage.showcase.labels import LabelCoding

    _check_out(args.out)
    model = _load_model(args.model)
    coding = LabelCoding.from_model(model)
    if coding.task == "multiclass":
        raise CLIError("the embedding map colours words by the average label, which needs a "
                       "binary or regression model; this one has "
                       f"{len(coding.classes)} classes")
    text_column, label_column = _columns(args, model)
    texts, labels = _read(args.data, text_column, label_column)
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

    for out in (args.html, args.png):
        if out:
            _check_out(out)
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


def _add_model_options(p, showdown: bool = False) -> None:
    g = p.add_argument_group("model and training")
    g.add_argument("--size", type=positive_int, default=128, help="recurrent units (128)")
    g.add_argument("--embedding-size", type=positive_int, default=128,
                   help="embedding dimensions (128)")
    g.add_argument("--epochs", type=positive_int, default=10 if showdown else 5,
                   help="most epochs; early stopping usually ends sooner (%(default)s)")
    g.add_argument("--min-df", type=positive_int, default=2,
                   help="a word needs this many texts to get its own id (%(default)s)")
    g.add_argument("--seed", type=int, default=0, help="random seed (%(default)s)")
    if showdown:
        return
    g.add_argument("--layer", choices=["gru", "lstm", "simple"], default="gru",
                   help="recurrent layer (gru)")
    g.add_argument("--direction", choices=["forward", "backward", "bi"], default="forward",
                   help="reading direction (forward)")
    g.add_argument("--batch-size", type=positive_int, default=64, help="minibatch size (64)")
    g.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate (1e-3)")
    g.add_argument("--max-features", type=positive_int, default=20000,
                   help="vocabulary size, special ids included (20000)")
    g.add_argument("--character", action="store_true", help="character tokens, not words")
    g.add_argument("--validation-split", type=fraction, default=0.1,
                   help="fraction held out for early stopping; 0 turns it off (0.1)")
    g.add_argument("--patience", type=positive_int, default=2,
                   help="stop after this many epochs without a better validation cost (2)")
    g.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                   help="bf16: mixed-precision training, faster on CPUs with AVX512-BF16/AMX; "
                        "fp16: for GPUs without bfloat16 (fp32)")


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
    _add_model_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="predict the texts of a data file",
                       description="Write one CSV row per text: index, prediction and, for "
                       "classification, the probability of the prediction and of every class.")
    p.add_argument("model", help="model file written by 'passage train'")
    p.add_argument("data", help="data file with a text column")
    p.add_argument("--out", default="-", help="CSV file to write (default: standard output)")
    _add_data_columns(p, label=False, required_defaults=False)
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
    return parser


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, KeyError):
        text = f"missing key {text}"
    return text


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (argparse exits 2 on bad arguments)."""
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return args.func(args)
        except KeyboardInterrupt:
            print("passage: interrupted", file=sys.stderr)
            return 130
        except (CLIError, ValueError, TypeError, OSError, ImportError, KeyError,
                FloatingPointError) as e:
            if args.traceback:
                traceback.print_exc()
            print(f"passage {args.command}: error: {_one_line(e)}", file=sys.stderr)
            return 1


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"passage: warning: {' '.join(str(message).split())}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
