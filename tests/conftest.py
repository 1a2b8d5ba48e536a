"""Fixtures shared by the test files."""

import os

import pytest


@pytest.fixture
def kernel_dtypes(monkeypatch):
    """A list that records the dtype of the input of every fused recurrent kernel call."""
    import passage.recurrent_layers as layer_module

    seen = []
    real = layer_module.scan_fused

    def spy(kind, x, *args):
        seen.append(x.dtype)
        return real(kind, x, *args)

    monkeypatch.setattr(layer_module, "scan_fused", spy)
    return seen


@pytest.fixture
def compiled():
    """The C extensions (passage/_tokens.c, passage/_gru.c, passage/_scan.c), which pip builds
    when there is a C compiler: their tests are skipped without them, except in CI, which
    requires them. Checked by what the library itself imported, so a module that is there but
    fails to load counts as missing."""
    from passage import preprocessing, recurrent, skip_padding

    missing = [name for name, loaded in (("passage._tokens", preprocessing._CompiledLexicon),
                                         ("passage._gru", recurrent._fused_step),
                                         ("passage._scan", skip_padding._compiled))
               if loaded is None]
    if missing:
        message = f"{', '.join(missing)} not built or not loadable (pip install builds them " \
                  "with a C compiler)"
        if os.environ.get("PASSAGE_REQUIRE_COMPILED"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def chromium():
    """(browser, driver) paths of Debian's chromium and chromium-driver for the browser test:
    skipped without them, except in CI (.ci/run installs them and sets PASSAGE_REQUIRE_BROWSER),
    where a missing browser fails the test."""
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        message = "headless Chromium not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("PASSAGE_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return browser, driver
