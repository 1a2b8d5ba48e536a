"""Which training precision the hardware runs natively.

bfloat16 halves the memory traffic of the recurrent kernels, but only where the CPU has
bfloat16 instructions (AVX512-BF16 or AMX); elsewhere PyTorch emulates it and training is
slower than in float32. ``auto_precision`` reads the CPU's flags (or asks CUDA) and never guesses.

>>> auto_precision() in ("bf16", "fp32")
True
"""

from __future__ import annotations

import functools
import sys

import torch

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bfloat16


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when the CPU's flags (Linux /proc/cpuinfo) name a bfloat16 instruction set; False
    where they cannot be read (other systems: bf16 stays opt-in there)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return flags_have_native_bf16(f.read())
    except OSError:
        return False


def flags_have_native_bf16(cpuinfo: str) -> bool:
    """Whether the first ``flags`` line of a /proc/cpuinfo text names native bfloat16."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return any(flag in flags for flag in NATIVE_BF16_FLAGS)
    return False


def auto_precision(device: torch.device | str | None = None) -> str:
    """'bf16' where training in bfloat16 runs natively on ``device`` (default: CUDA if present,
    else the CPU), else 'fp32'."""
    device = torch.device(device) if device is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"
