"""Name lookup shared by the small registries (activations, inits, updaters, iterators), and
the model classes a model file can name.

``MODELS`` maps a class name to the class; each model module registers its classes when it is
imported (``register_model``), so ``passage.io`` rebuilds models from their config without
importing the model modules (which sit above it: they save through it).
"""

from __future__ import annotations

from typing import Any


def lookup(table: dict, name: object, kind: str) -> Any:
    """``table[name.lower()]``, or an error that lists the valid names."""
    if not isinstance(name, str):
        raise TypeError(f"{kind} must be a name (str), got {type(name).__name__}")
    try:
        return table[name.lower()]
    except KeyError:
        # each key, spelled as its class or function is when that is the same name
        valid = sorted({v.__name__ if getattr(v, "__name__", "").lower() == k else k
                        for k, v in table.items()})
        raise ValueError(f"unknown {kind} {name!r}; valid names: {', '.join(valid)}") from None


MODELS: dict[str, type] = {}  # {class name in a model file: class}; see register_model


def register_model(cls: type) -> type:
    """Make ``cls`` loadable from model files that name it (``config["class"]``)."""
    MODELS[cls.__name__] = cls
    return cls
