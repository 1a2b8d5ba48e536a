"""What the commands share: reading data files, loading models, the safety check of file
arguments, and printing.

No command writes over one of its own inputs: ``check_files`` refuses it, before any work,
for every subcommand, finding the file arguments by name (``INPUT_ARGS``, ``OUTPUT_ARGS``).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, cast

from passage.cli.errors import CLIError
from passage.cli.tables import read_data

if TYPE_CHECKING:
    from passage.labels import LabelCoding
    from passage.models import RNN

DEFAULTS = {"text_column": "text", "label_column": "label"}
# argument names that are files a command reads / writes (any subcommand, see check_files)
INPUT_ARGS = {"model": "model file", "data": "data file", "test": "test file (--test)",
              "file": "text file (--file)"}
OUTPUT_ARGS = ("out", "html", "png", "json")
# validation scores that --monitor can keep the best epoch by, per task (RNN.evaluate's names)
MONITORS = {"binary": ("cost", "accuracy", "roc_auc"),
            "multiclass": ("cost", "accuracy", "f1_macro"),
            "regression": ("cost", "mse", "mae", "r2")}


def read_labelled(path: str, text_column: str, label_column: str | None = None,
                  args: argparse.Namespace | None = None) -> tuple[list[str], list | None]:
    """(texts, labels) of a data file; rows without a label are refused, or skipped (and
    counted on stderr) with --drop-missing."""
    drop = bool(getattr(args, "drop_missing", False))
    table = read_data(path, text_column, label_column, drop_missing=drop)
    if table.dropped:
        lines = ", ".join(map(str, table.dropped[:5])) + (", ..." if len(table.dropped) > 5
                                                         else "")
        print(f"passage: dropped {len(table.dropped):,} row(s) of {path} without a label in "
              f"column {label_column!r} (line(s) {lines})", file=sys.stderr)
    return table.texts, table.labels


def load_model(path: str) -> RNN:
    """A model for the command line: one with a tokenizer and consistent metadata."""
    from passage.io import load

    if os.path.isdir(path):
        raise CLIError(f"{path!r} is a directory, not a model file")
    model = cast("RNN", load(path))  # (an Ensemble has no tokenizer: refused below)
    if getattr(model, "tokenizer", None) is None:
        raise CLIError(f"{path} has no tokenizer: the command line reads raw text, so it needs "
                       "a model trained with one ('passage train', or RNN(..., tokenizer=...))")
    model_coding(model)  # refuse inconsistent metadata now, not after the work
    extra = getattr(model, "extra_", None) or {}
    for key in ("text_column", "label_column"):
        if extra.get(key) is not None and not isinstance(extra[key], str):
            raise CLIError(f"{path}: the saved {key} is {extra[key]!r}, not a column name")
    return model


def model_coding(model: RNN) -> LabelCoding:
    """The model's label coding, checked against its output layer."""
    from passage.labels import LabelCoding
    from passage.layers import output_size

    coding = LabelCoding.from_model(model)
    coding.check_outputs(output_size(model.layers[-1]))
    return coding


def data_columns(args: argparse.Namespace, model: object = None) -> tuple[str, str]:
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


def check_files(args: argparse.Namespace) -> None:
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


def verbosity(args: argparse.Namespace) -> int:
    """The recipe's verbose level: 0 with --quiet, 2 (progress bars) on a terminal, else 1."""
    if args.quiet:
        return 0
    return 2 if sys.stdout.isatty() else 1


def say(args: argparse.Namespace, message: str) -> None:
    """Print ``message`` unless --quiet."""
    if not getattr(args, "quiet", False):
        print(message)


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically as UTF-8 ('-': standard output)."""
    if path == "-":
        sys.stdout.write(text)
        return
    from passage.files import atomic_write

    def write(tmp):
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)

    atomic_write(path, write)

