"""A Passage ``Tokenizer`` as a Hugging Face ``tokenizer.json`` that gives the same ids.

What Passage does (``passage.preprocessing``): ``str.lower()`` on the whole text (if
``lowercase``), then either every character is a token (``character=True``) or the text is
split into runs of anything but punctuation and the plain space, each punctuation mark (ASCII
punctuation, tab, newline and ’ ‘ “ ” ´) standing alone; a token maps to its vocabulary id, else
UNK (2). PAD (0), END (1) and UNK (2) are vocabulary entries, so a token spelled "PAD" (with
``lowercase=False``) gets id 0, as in Passage.

The JSON: a ``Lowercase`` normalizer (if lowercasing), a ``Split`` pre-tokenizer whose regex is
Passage's (``removed`` + ``invert``: the matches are the tokens, the plain spaces between them
are dropped; ``[\\s\\S]``, one character each, in character mode), a ``WordLevel`` model with
``unk_token`` "UNK", padding with PAD (0), and no added or special tokens (they would be cut out
of the raw text before splitting, which Passage never does).

Where the ids cannot match exactly, and what happens:

- Unicode case mapping. ``tokenizers`` lowercases one character at a time with Rust's tables;
  Python's ``str.lower`` (Unicode {python_unicode}) has the context rule for the final sigma
  (Σ -> ς at the end of a word) and an older Unicode version (characters added later are
  lowercased by ``tokenizers``, left alone by Python). Such a character changes an id only if
  the vocabulary holds it or its lowercase forms (else both sides give UNK), so a lowercasing
  tokenizer whose vocabulary holds σ, ς or one of those characters is refused.
- Lone surrogates (possible in a Python str, not in UTF-8): a vocabulary holding one cannot be
  written, and is refused; texts holding one cannot be passed to ``tokenizers`` at all.
"""

from __future__ import annotations

import functools
import json
import unicodedata
from typing import TYPE_CHECKING

from passage.exceptions import NotFittedError
from passage.preprocessing import _PUNCTUATION, PAD, SPECIAL, UNK

if TYPE_CHECKING:
    from passage.preprocessing import Tokenizer

FINAL_SIGMA = {"\u03c3", "\u03c2"}  # σ and ς: Python lowercases Σ to either, tokenizers to σ

__doc__ = __doc__.format(python_unicode=unicodedata.unidata_version)


def split_pattern(character: bool) -> str:
    """The Oniguruma regex (as ``tokenizers`` runs it) whose matches are Passage's tokens."""
    if character:
        return "[\\s\\S]"
    marks = "".join(f"\\x{{{ord(c):X}}}" for c in sorted(_PUNCTUATION))
    return f"[^{marks} ]+|[{marks}]"


@functools.lru_cache(maxsize=1)
def case_differences() -> frozenset[str]:
    """Characters whose lowercase differs between ``str.lower`` (alone) and the installed
    ``tokenizers``' ``Lowercase``, with both of their lowercase forms, plus σ and ς."""
    from tokenizers import normalizers

    chars = [chr(c) for c in range(1, 0x110000) if not 0xD800 <= c < 0xE000]
    theirs = normalizers.Lowercase().normalize_str("\x00".join(chars)).split("\x00")
    if len(theirs) != len(chars):  # a lowercase form holding NUL: cannot compare this way
        raise RuntimeError("tokenizers' Lowercase changed the number of characters; cannot "
                           "check it against str.lower")
    out = set(FINAL_SIGMA)
    for c, other in zip(chars, theirs, strict=True):
        if c.lower() != other:
            out.update(c, c.lower(), other)
    return frozenset(out)


def check_vocabulary(vocabulary: list[str], lowercase: bool) -> None:
    """Raise where ``tokenizers`` could give other ids than Passage (see the module doc)."""
    bad = [t for t in vocabulary if any(0xD800 <= ord(c) < 0xE000 for c in t)]
    if bad:
        raise ValueError(f"the vocabulary holds {len(bad)} token(s) with lone surrogates (e.g. "
                         f"{bad[0]!r}), which UTF-8 and so tokenizer.json cannot hold; refit the "
                         "Tokenizer on texts cleaned of them")
    if not lowercase:
        return
    risky = case_differences()
    bad = sorted({c for t in vocabulary for c in t if c in risky})
    if bad:
        shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in bad[:8])
        raise ValueError(
            f"cannot export this lowercasing tokenizer exactly: its vocabulary holds {shown}, "
            "characters that Python's str.lower and the tokenizers library lowercase "
            "differently (Greek final sigma, characters newer than Python's Unicode "
            f"{unicodedata.unidata_version}), so tokenizers could give other ids for texts with "
            "their capitals; export a Tokenizer(lowercase=False) instead, or tokenize with "
            "Passage")


def tokenizer_config(tokenizer: Tokenizer) -> dict:
    """The ``tokenizer.json`` content (a dict) of a fitted Passage Tokenizer."""
    if not hasattr(tokenizer, "encoder"):
        raise NotFittedError("this Tokenizer is not fitted yet: call fit(texts) first")
    vocab = [tokenizer.decoder[i] for i in range(tokenizer.n_features)]
    if vocab[:len(SPECIAL)] != list(SPECIAL):
        raise ValueError(f"the tokenizer's first ids are {vocab[:3]}, not {list(SPECIAL)}")
    check_vocabulary(vocab, tokenizer.lowercase)
    pre = {"type": "Split", "pattern": {"Regex": split_pattern(tokenizer.character)},
           "behavior": "Removed", "invert": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": {"strategy": "BatchLongest", "direction": "Right", "pad_to_multiple_of": None,
                    "pad_id": PAD, "pad_type_id": 0, "pad_token": SPECIAL[PAD]},
        "added_tokens": [],
        "normalizer": {"type": "Lowercase"} if tokenizer.lowercase else None,
        "pre_tokenizer": pre,
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": {t: i for i, t in enumerate(vocab)},
                  "unk_token": SPECIAL[UNK]},
    }


def tokenizer_json(tokenizer: Tokenizer) -> str:
    """``tokenizer_config`` as JSON text, checked by loading it with ``tokenizers``."""
    text = json.dumps(tokenizer_config(tokenizer), ensure_ascii=False)
    from tokenizers import Tokenizer as HFTokenizer

    HFTokenizer.from_str(text)  # a file tokenizers cannot load is never written
    return text
