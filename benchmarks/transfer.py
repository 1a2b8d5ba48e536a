"""IMDB transfer: a classifier from a pretrained language model vs the same one from scratch.

    python benchmarks/transfer.py --data ../shared/data/imdb

A word-level LM (Embedding 128 -> GRU 128 -> adaptive softmax, which makes it ~5x cheaper to
train than a full softmax over the 10k words; ``--output tied`` for a full softmax sharing the
embedding matrix) is pretrained on the 50k unlabelled reviews plus the 25k training texts (no
labels); then, with only 1,000 and 5,000
labelled training reviews, a classifier built from it (``passage.transfer``) and one with the
same layers trained from scratch are fit (10% of the labelled set for early stopping) and
scored on the full 25k test set. Both classifiers pool the GRU's states (``--pool``, mean by
default). The pretrained one first trains its head on the frozen LM layers, then fine-tunes
all layers at a lower learning rate (``--finetune-lr``; 0 skips that stage).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from passage.datasets import load_imdb
from passage.files import open_text
from passage.io import load, save
from passage.layers import AdaptiveSoftmax, Dense, Embedding, GatedRecurrent
from passage.lm import LanguageModel
from passage.metrics import accuracy, roc_auc
from passage.models import RNN
from passage.preprocessing import Tokenizer
from passage.transfer import from_language_model, unfreeze
from passage.updates import Adam

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import data_dir  # noqa: E402


def classifier_fit(model, X, Y, epochs, pretrained=False, finetune_lr=0.0):
    """Fit with 10% held out for early stopping. A pretrained model arrives frozen: its head
    trains first (a linear model on the LM's features: a higher lr, more epochs, each cheap),
    then, with ``finetune_lr``, all layers train on at that learning rate."""
    t = time.time()
    n_val = len(X) // 10
    val, X, Y = (X[:n_val], Y[:n_val]), X[n_val:], Y[n_val:]
    if not pretrained:
        model.fit(X, Y, n_epochs=epochs, validation_data=val, patience=2)
        return time.time() - t
    model.updater.lr = 1e-2
    model.fit(X, Y, n_epochs=4 * epochs, validation_data=val, patience=3)
    if finetune_lr > 0:
        unfreeze(model)
        model.updater.lr = finetune_lr
        model.fit(X, Y, n_epochs=epochs, validation_data=val, patience=1)
    return time.time() - t


def make_classifier(name, lm, tok, pool, seed):
    """The classifier from the LM (frozen at first), or the same layers from scratch."""
    if name == "from scratch":
        return RNN([Embedding(128, tok.n_features),
                    GatedRecurrent(128, pool=pool, gate_activation="sigmoid"),
                    Dense(1, "sigmoid")], "bce", updater=Adam(lr=1e-3), verbose=0, seed=seed,
                   tokenizer=tok)
    return from_language_model(lm, [Dense(1, "sigmoid")], "bce", updater=Adam(lr=1e-3),
                               verbose=0, seed=seed, pool=pool, freeze=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None,
                    help="the data set's folder (default: under $PASSAGE_DATA or ../shared/data)")
    ap.add_argument("--pretrain-docs", type=int, default=75000,
                    help="unlabelled + train reviews to pretrain on (at most 75,000)")
    ap.add_argument("--pretrain-epochs", type=int, default=2)
    ap.add_argument("--pretrain-lr-decay", type=float, default=0.5,
                    help="the LM's learning rate (Adam 2e-3) is multiplied by this after each "
                         "pretraining epoch")
    ap.add_argument("--output", choices=("adaptive", "tied"), default="adaptive",
                    help="LM output: adaptive softmax, or a full softmax tied to the embedding")
    ap.add_argument("--cutoffs", default="1000,4000", help="adaptive softmax cluster cutoffs")
    ap.add_argument("--sizes", default="1000,5000")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--max-features", type=int, default=10000)
    ap.add_argument("--pool", default="mean",
                    help="classifier pooling: 'max', 'mean' or '' (last state)")
    ap.add_argument("--finetune-lr", type=float, default=3e-4,
                    help="after training the head on the frozen LM, fine-tune all at this lr")
    ap.add_argument("--lm", default=None, help="load the pretrained LM from this file")
    ap.add_argument("--save-lm", default=None, help="save the pretrained LM to this file")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model-seeds", default=None,
                    help="e.g. 0,1,2: fit each classifier once per seed (same labelled reviews) "
                         "and report the mean and range; default: --seed once")
    args = ap.parse_args()
    args.data = args.data or data_dir("imdb")
    seeds = [int(s) for s in args.model_seeds.split(",")] if args.model_seeds else [args.seed]
    rng = np.random.default_rng(args.seed)
    trX, trY = load_imdb(args.data, "train")
    teX, teY = load_imdb(args.data, "test")
    with open_text(os.path.join(args.data, "unsup.jsonl.gz")) as f:
        unsup = [json.loads(line)["text"] for line in f]
    pool = unsup + trX
    pool = [pool[i] for i in rng.permutation(len(pool))[:args.pretrain_docs]]
    pre_secs = 0.0
    if args.lm:
        lm = load(args.lm)
        tok = lm.tokenizer
    else:
        tok = Tokenizer(max_features=args.max_features, min_df=5).fit(pool)
        stream = tok.transform(pool)
        print(f"pretraining text: {len(pool):,} reviews, {sum(map(len, stream)):,} tokens, "
              f"vocabulary {tok.n_features:,}")
        tied = args.output == "tied"
        out = Dense(tok.n_features, "softmax", p_drop=0.1) if tied else AdaptiveSoftmax(
            tok.n_features, [int(c) for c in args.cutoffs.split(",")], p_drop=0.1)
        lm = LanguageModel([Embedding(128, tok.n_features),
                            GatedRecurrent(128, p_drop=0.1, gate_activation="sigmoid"), out],
                           updater=Adam(lr=2e-3), verbose=1, seed=args.seed, seq_len=50,
                           tie_weights=tied, tokenizer=tok)
        t = time.time()
        lm.fit(stream, n_epochs=args.pretrain_epochs, batch_size=64,
               lr_decay=args.pretrain_lr_decay, decay_after=1)
        pre_secs = time.time() - t
        print(f"pretrained in {pre_secs / 60:.1f} min")
        if args.save_lm:
            save(lm, args.save_lm)
    pool_how = args.pool or None
    teT = tok.transform(teX)
    sample = teT[::12]  # every 12th test review: both labels (the file is sorted by label)
    print(f"LM perplexity on {len(sample):,} test reviews: "
          f"{lm.evaluate(sample)['perplexity']:.1f}")
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        idx = rng.permutation(len(trX))[:n]
        X, Y = tok.transform([trX[i] for i in idx]), [trY[i] for i in idx]
        for name in ("pretrained LM", "from scratch"):
            accs, aucs, secs = [], [], []
            for seed in seeds:
                model = make_classifier(name, lm, tok, pool_how, seed)
                secs.append(classifier_fit(model, X, Y, args.epochs, name == "pretrained LM",
                                           args.finetune_lr))
                p = model.predict(teT)
                accs.append(accuracy(np.array(teY), p))
                aucs.append(roc_auc(np.array(teY), p))
                print(f"{n:>6} labels  {name:<14} seed {seed}  test accuracy {accs[-1]:.2%}  "
                      f"ROC AUC {aucs[-1]:.4f}  ({secs[-1]:.0f}s, kept epoch "
                      f"{model.best_epoch_})", flush=True)
            rows.append((n, name, accs, aucs, float(np.mean(secs))))
    print(f"\n| labelled reviews | classifier | test accuracy (mean of {len(seeds)}; range) | "
          "ROC AUC (mean) | fit seconds |")
    print("|---|---|---|---|---|")
    for n, name, accs, aucs, secs in rows:
        spread = f" ({min(accs):.2%}-{max(accs):.2%})" if len(accs) > 1 else ""
        print(f"| {n:,} | {name} | {np.mean(accs):.2%}{spread} | {np.mean(aucs):.4f} | "
              f"{secs:.0f} |")
    print(f"(pretraining: {pre_secs / 60:.1f} min, not included above)")


if __name__ == "__main__":
    main()
