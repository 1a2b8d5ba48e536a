"""The compiled parts (optional: without a C compiler, Passage uses numpy and PyTorch ops)."""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("passage._tokens", ["passage/_tokens.c"], optional=True, extra_compile_args=["-O3"]),
    Extension("passage._gru", ["passage/_gru.c"], optional=True, extra_compile_args=["-O3"]),
])
