"""Fixtures shared by the test files."""

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
