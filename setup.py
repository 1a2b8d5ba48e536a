"""The compiled parts (optional: without a C compiler, Passage uses numpy and PyTorch ops)."""

from setuptools import Extension, setup

KERNELS = ["passage/_kernels.h", "passage/_scan_loop.h"]  # included by the recurrent kernels
# no trapping math: the clamps in exp/sigmoid/tanh (_kernels.h) may then become vector blends for
# AVX2 and SSE (AVX-512 has masks); results are the same, only FP exception traps are assumed off
KERNEL_FLAGS = ["-O3", "-fno-trapping-math"]

setup(ext_modules=[
    Extension("passage._tokens", ["passage/_tokens.c"], optional=True, extra_compile_args=["-O3"]),
    Extension("passage._gru", ["passage/_gru.c"], depends=KERNELS, optional=True,
              extra_compile_args=KERNEL_FLAGS),
    Extension("passage._scan", ["passage/_scan.c"], depends=KERNELS, optional=True,
              extra_compile_args=KERNEL_FLAGS),
])
