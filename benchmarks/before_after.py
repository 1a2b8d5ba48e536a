"""IMDB speed and accuracy of the 2015 default model, for comparing two checkouts of Passage.

Run it once per checkout, alternating, with the other checkout first on the path and without the
site hook that points at the editable install (the compiled extensions built in place there:
``python setup.py build_ext --inplace``):

    SITE=$(python -c "import site; print(site.getsitepackages()[0])")
    PYTHONPATH=/path/to/checkout:$SITE python -S benchmarks/before_after.py --n-train 5000

It prints one JSON line: which code ran, tokens/s and cost per epoch, test accuracy, ROC AUC and
prediction reviews/s. Equal costs mean the two checkouts computed the same batches.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

import passage
from passage import metrics
from passage.datasets import load_imdb
from passage.layers import Dense, Embedding, GatedRecurrent
from passage.models import RNN
from passage.preprocessing import Tokenizer
from passage.updates import Adam

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import data_dir  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None,
                    help="the data set's folder (default: under $PASSAGE_DATA or ../shared/data)")
    ap.add_argument("--n-train", type=int, default=5000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()
    args.data = args.data or data_dir("imdb")
    trX, trY = load_imdb(args.data, "train")
    teX, teY = load_imdb(args.data, "test")
    rng = np.random.default_rng(0)  # load_imdb is sorted by label: sample at random
    tr = rng.permutation(len(trX))[:args.n_train]
    te = rng.permutation(len(teX))[:args.n_test]
    tok = Tokenizer()
    trT = tok.fit_transform([trX[i] for i in tr], as_array=True)
    teT = tok.transform([teX[i] for i in te], as_array=True)
    model = RNN([Embedding(128, tok.n_features), GatedRecurrent(128), Dense(1, "sigmoid")],
                cost="bce", updater=Adam(lr=1e-3, clipnorm=1.0), verbose=0, seed=0)
    model.fit(trT, [trY[i] for i in tr], n_epochs=args.epochs)
    start = time.perf_counter()
    p = model.predict(teT)[:, 0]
    seconds = time.perf_counter() - start
    y = [teY[i] for i in te]
    print(json.dumps({
        "code": passage.__file__,
        "epochs": [{"tokens_per_s": h["tokens"] / h["seconds"], "cost": h["cost"]}
                   for h in model.history_],
        "test_accuracy": metrics.accuracy(y, p), "roc_auc": metrics.roc_auc(y, p),
        "predict_reviews_per_s": len(te) / seconds}))


if __name__ == "__main__":
    main()
