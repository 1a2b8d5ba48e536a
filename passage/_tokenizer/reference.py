"""The plain-Python engine: regex tokens and a dict from token to id. Slow, and the reference
the other engines are tested against (they give exactly its ids)."""

from __future__ import annotations

import numpy as np

from passage._tokenizer.base import UNK, Counts, EngineSettings
from passage._tokenizer.rules import split
from passage.sequences import TokenArray


def count(texts: list[str], lowercase: bool, character: bool,
          settings: EngineSettings | None = None) -> Counts:
    """Every distinct token gets the next id at its first occurrence (a dict keeps that order)."""
    index: dict[str, int] = {}
    codes = [[index.setdefault(tok, len(index)) for tok in doc]
             for doc in split(texts, lowercase, character)]
    flat = TokenArray.from_sequences(codes)
    df = np.zeros(len(index), np.int64)
    for doc in codes:
        df[list(set(doc))] += 1
    vocab = list(index)
    return Counts(flat, df, np.bincount(flat.values, minlength=len(index)),
                  tokens=lambda ids: [vocab[i] for i in ids],
                  find=lambda toks: [index.get(t, -1) for t in toks])


def encode(texts: list[str], encoder: dict[str, int], lowercase: bool, character: bool,
           as_lists: bool, settings: EngineSettings | None = None) -> TokenArray | list[list[int]]:
    """Ids of the tokens of ``texts`` under a fitted vocabulary, UNK for the others."""
    get = encoder.get
    ids = [[get(tok, UNK) for tok in doc] for doc in split(texts, lowercase, character)]
    return ids if as_lists else TokenArray.from_sequences(ids)
