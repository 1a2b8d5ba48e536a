"""What the engines share: the special ids, the ``EngineSettings`` they run under, and the
``Counts`` they return."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from passage._checks import check_int
from passage.sequences import TokenArray

PAD, END, UNK = 0, 1, 2
SPECIAL = ("PAD", "END", "UNK")

ENGINES = ("auto", "compiled", "numpy", "python")


@dataclass(frozen=True)
class EngineSettings:
    """How the tokens are counted and looked up; every choice gives the same ids.

    engine: ``"auto"`` (the compiled engine if ``passage._tokens`` imports, else numpy),
        ``"compiled"``, ``"numpy"`` or ``"python"`` (the plain reference).
    chunk_chars: the numpy engine works on runs of whole texts of about this many characters,
        so its per-byte arrays stay in cache.
    part_chars: the compiled engine gives each thread at least this many characters.
    workers: threads working beside the caller's (0: none).
    token_keys: the numpy engine's key function (``keys.token_keys`` when None); a test can give
        one that makes keys collide, to check that collisions are caught.
    """

    engine: str = "auto"
    chunk_chars: int = 1 << 20
    part_chars: int = 1 << 18
    workers: int = min(4, os.cpu_count() or 1)
    token_keys: Callable | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        check_int("chunk_chars", self.chunk_chars)
        check_int("part_chars", self.part_chars)
        check_int("workers", self.workers, 0)


@dataclass
class Counts:
    """Distinct tokens of a corpus: ``codes`` (dense ids, first occurrence first) per document."""

    codes: TokenArray
    df: np.ndarray  # documents containing each distinct token
    tf: np.ndarray  # occurrences of each distinct token
    tokens: Callable[[np.ndarray], list[str]]  # dense ids -> the tokens
    find: Callable[[Sequence[str]], list[int]]  # tokens -> dense ids (-1 if never seen)


def offsets(counts: list[np.ndarray]) -> np.ndarray:
    """Offsets of documents from their token counts (chunk by chunk)."""
    lengths = np.concatenate(counts) if counts else np.zeros(0, np.int64)
    out = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


class VocabularyCache:
    """What an engine builds from a fitted vocabulary (its lookup table), kept for the next
    ``encode`` of the same vocabulary: a service encodes one text at a time, and building the
    table of a 20,000-word vocabulary costs ~10x more than encoding a review. An entry is the
    encoder dict itself (held, so its id is not reused) and its length: a fitted Tokenizer's
    encoder is replaced, never edited, when it is fitted again. A few entries, last used kept."""

    def __init__(self, size: int = 4):
        self.size = size
        self._entries: list[tuple[dict, int, object]] = []
        self._lock = threading.Lock()

    def get(self, encoder: dict, build: Callable[[], object]):
        with self._lock:
            for i, (enc, n, value) in enumerate(self._entries):
                if enc is encoder and n == len(encoder):
                    self._entries.append(self._entries.pop(i))
                    return value
        value = build()  # (outside the lock: two threads may both build; either is right)
        with self._lock:
            self._entries = [e for e in self._entries if e[0] is not encoder]
            self._entries = [*self._entries, (encoder, len(encoder), value)][-self.size:]
        return value
