"""IMDB sentiment with the 2015 example model, on the full aclImdb (25k train / 25k test).

Model: Embedding 128 -> GatedRecurrent 128 (steeper gates, orthogonal init, learned initial
state) -> Dense 1 sigmoid, bce, Adam (lr 1e-3, gradient norm clipped at 1). Prints after each
epoch: test accuracy, ROC AUC, seconds per epoch and non-pad tokens per second, with the 2015
Theano Passage figures on this kind of machine (about 27k tokens/s, 77.6% after one epoch).

    python benchmarks/imdb.py [--data ../shared/data/imdb] [--epochs 3] [--lr 1e-3] [--clipnorm 1.0]
    python benchmarks/imdb.py --epochs 6 --validation-split 0.1 --patience 2   # early stopping
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from passage import metrics
from passage.datasets import load_imdb
from passage.layers import Dense, Embedding, GatedRecurrent
from passage.models import RNN
from passage.preprocessing import Tokenizer
from passage.updates import Adam

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import data_dir  # noqa: E402

THEANO_2015_TOKENS_PER_S = 27_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None,
                    help="the data set's folder (default: under $PASSAGE_DATA or ../shared/data)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--clipnorm", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--validation-split", type=float, default=0.0,
                    help="hold out this fraction of train; keep the best epoch by its cost")
    ap.add_argument("--patience", type=int, default=None)
    args = ap.parse_args()
    args.data = args.data or data_dir("imdb")

    trX, trY = load_imdb(args.data, "train")
    teX, teY = load_imdb(args.data, "test")
    t = time.time()
    tok = Tokenizer()
    trT, teT = tok.fit_transform(trX), tok.transform(teX)
    print(f"tokenized {len(trX) + len(teX)} reviews in {time.time() - t:.1f}s; "
          f"{tok.n_features} ids")
    model = RNN([Embedding(128, tok.n_features), GatedRecurrent(128), Dense(1, "sigmoid")],
                cost="bce", updater=Adam(lr=args.lr, clipnorm=args.clipnorm), verbose=1,
                seed=args.seed)
    if args.validation_split:
        model.fit(trT, trY, n_epochs=args.epochs, batch_size=args.batch_size,
                  validation_split=args.validation_split, patience=args.patience)
        for h in model.history_:
            print(f"epoch {h['epoch']}: val cost {h['val_cost']:.4f} val acc "
                  f"{h['val_accuracy']:.4f} val AUC {h['val_roc_auc']:.4f} {h['seconds']:.0f}s")
        p = model.predict(teT)[:, 0]
        print(f"kept epoch {model.best_epoch_}: test accuracy {metrics.accuracy(teY, p):.4f}, "
              f"ROC AUC {metrics.roc_auc(teY, p):.4f}")
        return
    print(f"{'epoch':>5} {'test acc':>9} {'ROC AUC':>8} {'s/epoch':>8} {'tok/s':>9} "
          f"{'x 2015':>7} {'predict rev/s':>13}")
    for epoch in range(1, args.epochs + 1):
        model.fit(trT, trY, n_epochs=1, batch_size=args.batch_size)
        stats = model.last_epoch_
        t = time.time()
        p = model.predict(teT)[:, 0]
        pred_rate = len(teT) / (time.time() - t)
        rate = stats["tokens"] / stats["seconds"]
        print(f"{epoch:>5} {metrics.accuracy(teY, p):>9.4f} {metrics.roc_auc(teY, p):>8.4f} "
              f"{stats['seconds']:>8.1f} {rate:>9,.0f} {rate / THEANO_2015_TOKENS_PER_S:>7.1f} "
              f"{pred_rate:>13,.0f}", flush=True)
    print(f"mean predicted positive rate {np.mean(p > 0.5):.3f}")


if __name__ == "__main__":
    main()
