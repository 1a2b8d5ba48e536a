"""``passage showdown``, ``embeddings``, ``trace``, ``serve`` and ``export``: the commands that
show, serve or convert a model rather than train it.

Each imports what it needs (scikit-learn and matplotlib for the figures, FastAPI for ``serve``,
ONNX for ``export``) when it runs, so ``passage --help`` needs none of them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import cast

from passage.cli.common import (
    data_columns,
    load_model,
    model_coding,
    read_labelled,
    same_file,
    say,
    write_text,
)
from passage.cli.errors import CLIError


# -- showdown --------------------------------------------------------------------------------
def cmd_showdown(args: argparse.Namespace) -> int:
    """The linear baseline against the RNN over training-set sizes: table, curve, JSON."""
    import numpy as np

    from passage.showcase.showdown import (
        SHOWDOWN_RNN,
        format_table,
        plot_learning_curve,
        run_showdown,
    )

    texts, labels = read_labelled(args.data, args.text_column, args.label_column, args)
    if args.test:
        test_texts, test_labels = read_labelled(args.test, args.text_column, args.label_column,
                                                args)
    else:
        n_test = int(round(args.test_fraction * len(texts)))
        if not 0 < n_test < len(texts):
            raise CLIError(f"--test-fraction {args.test_fraction} of {len(texts)} texts leaves "
                           "no test or no training texts; give --test FILE instead")
        order = np.random.default_rng(args.seed + 1).permutation(len(texts))
        assert labels is not None  # --label-column always names a column here
        test_idx, train_idx = order[:n_test], order[n_test:]
        test_texts, test_labels = [texts[i] for i in test_idx], [labels[i] for i in test_idx]
        texts, labels = [texts[i] for i in train_idx], [labels[i] for i in train_idx]
    rnn = SHOWDOWN_RNN.updated(size=args.size, embedding_size=args.embedding_size,
                               n_epochs=args.epochs, min_df=args.min_df,
                               verbose=1 if args.verbose else 0)
    log = None if args.quiet else print
    rows = run_showdown(texts, cast(list, labels), test_texts, cast(list, test_labels),
                        sizes=args.sizes,  # (label columns are read)
                        task=args.task, rnn=rnn, n_jobs=args.jobs, seed=args.seed, log=log)
    print(format_table(rows))
    if args.png:
        plot_learning_curve(rows, args.png, title=args.title, n_test=len(test_texts))
        say(args, f"wrote {args.png}")
    if args.json:
        write_text(args.json, json.dumps(rows, indent=1) + "\n")
    return 0


# -- embeddings ------------------------------------------------------------------------------
def cmd_embeddings(args: argparse.Namespace) -> int:
    """Draw the t-SNE map of a model's word embeddings, coloured by label."""
    import numpy as np

    from passage.showcase.embedmap import embedding_map

    model = load_model(args.model)
    coding = model_coding(model)
    if coding.task == "multiclass":
        assert coding.classes is not None  # a classification coding has its class names
        raise CLIError("the embedding map colours words by the average label, which needs a "
                       "binary or regression model; this one has "
                       f"{len(coding.classes)} classes")
    text_column, label_column = data_columns(args, model)
    texts, labels = read_labelled(args.data, text_column, label_column, args)
    values = coding.encode(cast(list, labels)).astype(np.float64)  # (a label column is read)
    name = (f"share labelled {cast(list, coding.classes)[-1]!r}" if coding.task == "binary" else
            f"average {label_column}")
    points = embedding_map(model, texts, values, args.out, n_words=args.words,
                           n_labels=args.labels, value_name=name, seed=args.seed,
                           title=args.title)
    say(args, f"mapped {len(points)} words; wrote {args.out}")
    return 0


# -- trace -----------------------------------------------------------------------------------
def cmd_trace(args: argparse.Namespace) -> int:
    """Print (and draw) the model's prediction after every token of one text."""
    from passage.showcase.trace import plot_trace, to_ansi, trace, write_html

    model = load_model(args.model)
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
def cmd_serve(args: argparse.Namespace) -> int:
    """Serve a model over HTTP until SIGTERM or Ctrl-C."""
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
                     cors_origins=args.cors_origin, workers=args.workers,
                     processes=False if args.threads else None)
    if not run(app, args.host, args.port, log_level=args.log_level):
        raise CLIError("the server did not start (the log above says why)")
    return 0


# -- export ----------------------------------------------------------------------------------
def cmd_export(args: argparse.Namespace) -> int:
    """Write a model as ONNX, with its tokenizer as a tokenizer.json beside it."""
    from passage.export import export_model, tokenizer_path
    from passage.io import load

    if os.path.isdir(args.model):
        raise CLIError(f"{args.model!r} is a directory, not a model file")
    tok_out = tokenizer_path(args.out)
    if same_file(tok_out, args.model):
        raise CLIError(f"refusing to write {tok_out!r}: it is the model file; choose another "
                       "--out")
    onnx_path, tok_path = export_model(load(args.model), args.out)
    say(args, f"wrote {onnx_path}" + (f" and {tok_path}" if tok_path else
                                       " (the model has no Passage Tokenizer to export)"))
    return 0


