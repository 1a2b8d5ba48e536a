"""passage.precision: native bfloat16, read from the CPU's flags or asked of CUDA, not guessed."""

import io
import re
import sys

import pytest
import torch

from passage import precision


@pytest.fixture
def fresh_cache():
    """cpu_has_native_bf16 reads /proc/cpuinfo once per process: start and end uncached."""
    precision.cpu_has_native_bf16.cache_clear()
    yield
    precision.cpu_has_native_bf16.cache_clear()


def test_auto_precision_follows_the_cpu_flags(monkeypatch, tmp_path):
    flags = {"avx2 avx512f avx512_bf16": True, "avx2 avx512f amx_bf16 amx_tile": True,
             "avx2 fma": False}
    for line, native in flags.items():
        assert precision.flags_have_native_bf16(f"flags\t\t: fpu {line} sse\n") is native
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.auto_precision("cpu") == "fp32"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.auto_precision("cpu") == "bf16"


CPUINFO = """processor\t: {n}
vendor_id\t: GenuineIntel
model name\t: Some CPU
flags\t\t: fpu vme de pse {flags}
bugs\t\t: spectre_v1
"""


def test_only_whole_flag_names_of_the_first_flags_line_count():
    assert precision.flags_have_native_bf16(CPUINFO.format(n=0, flags="amx_bf16"))
    # names that merely contain a bf16 flag are other flags
    for flags in ("avx512_bf16x", "xamx_bf16", "avx512bw avx512_fp16", "bf16", ""):
        assert not precision.flags_have_native_bf16(CPUINFO.format(n=0, flags=flags)), flags
    # the first processor's flags decide (all cores of a CPU share them)
    two = CPUINFO.format(n=0, flags="avx2") + "\n" + CPUINFO.format(n=1, flags="avx512_bf16")
    assert not precision.flags_have_native_bf16(two)
    # no flags line (e.g. an ARM cpuinfo, which says 'Features'): not native
    assert not precision.flags_have_native_bf16("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert not precision.flags_have_native_bf16("")


def test_the_flags_are_read_from_proc_cpuinfo_once(monkeypatch, fresh_cache):
    opened = []

    def fake_open(path, *args, **kwargs):
        opened.append(path)
        return io.StringIO(CPUINFO.format(n=0, flags="avx512f avx512_bf16"))

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(precision, "open", fake_open, raising=False)
    assert precision.cpu_has_native_bf16() is True
    assert precision.cpu_has_native_bf16() is True
    assert opened == ["/proc/cpuinfo"]  # cached: the flags do not change while running


def test_unreadable_flags_or_another_system_mean_no_native_bf16(monkeypatch, fresh_cache):
    def unreadable(path, *args, **kwargs):
        raise PermissionError(path)

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(precision, "open", unreadable, raising=False)
    assert precision.cpu_has_native_bf16() is False
    precision.cpu_has_native_bf16.cache_clear()

    def must_not_open(path, *args, **kwargs):
        raise AssertionError(f"opened {path} on a system without /proc/cpuinfo")

    for platform in ("darwin", "win32"):
        monkeypatch.setattr(sys, "platform", platform)
        monkeypatch.setattr(precision, "open", must_not_open, raising=False)
        assert precision.cpu_has_native_bf16() is False
        precision.cpu_has_native_bf16.cache_clear()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/cpuinfo")
def test_this_machine_is_read_as_its_cpuinfo_says(fresh_cache):
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
        match = re.search(r"^flags\s*:(.*)$", f.read(), re.MULTILINE)
    flags = match.group(1).split() if match else []
    native = "avx512_bf16" in flags or "amx_bf16" in flags
    assert precision.cpu_has_native_bf16() is native
    assert precision.auto_precision("cpu") == ("bf16" if native else "fp32")


def test_cuda_devices_are_asked_not_the_cpu(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    for supported, expected in [(True, "bf16"), (False, "fp32")]:
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda s=supported: s)
        assert precision.auto_precision("cuda") == expected
        assert precision.auto_precision(torch.device("cuda", 0)) == expected
        # the CPU is still decided by its own flags
        assert precision.auto_precision(torch.device("cpu")) == "bf16"


def test_the_default_device_is_cuda_when_there_is_one(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert precision.auto_precision() == "fp32"  # CUDA's answer, not the CPU's
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert precision.auto_precision() == "bf16"


def test_the_answer_is_a_precision_a_model_takes():
    from passage.models import PRECISIONS

    assert precision.auto_precision() in PRECISIONS
