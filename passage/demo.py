"""The main job: train a sentiment model on the bundled IMDB sample, report, predict.

Run: ``python -m passage.demo`` (about a minute on 2 CPU cores). The model is the 2015 README
example (Embedding 128 -> GatedRecurrent 128 -> Dense 1 sigmoid, bce, Adam).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from passage import metrics
from passage.datasets import load_imdb_sample
from passage.layers import Dense, Embedding, GatedRecurrent
from passage.models import RNN
from passage.preprocessing import Tokenizer
from passage.updates import Adam
from passage.utils import load, save

EXAMPLES = [
    "This movie was wonderful: a moving story, great acting, and a beautiful score.",
    "A dull, lifeless film. The plot made no sense and I wanted my two hours back.",
    "Not bad at all, I expected much worse.",
    "The first half is brilliant, but the ending ruins everything.",
]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    t0 = time.time()
    train_text, train_labels, test_text, test_labels = load_imdb_sample()
    print(f"IMDB sample: {len(train_text)} training and {len(test_text)} held-out reviews")
    tokenizer = Tokenizer()
    train_tokens = tokenizer.fit_transform(train_text)
    print(f"vocabulary: {tokenizer.n_features} ids, {tokenizer.unk_rate_:.1%} of tokens UNK")

    layers = [Embedding(size=128, n_features=tokenizer.n_features), GatedRecurrent(size=128),
              Dense(size=1, activation="sigmoid")]
    model = RNN(layers=layers, cost="BinaryCrossEntropy", updater=Adam(lr=1e-3), verbose=1,
                seed=args.seed, tokenizer=tokenizer)
    # 10% of the training reviews pick the best epoch; the test reviews are only for the report
    model.fit(train_tokens, train_labels, n_epochs=args.epochs, validation_split=0.1,
              patience=1)
    p = model.predict(tokenizer.transform(test_text))[:, 0]
    acc, auc = metrics.accuracy(test_labels, p), metrics.roc_auc(test_labels, p)
    print(f"\nheld-out test accuracy {acc:.1%}, ROC AUC {auc:.3f} on {len(test_text)} reviews "
          f"(kept epoch {model.best_epoch_}; {time.time() - t0:.0f}s in all)")

    with tempfile.TemporaryDirectory() as tmp:  # round trip: one file predicts from raw text
        path = os.path.join(tmp, "sentiment.passage")
        save(model, path)
        loaded = load(path)
        scores = loaded.predict(EXAMPLES)[:, 0]
        assert np.allclose(scores, model.predict(EXAMPLES)[:, 0])
    print("\npredictions (probability positive) from the saved-and-loaded model:")
    for text, s in zip(EXAMPLES, scores, strict=True):
        print(f"  {s:.2f}  {text}")
    return {"accuracy": acc, "roc_auc": auc, "history": model.history_}


if __name__ == "__main__":
    main()
