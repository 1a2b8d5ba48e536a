"""The main job: train a sentiment model on the bundled IMDB sample, report, predict.

Run: ``python -m passage.demo`` (about 3 minutes on 2 CPU cores). The model is what
``passage train`` gives by default (``passage.recipe``): a bidirectional GRU, max-pooled,
blended with a TF-IDF linear term, early-stopped on 10% of the training reviews.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import TYPE_CHECKING, cast

import numpy as np

from passage import metrics
from passage.datasets import load_imdb_sample
from passage.options import TextModelOptions
from passage.recipe import fit_text_model
from passage.utils import load, save

if TYPE_CHECKING:
    from passage.recipe import RecipeRNN

EXAMPLES = [
    "This movie was wonderful: a moving story, great acting, and a beautiful score.",
    "A dull, lifeless film. The plot made no sense and I wanted my two hours back.",
    "Not bad at all, I expected much worse.",
    "The first half is brilliant, but the ending ruins everything.",
]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=TextModelOptions().n_epochs)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    t0 = time.time()
    train_text, train_labels, test_text, test_labels = load_imdb_sample()
    print(f"IMDB sample: {len(train_text)} training and {len(test_text)} held-out reviews")
    # 10% of the training reviews pick the best epoch and the blend; the test reviews are
    # only for the report
    options = TextModelOptions(n_epochs=args.epochs, seed=args.seed, verbose=1)
    model = cast("RecipeRNN", fit_text_model(train_text, train_labels, options=options))
    tokenizer = model.tokenizer
    print(f"vocabulary: {tokenizer.n_features} ids, {tokenizer.unk_rate_:.1%} of tokens UNK")
    blend = model.linear_
    print(f"validation accuracy: linear term {blend['val_accuracy_linear']:.1%}, RNN "
          f"{blend['val_accuracy_rnn']:.1%}, blended {blend['val_accuracy_blend']:.1%}"
          if "val_accuracy_blend" in blend else "")
    p = cast(np.ndarray, model.predict(test_text))[:, 0]
    acc, auc = metrics.accuracy(test_labels, p), metrics.roc_auc(test_labels, p)
    print(f"\nheld-out test accuracy {acc:.1%}, ROC AUC {auc:.3f} on {len(test_text)} reviews "
          f"(kept epoch {model.best_epoch_}; {time.time() - t0:.0f}s in all)")

    with tempfile.TemporaryDirectory() as tmp:  # round trip: one file predicts from raw text
        path = os.path.join(tmp, "sentiment.passage")
        save(model, path)
        loaded = load(path)
        scores = cast(np.ndarray, loaded.predict(EXAMPLES))[:, 0]
        assert np.allclose(scores, cast(np.ndarray, model.predict(EXAMPLES))[:, 0])
    print("\npredictions (probability positive) from the saved-and-loaded model:")
    for text, s in zip(EXAMPLES, scores, strict=True):
        print(f"  {s:.2f}  {text}")
    return {"accuracy": acc, "roc_auc": auc, "history": model.history_}


if __name__ == "__main__":
    main()
