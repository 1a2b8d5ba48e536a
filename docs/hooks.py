"""MkDocs hook: doctest output in docstrings is not a cross-reference.

A docstring's ``>>>`` example output such as ``[[0, 1, 2], [3]]`` reads as a Markdown reference
link ``[0, 1, 2][3]``, and mkdocs-autorefs warns that the target ``0, 1, 2`` does not exist,
which fails ``mkdocs build --strict``. This filter drops only those warnings whose target holds no
identifier (digits, commas, brackets, spaces); a misspelt ``[passage.models.RNN][]`` still fails.
"""

import logging
import re

NOT_A_NAME = re.compile(r"Could not find cross-reference target '[\[\]\d,.\s-]*'")


class _DoctestOutput(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not NOT_A_NAME.search(record.getMessage())


def on_config(config):
    for module in ("plugin", "references", "backlinks"):
        name = f"mkdocs.plugins.mkdocs_autorefs._internal.{module}"
        logging.getLogger(name).addFilter(_DoctestOutput())
    return config
