"""The showdown on IMDB: the TF-IDF linear baseline vs an RNN as the training set grows.

Two targets, each trained on nested random subsets of the 25k training reviews and scored on the
official test reviews: sentiment (label 0/1, accuracy) and the reviewer's 1-10 rating (regression,
RMSE). Prints a Markdown table per target and writes ``<out-dir>/showdown_<target>.png``.
The RNN is Embedding 128 -> GRU 128 -> Dense with early stopping on 10% of each subset; the
baseline is grid-searched (3-fold) TF-IDF uni+bigrams + LogisticRegression / Ridge.

    python benchmarks/showdown.py --data ../shared/data/imdb                    # both targets
    python benchmarks/showdown.py --target sentiment --sizes 1000 5000 25000 --jobs 2
    python benchmarks/showdown.py --sizes 200 --test-limit 300 --epochs 1 --out-dir /tmp  # smoke

The PNGs go to ``results/`` (ignored by git) unless ``--out-dir`` says otherwise: a run never
overwrites the documentation's figures by accident; ``--out-dir docs/img`` replaces them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from passage.datasets import load_imdb
from passage.showcase.showdown import (
    SHOWDOWN_RNN,
    format_table,
    plot_learning_curve,
    run_showdown,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

TARGETS = {  # name: (label key in the data, task, plot title)
    "sentiment": ("label", "binary", "IMDB sentiment: linear baseline vs RNN"),
    "rating": ("rating", "regression", "IMDB 1-10 rating (regression): linear baseline vs RNN"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's options."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None,
                    help="directory with train.jsonl.gz and test.jsonl.gz")
    ap.add_argument("--target", choices=[*TARGETS, "both"], default="both")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 25000])
    ap.add_argument("--epochs", type=int, default=SHOWDOWN_RNN.n_epochs,
                    help="most RNN epochs (early stopping, patience 2)")
    ap.add_argument("--size", type=int, default=SHOWDOWN_RNN.size, help="GRU units")
    ap.add_argument("--embedding-size", type=int, default=SHOWDOWN_RNN.embedding_size)
    ap.add_argument("--jobs", type=int, default=1, help="parallel fits in the grid search")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-limit", type=int, default=None,
                    help="score on a random sample of this many test reviews (smoke runs)")
    ap.add_argument("--out-dir", default="results",
                    help="where the PNGs go (default: results/; docs/img to update the docs)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    rnn = SHOWDOWN_RNN.updated(n_epochs=args.epochs, size=args.size,
                               embedding_size=args.embedding_size)
    for target in TARGETS if args.target == "both" else [args.target]:
        key, task, title = TARGETS[target]
        t0 = time.time()
        train_texts, train_labels = load_imdb(args.data, "train", label=key)
        test_texts, test_labels = load_imdb(args.data, "test", label=key)
        if args.test_limit:
            keep = np.random.default_rng(args.seed).permutation(len(test_texts))[:args.test_limit]
            test_texts = [test_texts[i] for i in keep]
            test_labels = [test_labels[i] for i in keep]
        print(f"\n## {target}: {len(train_texts):,} training / {len(test_texts):,} test reviews "
              f"({task})")
        rows = run_showdown(train_texts, train_labels, test_texts, test_labels,
                            sizes=args.sizes, task=task, rnn=rnn, n_jobs=args.jobs,
                            seed=args.seed)
        print()
        print(format_table(rows))
        path = os.path.join(args.out_dir, f"showdown_{target}.png")
        plot_learning_curve(rows, path, n_test=len(test_texts),
                            title=f"{title} ({len(test_texts):,} test reviews)")
        print(f"\nwrote {path} ({time.time() - t0:.0f}s in all)")


if __name__ == "__main__":
    main()
