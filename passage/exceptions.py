"""The errors Passage raises that are its own."""

from __future__ import annotations

__all__ = ["NotFittedError"]


class NotFittedError(ValueError, AttributeError):
    """A model, tokenizer or estimator used before it was fitted (or loaded).

    One type everywhere, as scikit-learn's: a ValueError and an AttributeError, so code that
    caught either before still catches it.

    >>> from passage import NotFittedError, Tokenizer
    >>> try:
    ...     Tokenizer().transform(["a text"])
    ... except NotFittedError as e:
    ...     print("not fitted")
    not fitted
    """
