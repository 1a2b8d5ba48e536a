"""How the command line reports errors and warnings: one line each on stderr.

``CLIError`` is a refusal worded for the user; any other exception is shortened to one line
too, its type named when it is not one of the ``EXPECTED_ERRORS`` (``passage --traceback``
shows where it came from).
"""

from __future__ import annotations

import sys
from typing import TextIO

MAX_ERROR = 1000  # characters of an error message shown


class CLIError(Exception):
    """An error to report as one line (no traceback)."""


EXPECTED_ERRORS = (CLIError, ValueError, TypeError, OSError, ImportError, KeyError,
                   FloatingPointError)


def one_line(error: BaseException) -> str:
    """The error as one line of at most MAX_ERROR characters; an unexpected kind is named."""
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, KeyError):
        text = f"missing key {text}"
    elif isinstance(error, MemoryError):
        text = "out of memory" + (f" ({text})" if text != "MemoryError" else "")
    elif not isinstance(error, EXPECTED_ERRORS):
        text = f"{type(error).__name__}: {text} (passage --traceback ... shows where)"
    return text if len(text) <= MAX_ERROR else text[:MAX_ERROR - 3] + "..."


def show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: TextIO | None = None, line: str | None = None) -> None:
    """``warnings.showwarning`` for the command line: the message alone, on one line."""
    print(f"passage: warning: {' '.join(str(message).split())}", file=sys.stderr)

