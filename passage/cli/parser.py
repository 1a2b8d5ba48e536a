"""The ``passage`` argument parser: the subcommands, their options, and the option types.

An option type raises ``argparse.ArgumentTypeError``, which argparse reports as a usage error
(exit status 2). The model options' defaults are the recipe's (``passage/options.py``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from passage.cli.commands import cmd_embeddings, cmd_export, cmd_serve, cmd_showdown, cmd_trace
from passage.cli.common import DEFAULTS, MONITORS
from passage.cli.train import cmd_evaluate, cmd_predict, cmd_train
from passage.labels import TASKS
from passage.options import TextModelOptions


# -- argument types (argparse turns their ValueError into a usage error, exit 2) --------------
def positive_int(text: str) -> int:
    """An integer of 1 or more."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def nonnegative_int(text: str) -> int:
    """An integer of 0 or more."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def positive_float(text: str) -> float:
    """A number above 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1)."""
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


# -- the subcommands ------------------------------------------------------------------------
def _add_data_columns(p: argparse.ArgumentParser, label: bool = True,
                      required_defaults: bool = True) -> None:
    """--text-column (and --label-column, --drop-missing); without required_defaults they
    default to None: the columns the model was trained with (see common.data_columns)."""
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


def _add_model_options(p: argparse.ArgumentParser, showdown: bool = False) -> None:
    """The recipe's options (showdown: only those its RNN takes)."""
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


def _command(sub, name: str, func: Callable[[argparse.Namespace], int], model: bool = True,
             tagger: bool = False, **kwargs) -> argparse.ArgumentParser:
    """The subcommand ``name`` (kwargs: ``add_parser``'s) that ``func`` runs; model: its first
    argument is a model file (tagger: ``Tagger.save``'s too)."""
    p = sub.add_parser(name, **kwargs)
    p.set_defaults(func=func)
    if model:
        p.add_argument("model", help="model file written by 'passage train'"
                       + (" or Tagger.save" if tagger else ""))
    return p


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand; each sets ``func``, the function that runs it."""
    parser = argparse.ArgumentParser(
        prog="passage", description="Train, use and show recurrent text models.",
        epilog="Data files: .csv, .tsv or .jsonl, optionally .gz. "
               "Run 'passage COMMAND --help' for a command's options.")
    parser.add_argument("--traceback", action="store_true",
                        help="show the full traceback of an error (for bug reports)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter

    p = _command(sub, "train", cmd_train, model=False,
                 help="train a model on labelled texts and save it",
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

    p = _command(sub, "predict", cmd_predict, help="predict the texts of a data file",
                 description="Write one CSV row per text: index, the input columns "
                 "named by --keep, the prediction and, for classification, the "
                 "probability of the prediction and of every class.")
    p.add_argument("data", help="data file with a text column")
    p.add_argument("--out", default="-", help="CSV file to write (default: standard output)")
    _add_data_columns(p, label=False, required_defaults=False)
    p.add_argument("--keep", default=None, metavar="COLS",
                   help="input columns to copy into the output after the index, e.g. "
                        "--keep id,date, so predictions can be joined back; 'all' copies every "
                        "column but the text (default: none)")

    p = _command(sub, "evaluate", cmd_evaluate, help="score a model on labelled texts",
                 description="Print accuracy, macro F1 and ROC AUC (binary), or RMSE, "
                 "MAE and R^2 (regression), of a model on a labelled data file.")
    p.add_argument("data", help="labelled data file")
    _add_data_columns(p, required_defaults=False)
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")

    p = _command(sub, "showdown", cmd_showdown, model=False, formatter_class=fmt,
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

    p = _command(sub, "embeddings", cmd_embeddings, formatter_class=fmt,
                 help="t-SNE map of a model's word embeddings",
                 description="Place the model's most frequent words by t-SNE of their "
                 "embedding vectors, coloured by the average label of the texts of DATA "
                 "that contain them; the most extreme words and a sample of others are "
                 "labelled. Binary and regression models.")
    p.add_argument("data", help="labelled texts (e.g. the training file)")
    p.add_argument("--out", required=True, help="PNG file to write")
    _add_data_columns(p, required_defaults=False)
    p.add_argument("--words", type=positive_int, default=500, help="most frequent words to map")
    p.add_argument("--labels", type=nonnegative_int, default=40, help="words to label with text")
    p.add_argument("--title", help="plot title")
    p.add_argument("--seed", type=int, default=0, help="random seed of t-SNE and the sample")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")

    p = _command(sub, "trace", cmd_trace, help="the prediction after every token of a text",
                 description="Print the text with each token coloured by the model's "
                 "prediction after reading up to it (red low, blue high); optionally "
                 "write an HTML page and a PNG.")
    p.add_argument("text", nargs="?", help="the text (quote it), or use --file")
    p.add_argument("--file", help="read the text from this UTF-8 file")
    p.add_argument("--html", help="standalone HTML file to write")
    p.add_argument("--png", help="PNG file to write")
    p.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                   help="ANSI colours in the terminal (default: auto, when it is one)")

    p = _command(sub, "serve", cmd_serve, tagger=True, formatter_class=fmt,
                 help="serve a model over HTTP",
                 description="Answer POST /predict and /trace over HTTP (FastAPI on "
                 "uvicorn; pip install 'passage[serve]'), with a live reading-trace page "
                 "at /, /health, /ready, /metadata and Prometheus /metrics. Concurrent "
                 "requests are batched. SIGTERM finishes in-flight requests, then exits.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 serves other machines too")
    p.add_argument("--port", type=nonnegative_int, default=8000, help="port (0: any free one)")
    p.add_argument("--max-batch-size", type=positive_int, default=64,
                   help="most texts per forward pass")
    p.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="longest wait to fill a batch while requests are concurrent")
    p.add_argument("--max-queue", type=positive_int, default=1024,
                   help="texts that may wait; beyond, 503 with Retry-After")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="batches run side by side (default: one per core)")
    p.add_argument("--threads", action="store_true",
                   help="run the batches in threads of the server process rather than in a "
                   "worker process each (less memory, fewer answers per second under load)")
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

    p = _command(sub, "export", cmd_export, tagger=True,
                 help="write a model as ONNX plus a tokenizer.json",
                 description="Write the model as an ONNX file (inputs: token ids and "
                 "lengths; pip install 'passage[export]') and its tokenizer as a Hugging "
                 "Face tokenizer.json beside it (model.onnx -> model.tokenizer.json) that "
                 "gives the same ids. See docs/export.md.")
    p.add_argument("--out", required=True, help="ONNX file to write, e.g. model.onnx")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return parser
