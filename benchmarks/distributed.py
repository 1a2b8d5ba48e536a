"""Data-parallel training on IMDB: 1 process x 2 threads against 2 processes x 1 thread.

Model: the 2015 example, Embedding 128 -> GatedRecurrent 128 -> Dense 1 sigmoid, bce, Adam (lr
1e-3), batch 64 (global: with 2 processes each computes 32 examples of every minibatch), seed 0,
the same epochs for both runs. The one-process run is plain ``RNN.fit`` with 2 intra-op threads;
the two-process run is ``passage.distributed.fit_distributed(workers=2, threads=1)`` (gloo, DDP).
Prints, for each: seconds per epoch (the training loop), wall seconds of the whole call (for two
processes: with starting them and sending them the data), non-pad training tokens per second
(per epoch second), the speedup over one process and test accuracy.

    python benchmarks/distributed.py [--data ../shared/data/imdb] [--n-train 25000] [--epochs 1]
    python benchmarks/distributed.py --n-train 500 --n-test 500   # smoke run
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import numpy as np
import torch

from passage import metrics
from passage.datasets import load_imdb
from passage.distributed import fit_distributed
from passage.layers import Dense, Embedding, GatedRecurrent
from passage.models import PRECISIONS, RNN
from passage.preprocessing import Tokenizer
from passage.updates import Adam

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import data_dir  # noqa: E402


def build_model(n_features: int, lr: float, seed: int, precision: str = "fp32") -> RNN:
    """Module level (and bound with functools.partial) so the worker processes can import it."""
    return RNN([Embedding(128, n_features), GatedRecurrent(128), Dense(1, "sigmoid")],
               cost="bce", updater=Adam(lr=lr), verbose=1, seed=seed, precision=precision)


def subsample(texts, labels, n, seed):
    if not n or n >= len(texts):
        return texts, labels
    idx = np.random.default_rng(seed).permutation(len(texts))[:n]
    return [texts[i] for i in idx], [labels[i] for i in idx]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None,
                    help="the data set's folder (default: under $PASSAGE_DATA or ../shared/data)")
    ap.add_argument("--n-train", type=int, default=0, help="subsample the training reviews")
    ap.add_argument("--n-test", type=int, default=0, help="subsample the test reviews")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", default="fp32", choices=tuple(PRECISIONS),
                    help="bf16: mixed-precision training in both runs")
    args = ap.parse_args()
    args.data = args.data or data_dir("imdb")

    trX, trY = subsample(*load_imdb(args.data, "train"), args.n_train, args.seed)
    teX, teY = subsample(*load_imdb(args.data, "test"), args.n_test, args.seed)
    tok = Tokenizer()
    trT = tok.fit_transform(trX, as_array=True)  # a TokenArray: cheap to send to the workers
    teT = tok.transform(teX, as_array=True)
    tokens = int(trT.lengths().sum()) * args.epochs
    print(f"{len(trT)} training reviews ({tokens // args.epochs:,} tokens), {len(teT)} test "
          f"reviews, {tok.n_features} ids, {args.epochs} epoch(s), batch {args.batch_size}, "
          f"precision {args.precision}")
    make_model = functools.partial(build_model, tok.n_features, args.lr, args.seed,
                                   args.precision)
    fit = {"n_epochs": args.epochs, "batch_size": args.batch_size}

    rows = []
    for name, workers in (("1 process x 2 threads", 0), ("2 processes x 1 thread", 2)):
        print(f"-- {name}", flush=True)
        torch.set_num_threads(2)
        start = time.perf_counter()
        if workers:
            model = fit_distributed(make_model, trT, trY, workers=workers, threads=1, **fit)
        else:
            model = make_model()
            model.fit(trT, trY, **fit)
        wall = time.perf_counter() - start
        seconds = sum(h["seconds"] for h in model.history_)
        torch.set_num_threads(2)
        accuracy = metrics.accuracy(teY, model.predict(teT)[:, 0])
        rows.append((name, seconds / args.epochs, wall, tokens / seconds, accuracy))

    base = rows[0][3]
    print("\n| run | s/epoch | wall s | non-pad tokens/s | speedup | test accuracy |\n"
          "|---|---|---|---|---|---|")
    for name, epoch_s, wall, rate, accuracy in rows:
        print(f"| {name} | {epoch_s:.1f} | {wall:.1f} | {rate:,.0f} | {rate / base:.2f}x | "
              f"{accuracy:.2%} |")


if __name__ == "__main__":
    main()
