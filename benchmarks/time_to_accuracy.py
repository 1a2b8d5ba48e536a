"""Time to accuracy on IMDB: the RNN recipe from the README against the linear baseline.

    python benchmarks/time_to_accuracy.py --data ../shared/data/imdb

The talk's sore point was an RNN 250x slower than a linear model. Both are timed here in the
same run, from raw text to a trained model (tokenizing/vectorizing included): TF-IDF word
uni+bigrams + logistic regression (fixed C, no search), and the RNN recipe below, fixed in
advance (no early stopping, no choices made on the test set, which only scores the end result).

Choose a recipe with ``--validate``: both models train on the reviews with ids below 10,000 and
are scored on the other 5,000 instead of the test set. Neighbouring ids are reviews of the same
movie (they share 8x more capitalised words than random pairs), so this hold-out is nearly
movie-disjoint, like train and test; a random hold-out would share movies and flatter the model
that memorises names.

    python benchmarks/time_to_accuracy.py --validate --max-len 256

``--ensemble forward,backward`` trains one GRU per direction, each in its own process on one
core, at the same time (``passage.ensemble.fit_ensemble``), and averages their predictions;
``--no-line-breaks`` drops the reviews' ``<br />`` markup (for both models).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import numpy as np

from passage.datasets import load_imdb, read_jsonl
from passage.ensemble import fit_ensemble
from passage.layers import Dense, Embedding, GatedRecurrent
from passage.metrics import accuracy
from passage.models import PRECISIONS, RNN
from passage.preprocessing import Tokenizer, Truncate
from passage.updates import Adam

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import data_dir  # noqa: E402


def review_ids(directory: str) -> np.ndarray:
    """The number in each review's id ('train_pos_123' -> 123), in file order."""
    _, ids = read_jsonl(os.path.join(directory, "train.jsonl.gz"), label_key="id")
    return np.array([int(i.rsplit("_", 1)[1]) for i in ids])


def validation_split(texts, labels, ids, held_out=True, first_id=10000):
    """Train reviews with ids >= first_id (held_out) or below it, shuffled with a fixed seed."""
    if len(ids) != len(texts):
        raise ValueError(f"{len(ids)} ids for {len(texts)} reviews")
    idx = np.flatnonzero((ids >= first_id) == held_out)
    idx = idx[np.random.default_rng(123).permutation(len(idx))]
    return [texts[i] for i in idx], [labels[i] for i in idx]


def linear_baseline(trX, trY, teX, teY, C):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    t = time.time()
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    clf = LogisticRegression(C=C, max_iter=1000).fit(vec.fit_transform(trX), trY)
    fit_secs = time.time() - t
    t = time.time()
    pred = clf.predict(vec.transform(teX))
    return np.mean(pred == np.asarray(teY)), fit_secs, len(teX) / (time.time() - t)


def make_model(n_features, args, direction="forward"):
    """The recipe's RNN (module level, so fit_ensemble's worker processes can build it)."""
    return RNN([Embedding(args.size, n_features),
                GatedRecurrent(args.size, pool=args.pool or None, direction=direction),
                Dense(1, "sigmoid")], "bce", updater=Adam(lr=args.lr), verbose=1,
               seed=args.seed, precision=args.precision)


def rnn_recipe(trX, trY, teX, teY, args):
    t = time.time()
    tok = Tokenizer(max_features=args.max_features, min_df=5)
    X = tok.fit_transform(trX, as_array=True)  # flat ids: quick to send to worker processes
    fit = {"n_epochs": args.epochs, "batch_size": args.batch_size,
           "lr_schedule": "linear" if args.linear_decay else None,
           "len_filter": Truncate(args.max_len, args.keep) if args.max_len else None}
    if args.ensemble:
        model = fit_ensemble([functools.partial(make_model, tok.n_features, args, d)
                              for d in args.ensemble], X, trY, **fit)
    else:
        model = make_model(tok.n_features, args)
        model.fit(X, trY, **fit)
    fit_secs = time.time() - t
    t = time.time()
    p = model.predict(tok.transform(teX, as_array=True))
    return accuracy(np.asarray(teY), p), fit_secs, len(teX) / (time.time() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None,
                    help="the data set's folder (default: under $PASSAGE_DATA or ../shared/data)")
    ap.add_argument("--C", type=float, default=10.0, help="baseline regularisation (fixed)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--pool", default="max", help="'max', 'mean' or '' (last state)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--no-linear-decay", dest="linear_decay", action="store_false")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-features", type=int, default=20000)
    ap.add_argument("--max-len", type=int, default=0,
                    help="train on at most this many tokens per review (0: all); predict on all")
    ap.add_argument("--keep", default="ends", choices=Truncate.KEEP,
                    help="which tokens of a longer review --max-len keeps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", default="fp32", choices=tuple(PRECISIONS),
                    help="bf16: mixed-precision training (RNN(precision=...))")
    ap.add_argument("--ensemble", default=[], type=lambda s: [d for d in s.split(",") if d],
                    help="e.g. 'forward,backward': one GRU per direction, one process each, "
                         "predictions averaged")
    ap.add_argument("--no-line-breaks", dest="line_breaks", action="store_false",
                    help="replace the reviews' <br /> markup by a space (for both models)")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--validate", action="store_true",
                    help="score on a movie-disjoint hold-out of train, not on test")
    args = ap.parse_args()
    args.data = args.data or data_dir("imdb")
    if len(args.ensemble) == 1:
        ap.error(f"--ensemble needs at least 2 directions, e.g. forward,backward; got "
                 f"{args.ensemble[0]!r}")
    if args.max_len < 0:
        ap.error(f"--max-len must be 0 (all tokens) or positive, got {args.max_len}")
    trX, trY = load_imdb(args.data, "train", line_breaks=args.line_breaks)
    if args.validate:
        ids = review_ids(args.data)
        teX, teY = validation_split(trX, trY, ids)
        trX, trY = validation_split(trX, trY, ids, held_out=False)
    else:
        teX, teY = load_imdb(args.data, "test", line_breaks=args.line_breaks)
    rows = []
    if not args.skip_baseline:
        rows.append(("TF-IDF 1-2 grams + logistic regression", *linear_baseline(
            trX, trY, teX, teY, args.C)))
        print(f"baseline: {rows[-1][1]:.2%} in {rows[-1][2]:.1f}s", flush=True)
    members = args.ensemble
    name = f"Passage {len(members)} x " if members else "Passage "
    name += f"GRU {args.size}{' ' + args.pool + '-pool' if args.pool else ''}, {args.epochs} epochs"
    if args.max_len:
        name += f", trained on {args.max_len} tokens ({args.keep})"
    if args.precision != "fp32":
        name += ", " + args.precision
    if members:
        name += f" ({' + '.join(members)}, one process each, averaged)"
    if not args.line_breaks:
        name += ", no <br />"
    rows.append((name, *rnn_recipe(trX, trY, teX, teY, args)))
    scored = "validation" if args.validate else "test"
    print(f"\n| model | {scored} accuracy | fit seconds (from raw text) | x baseline | "
          "predict reviews/s |")
    print("|---|---|---|---|---|")
    base = rows[0][2] if not args.skip_baseline else None
    for model, acc, secs, rate in rows:
        ratio = f"{secs / base:.1f}x" if base else "-"
        print(f"| {model} | {acc:.2%} | {secs:.1f} | {ratio} | {rate:,.0f} |")
    if not args.skip_baseline:
        reached = rows[-1][1] >= rows[0][1]
        print(f"\nRNN {'reached' if reached else 'did NOT reach'} the baseline's accuracy "
              f"({rows[-1][1]:.2%} vs {rows[0][1]:.2%}) in {rows[-1][2] / base:.1f}x its time")


if __name__ == "__main__":
    main()
