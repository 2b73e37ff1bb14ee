"""Build script for fastgram.

The metadata lives in pyproject.toml. This file exists for what pyproject.toml
cannot say declaratively: the Triton sources in the top-level ``kernels/``
folder are installed as the subpackage ``fastgram.kernels`` (the name
``kernels`` alone is taken on PyPI), and, once ``csrc/`` holds the extension
sources, the optional ahead-of-time build of ``fastgram._C``.
"""

from setuptools import find_packages, setup

PACKAGES = find_packages(include=["fastgram", "fastgram.*"]) + ["fastgram.kernels"]

setup(
    packages=PACKAGES,
    package_dir={"fastgram.kernels": "kernels"},
    package_data={"fastgram": ["data/*", "data/*/*", "data/*/*/*"]},
)
