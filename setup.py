"""The compiled part of the Tokenizer (optional: without a C compiler, Passage uses numpy)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("passage._tokens", ["passage/_tokens.c"], optional=True,
                             extra_compile_args=["-O3"])])
