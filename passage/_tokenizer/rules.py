"""What a token is, defined once for every engine: the punctuation marks, the regular expression
that splits words from them, and the byte classes the byte-level engines split with.

A word is a run of anything but punctuation and the plain space; each punctuation mark is a token
of its own. ``passage/_tokens.c`` is handed ``BYTE_CLASS_TABLE`` and ``MULTIBYTE_MARKS`` rather
than its own copy of the set.
"""

from __future__ import annotations

import re
import string

import numpy as np

PUNCTUATION = set(string.punctuation) | {
    "\n", "\t", "\u2019", "\u2018", "\u201c", "\u201d", "\u00b4"}
_PUNCT_CLASS = "".join(re.escape(c) for c in sorted(PUNCTUATION))
TOKEN_RE = re.compile(f"[^{_PUNCT_CLASS} ]+|[{_PUNCT_CLASS}]")


def split(texts: list[str], lowercase: bool, character: bool) -> list[list[str]]:
    """Tokens of every text, the plain-Python way (the reference every engine matches)."""
    if lowercase:
        texts = [t.lower() for t in texts]
    if character:
        return [list(t) for t in texts]
    return [TOKEN_RE.findall(t) for t in texts]


def _byte_classes() -> tuple[np.ndarray, list[bytes]]:
    """Per byte value: 0 word, 1 the space, 2 a one-byte mark, 3 first byte of a multi-byte mark
    (or of another character starting with the same byte); and the multi-byte marks' UTF-8.

    In UTF-8 every byte of a non-ASCII character is >= 0x80, so word boundaries can be found
    byte by byte, the multi-byte marks (curly quotes, acute accent) matched as byte sequences.
    """
    classes = np.zeros(256, np.uint8)
    multibyte = []
    for mark in sorted(PUNCTUATION):
        code = mark.encode("utf-8")
        if len(code) == 1:
            classes[code[0]] = 2
        else:
            multibyte.append(code)
            classes[code[0]] = 3
    classes[ord(" ")] = 1
    return classes, multibyte


_BYTE_CLASS, MULTIBYTE_MARKS = _byte_classes()
BYTE_CLASS_TABLE = _BYTE_CLASS.tobytes()  # for bytes.translate, twice as fast as np.take
