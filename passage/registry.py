"""Name lookup shared by the small registries (activations, inits, updaters, iterators)."""

from __future__ import annotations


def lookup(table: dict, name: object, kind: str):
    """``table[name.lower()]``, or an error that lists the valid names."""
    if not isinstance(name, str):
        raise TypeError(f"{kind} must be a name (str), got {type(name).__name__}")
    try:
        return table[name.lower()]
    except KeyError:
        valid = sorted(getattr(v, "__name__", k) for k, v in table.items())
        raise ValueError(f"unknown {kind} {name!r}; valid names: {', '.join(valid)}") from None
