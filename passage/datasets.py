"""Local datasets: the bundled IMDB sample, and readers for files you already have.

Nothing is downloaded. ``load_imdb_sample()`` reads 6,000 reviews shipped with Passage (a
balanced random sample of aclImdb v1.0, Maas et al. 2011: 5,000 train, 1,000 test; see
``passage/data/README.md``). ``load_imdb(path)`` reads the full set in the same JSON-lines form.

>>> trX, trY, teX, teY = load_imdb_sample()
>>> len(trX), len(teX), sorted(set(trY))
(5000, 1000, [0, 1])
"""

from __future__ import annotations

import json
import os
from importlib import resources
from typing import Any

from passage.files import open_text


def read_jsonl(path: str | os.PathLike, text_key: str = "text",
               label_key: str = "label") -> tuple[list[Any], list[Any]]:
    """(texts, labels) from a JSON-lines file (gzip if .gz); rows without a label are skipped."""
    texts: list[Any] = []
    labels: list[Any] = []
    with open_text(path) as f:
        for line in f:
            row = json.loads(line)
            if label_key in row:
                texts.append(row[text_key])
                labels.append(row[label_key])
    return texts, labels


def load_imdb_sample(
        label: str = "label") -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    """(train_texts, train_labels, test_texts, test_labels) of the bundled sample.

    label: 'label' (0 negative / 1 positive) or 'rating' (the reviewer's 1-10 score).
    """
    path = resources.files("passage") / "data" / "imdb_sample.jsonl.gz"
    out: dict[str, tuple[list, list]] = {"train": ([], []), "test": ([], [])}
    with open_text(str(path)) as f:
        for line in f:
            row = json.loads(line)
            out[row["split"]][0].append(row["text"])
            out[row["split"]][1].append(row[label])
    return (*out["train"], *out["test"])


def load_imdb(directory: str | os.PathLike, split: str = "train", label: str = "label",
              line_breaks: bool = True) -> tuple[list[Any], list[Any]]:
    """(texts, labels) of one split ('train', 'test') of the full IMDB set in ``directory``.

    line_breaks=False replaces the reviews' ``<br />`` markup by a space: each one is 4 tokens
    for the Tokenizer, together 5.5% of the tokens of the train reviews.
    """
    texts, labels = read_jsonl(os.path.join(directory, f"{split}.jsonl.gz"), label_key=label)
    if not line_breaks:
        texts = [t.replace("<br />", " ") for t in texts]
    return texts, labels
