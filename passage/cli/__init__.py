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

The modules: ``parser`` (the subcommands and their options), ``train`` (train, predict,
evaluate), ``commands`` (showdown, embeddings, trace, serve, export), ``common`` (what they
share: reading data, loading models, the check of file arguments), ``tables`` (the data file
reader), ``errors`` (one-line errors and warnings). The library never imports this package.
"""

from __future__ import annotations

import sys
import traceback
import warnings

from passage.cli.common import check_files
from passage.cli.errors import CLIError, one_line, show_warning
from passage.cli.parser import build_parser

__all__ = ["CLIError", "build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (argparse exits 2 on bad arguments)."""
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = show_warning
        try:
            check_files(args)
            return args.func(args)
        except KeyboardInterrupt:
            print("passage: interrupted", file=sys.stderr)
            return 130
        except Exception as e:  # noqa: BLE001 - every error is one line unless --traceback
            if args.traceback:
                traceback.print_exc()
            sys.stderr.write(f"passage {args.command}: error: {one_line(e)}\n")
            sys.stderr.flush()
            return 1
