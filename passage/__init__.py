"""Passage: sequence learning with recurrent neural networks, text first, on PyTorch.

The 2015 modules keep their names: ``passage.preprocessing``, ``passage.layers``,
``passage.models``, ``passage.costs``, ``passage.updates``, ``passage.iterators``,
``passage.activations``, ``passage.inits``, ``passage.utils``.
"""

from passage.exceptions import NotFittedError
from passage.io import load, save
from passage.layers import (
    Dense,
    Embedding,
    GatedRecurrent,
    Generic,
    LstmRecurrent,
    OneHot,
    SimpleRecurrent,
)
from passage.lm import LanguageModel
from passage.models import RNN
from passage.preprocessing import LenFilter, Tokenizer, Truncate
from passage.tagging import Tagger

__version__ = "0.3.0"
__all__ = ["RNN", "LanguageModel", "NotFittedError", "Tokenizer", "LenFilter", "Truncate",
           "Embedding", "OneHot", "Generic", "SimpleRecurrent", "GatedRecurrent",
           "LstmRecurrent", "Dense", "Tagger", "save", "load"]
