"""Glue for the compiled engine, ``passage/_tokens.c`` (built by ``pip install`` when there is a
C compiler, as ``passage/_tokens*.so``; ``Lexicon`` is None without it).

A ``Lexicon`` splits each text's bytes with the byte classes of ``rules`` and looks every token
up in a hash table keyed by its whole bytes (so there are no collisions to check), with no
Python object per token. Counting runs one lexicon per thread, each on a part of the texts, and
merges them into the first in order, which gives the ids of counting all the texts in one.
"""

from __future__ import annotations

import numpy as np

from passage._tokenizer.base import UNK, Counts, EngineSettings, VocabularyCache, offsets
from passage._tokenizer.chunks import parts, submit, thread_pool
from passage._tokenizer.rules import BYTE_CLASS_TABLE, MULTIBYTE_MARKS
from passage.sequences import TokenArray

try:
    from passage._tokens import Lexicon
except ImportError:  # installed without a C compiler: the numpy engine does the work
    Lexicon = None


def lexicon():
    """An empty compiled ``Lexicon`` that splits the way ``rules`` says."""
    return Lexicon(BYTE_CLASS_TABLE, tuple(MULTIBYTE_MARKS))


def _count_parts(lexicons: list, groups: list[list[str]], workers: int,
                 *args) -> list[tuple[np.ndarray, ...]]:
    """``lexicon.count(group, *args)`` for each pair, in threads: (ids, counts) arrays."""
    with thread_pool(groups, workers) as pool:
        done = [submit(pool, lex.count, group, *args)
                for lex, group in zip(lexicons, groups, strict=True)]
        return [(np.frombuffer(ids, np.int32), np.frombuffer(counts, np.int64))
                for ids, counts in (d.result() for d in done)]


def count(texts: list[str], lowercase: bool, character: bool,
          settings: EngineSettings) -> Counts:
    """``Counts`` of the texts (ids identical to the reference engine's)."""
    groups = parts(texts, settings)
    lexicons = [lexicon() for _ in groups]
    results = _count_parts(lexicons, groups, settings.workers, lowercase, character, True)
    lex, ids = lexicons[0], [results[0][0]]
    for other, (part_ids, _) in zip(lexicons[1:], results[1:], strict=True):
        ids.append(np.frombuffer(lex.merge(other), np.int32)[part_ids])
    df, tf = (np.frombuffer(f, np.int64) for f in lex.frequencies())
    codes = TokenArray(np.concatenate(ids), offsets([counts for _, counts in results]))
    return Counts(codes, df, tf, tokens=lambda i: lex.tokens(np.asarray(i).tolist()),
                  find=lambda toks: lex.find(list(toks)))


_VOCABULARIES = VocabularyCache()


def _vocabulary_lexicon(encoder: dict[str, int]) -> tuple:
    """A lexicon of the vocabulary and the vocabulary id of each lexicon id (unknown tokens
    come back as -1: the last entry, UNK)."""
    lex = lexicon()
    tokens = [tok for tok in encoder if tok]  # '' is never a token
    lex.add(tokens)
    to_id = np.fromiter(map(encoder.__getitem__, tokens), np.int32, count=len(tokens))
    return lex, np.append(to_id, np.int32(UNK))


def encode(texts: list[str], encoder: dict[str, int], lowercase: bool, character: bool,
           as_lists: bool, settings: EngineSettings) -> TokenArray | list[list[int]]:
    """Ids of the tokens of ``texts`` under a fitted vocabulary, UNK for the others (the
    threads look their parts up in one lexicon, which does not change)."""
    lex, to_id = _VOCABULARIES.get(encoder, lambda: _vocabulary_lexicon(encoder))
    groups = parts(texts, settings)
    results = _count_parts([lex] * len(groups), groups, settings.workers, lowercase, character,
                           False)
    codes = TokenArray(np.concatenate([to_id[ids] for ids, _ in results]),
                       offsets([counts for _, counts in results]))
    return codes.tolist() if as_lists else codes
