"""The Tokenizer's engines (private: ``passage.preprocessing`` is the public front).

Three engines turn texts into token ids, and give exactly the same ids (tests/test_preprocessing.py
checks it):

- ``compiled.py``: glue for the C extension ``passage/_tokens.c`` (built by ``pip install`` with a
  C compiler), one pass over each text's bytes, no Python object per token;
- ``numpy_engine.py`` (with ``spans.py``, ``keys.py``, ``table.py``): the same in vectorised numpy;
- ``reference.py``: plain Python, the reference the other two are tested against.

``rules.py`` says what a token is, ``chunks.py`` cuts texts into runs for the worker threads, and
``base.py`` holds what they share. This module is the one dispatch: ``count`` (for ``fit``) and
``encode`` (for ``transform``) run the engine the settings name, ``"auto"`` being the compiled
one if ``passage._tokens`` imports, else numpy. That is the only fallback rule; the numpy engine
also hands a corpus to the reference if two of its tokens ever share a 64-bit key (never seen).

Choosing the settings: ``EngineSettings`` (engine, chunk and part sizes, threads) is passed to
``count`` / ``encode``; ``Tokenizer`` passes ``current_settings()``, which the context manager
``settings`` changes for the code inside a ``with`` block::

    with settings(engine="numpy", workers=0):
        Tokenizer().fit_transform(texts)

A context manager rather than a ``Tokenizer`` argument, because the settings say how the ids are
computed, never which ids: they belong to the machine and the run (is the extension built, how
many cores, a test or a benchmark comparing engines), not to the model. As a ``Tokenizer``
argument they would be saved in model files (written by one machine, loaded on another that lacks
the extension) and listed by ``get_config``, which older versions of Passage reject as unknown
keywords; the saved config stays what it was. The value lives in a ``ContextVar``, so a ``with``
block changes it for its own thread (or asyncio task) only: a test or benchmark cannot change the
engine under a server's other threads, and nothing is restored by hand.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import ModuleType

from passage._tokenizer import compiled, numpy_engine, reference
from passage._tokenizer.base import Counts, EngineSettings
from passage.sequences import TokenArray

__all__ = ["Counts", "EngineSettings", "count", "current_settings", "encode", "engine_name",
           "settings"]

_DEFAULTS = EngineSettings()  # frozen, so one instance can be every context's default
_CURRENT: ContextVar[EngineSettings] = ContextVar("passage_tokenizer_settings", default=_DEFAULTS)
_ENGINES: dict[str, ModuleType] = {"compiled": compiled, "numpy": numpy_engine,
                                   "python": reference}


def current_settings() -> EngineSettings:
    """The settings ``Tokenizer`` runs under here (the defaults outside any ``settings`` block)."""
    return _CURRENT.get()


@contextmanager
def settings(**changes) -> Iterator[EngineSettings]:
    """The current settings with ``changes`` (fields of ``EngineSettings``) inside the block.

    >>> with settings(engine="python") as s:
    ...     engine_name(current_settings())
    'python'
    >>> s.workers == current_settings().workers
    True
    """
    token = _CURRENT.set(dataclasses.replace(_CURRENT.get(), **changes))
    try:
        yield _CURRENT.get()
    finally:
        _CURRENT.reset(token)


def engine_name(s: EngineSettings) -> str:
    """The engine that runs under ``s``: ``"auto"`` is compiled if built, else numpy."""
    if s.engine == "auto":
        return "compiled" if compiled.Lexicon is not None else "numpy"
    if s.engine == "compiled" and compiled.Lexicon is None:
        raise RuntimeError("engine='compiled' asked, but passage._tokens is not built (pip "
                           "install builds it with a C compiler); use engine='auto' or 'numpy'")
    return s.engine


def count(texts: list[str], lowercase: bool, character: bool,
          settings: EngineSettings | None = None) -> Counts:
    """Every distinct token of ``texts`` with a dense id (first occurrence first), its document
    and term frequencies, and the ids of every document (``Counts``)."""
    s = settings or current_settings()
    return _ENGINES[engine_name(s)].count(texts, lowercase, character, s)


def encode(texts: list[str], encoder: dict[str, int], lowercase: bool, character: bool,
           as_lists: bool, settings: EngineSettings | None = None) -> TokenArray | list[list[int]]:
    """The ``encoder`` id of every token of ``texts``, UNK for the others: lists of ints with
    ``as_lists``, else a ``TokenArray``."""
    s = settings or current_settings()
    return _ENGINES[engine_name(s)].encode(texts, encoder, lowercase, character, as_lists, s)
