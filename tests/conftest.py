"""Fixtures shared by the test files."""

import importlib.util
import os

import pytest


@pytest.fixture
def kernel_dtypes(monkeypatch):
    """A list that records the dtype of the input of every fused recurrent kernel call."""
    import passage.layers as layer_module

    seen = []
    real = layer_module.scan_fused

    def spy(kind, x, *args):
        seen.append(x.dtype)
        return real(kind, x, *args)

    monkeypatch.setattr(layer_module, "scan_fused", spy)
    return seen


@pytest.fixture
def compiled():
    """The C extensions (passage/_tokens.c, passage/_gru.c), which pip builds when there is a C
    compiler: their tests are skipped without them, except in CI, which requires them."""
    missing = [m for m in ("passage._tokens", "passage._gru")
               if importlib.util.find_spec(m) is None]
    if missing:
        message = f"{', '.join(missing)} not built (pip install needs a C compiler to build it)"
        if os.environ.get("PASSAGE_REQUIRE_COMPILED"):
            pytest.fail(message)
        pytest.skip(message)
