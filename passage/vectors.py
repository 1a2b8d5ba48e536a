"""Pretrained word vectors (GloVe or word2vec text format) aligned with a fitted tokenizer.

Nothing is downloaded: point ``load_vectors`` at a file you have. Each tokenizer id gets the
vector of its word; words missing from the file get random vectors with the same spread as the
loaded ones (so they neither dominate nor vanish), PAD gets zeros.

>>> import os, tempfile
>>> from passage.preprocessing import Tokenizer
>>> path = os.path.join(tempfile.mkdtemp(), "vec.txt")
>>> _ = open(path, "w").write("good 1 0\\nbad -1 0\\n")
>>> tok = Tokenizer(min_df=1).fit(["good film", "bad film"])
>>> matrix, coverage = load_vectors(path, tok)
>>> matrix.shape, round(coverage, 2)
((6, 2), 0.67)
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from passage.exceptions import NotFittedError
from passage.files import open_text
from passage.preprocessing import PAD, SPECIAL

if TYPE_CHECKING:
    from passage.preprocessing import Tokenizer


def load_vectors(path: str | os.PathLike, tokenizer: Tokenizer, seed: int = 0,
                 lowercase: bool | None = None) -> tuple[np.ndarray, float]:
    """(matrix of shape (tokenizer.n_features, dim), coverage): row i is the vector of the
    tokenizer's word i. coverage is the share of the vocabulary (PAD/END/UNK aside) found.

    Reads GloVe ('word v1 v2 ...' per line) and word2vec text files (the same, after a
    'count dim' header line), gzip too. lowercase: match words lowercased (default: when the
    tokenizer lowercases). Use it as ``Embedding(size=dim, n_features=..., weights=matrix)``
    and ``trainable=False`` to freeze it.
    """
    if not hasattr(tokenizer, "encoder"):
        raise NotFittedError("the tokenizer is not fitted: fit it on your texts first, then load "
                         "vectors for its vocabulary")
    lowercase = tokenizer.lowercase if lowercase is None else lowercase
    wanted = {w: i for w, i in tokenizer.encoder.items() if w not in SPECIAL}
    found: dict[int, np.ndarray] = {}
    dim = None
    with open_text(path, errors="replace", what="vectors file") as f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip("\n").rstrip(" ").split(" ")
            if n == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec header: count dim
            if len(parts) < 2:
                continue
            if dim is None:
                dim = len(parts) - 1
            elif len(parts) - 1 != dim:
                raise ValueError(f"{os.fspath(path)}:{n}: {len(parts) - 1} numbers, but earlier "
                                 f"lines have {dim}: not a GloVe/word2vec text file")
            word = parts[0].lower() if lowercase else parts[0]
            i = wanted.get(word)
            if i is not None and i not in found:  # the first (most frequent) spelling wins
                try:
                    found[i] = np.asarray(parts[1:], dtype=np.float32)
                except ValueError:
                    raise ValueError(f"{os.fspath(path)}:{n}: a vector value is not a number"
                                     ) from None
    if dim is None:
        raise ValueError(f"{os.fspath(path)!r} holds no vectors")
    rng = np.random.default_rng(seed)
    loaded = np.stack(list(found.values())) if found else np.zeros((1, dim), np.float32)
    std = float(loaded.std()) or 0.1
    matrix = rng.normal(0.0, std, size=(tokenizer.n_features, dim)).astype(np.float32)
    for i, v in found.items():
        matrix[i] = v
    matrix[PAD] = 0.0
    return matrix, len(found) / max(1, len(wanted))
