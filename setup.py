"""Build script for fastgram.

The metadata lives in pyproject.toml. This file exists for what pyproject.toml
cannot say declaratively: the Triton sources in the top-level ``kernels/``
folder are installed as the subpackage ``fastgram.kernels`` (the name
``kernels`` alone is taken on PyPI), and the optional ahead-of-time build of
the C++/CUDA extension ``fastgram._C`` from ``csrc/``.

The extension is built here only when torch is importable at build time
(``pip install --no-build-isolation -e .``) and ``FASTGRAM_BUILD_EXT`` is not
``0``; its CUDA sources only when a CUDA toolkit and a CUDA build of torch are
present and ``FASTGRAM_EXT_CUDA`` is not ``0`` (``TORCH_CUDA_ARCH_LIST``
defaults to 8.0;9.0 when no GPU is visible). Otherwise the package installs
without it and builds it just in time on first use.
"""

import importlib.util
import os
import sys
from pathlib import Path

from setuptools import find_packages, setup

PACKAGES = find_packages(include=["fastgram", "fastgram.*"]) + ["fastgram.kernels"]
ROOT = Path(__file__).resolve().parent


def _load_build_helpers():
    """fastgram/backends/ext/build.py, loaded by path: importing the fastgram package
    here would pull in more than the build needs."""
    path = ROOT / "fastgram" / "backends" / "ext" / "build.py"
    spec = importlib.util.spec_from_file_location("_fastgram_ext_build", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def extension_options() -> dict:
    """``ext_modules`` and ``cmdclass`` for the ahead-of-time build, or {}."""
    if os.environ.get("FASTGRAM_BUILD_EXT", "1") == "0":
        return {}
    if importlib.util.find_spec("torch") is None:
        return {}  # build isolation without torch: the JIT build covers it
    helpers = _load_build_helpers()
    csrc = ROOT / "csrc"
    sources = [os.path.relpath(p, ROOT) for p in helpers.source_files("cpp", csrc)]
    if not sources:
        return {}
    with_cuda = (
        helpers.cuda_build_possible() is None and os.environ.get(helpers.FORCE_CUDA_ENV) != "0"
    )
    if with_cuda:
        helpers.prepare_cuda_environment()  # before torch's builder reads CUDA_HOME
    from torch.utils import cpp_extension

    cxx_flags, nvcc_flags = helpers.compile_flags(with_cuda)
    compile_args = {"cxx": cxx_flags}
    if with_cuda:
        sources += [os.path.relpath(p, ROOT) for p in helpers.source_files("cu", csrc)]
        compile_args["nvcc"] = nvcc_flags
        extension_class = cpp_extension.CUDAExtension
    else:
        extension_class = cpp_extension.CppExtension
    extension = extension_class(
        name="fastgram._C",
        sources=sources,
        include_dirs=helpers.include_dirs(with_cuda),
        extra_compile_args=compile_args,
        extra_link_args=list(helpers.LD_FLAGS),
    )

    class BuildExtension(cpp_extension.BuildExtension):
        """Writes the stamp the loader checks before trusting the build."""

        def build_extension(self, ext):
            super().build_extension(ext)
            target = Path(self.get_ext_fullpath(ext.name)).parent / helpers.STAMP_FILE.name
            helpers.write_stamp(target, with_cuda)

    return {
        "ext_modules": [extension],
        "cmdclass": {"build_ext": BuildExtension.with_options(use_ninja=True)},
    }


setup(
    packages=PACKAGES,
    package_dir={"fastgram.kernels": "kernels"},
    package_data={"fastgram": ["data/*", "data/*/*", "data/*/*/*", "serve/*.html"]},
    **extension_options(),
)
