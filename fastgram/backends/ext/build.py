"""Building and finding the compiled extension (``fastgram._C``).

Two ways the library gets here, tried in this order:

1. ahead of time: ``setup.py`` built ``fastgram/_C*.so`` and wrote the stamp
   ``fastgram/_C_build.json`` (sources hash, torch version, devices). It is
   used when the stamp matches this torch and, where ``csrc/`` is present
   (editable installs), the current sources;
2. just in time: :func:`torch.utils.cpp_extension.load` builds ``csrc/`` with
   ninja into a cache directory named after a hash of the sources, the torch
   version and the target devices, so a later process finds the finished
   library and loads it without running the compiler (or ninja) at all.

This module needs only the standard library and torch: ``setup.py`` loads it
by file path to share the source list, flags and hash with the JIT build.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Optional

import torch

# fastgram/ (this file is fastgram/backends/ext/build.py)
PACKAGE_DIR = Path(__file__).resolve().parents[2]
CSRC_ENV = "FASTGRAM_EXT_CSRC"
CACHE_ENV = "FASTGRAM_EXT_CACHE"
FORCE_CUDA_ENV = "FASTGRAM_EXT_CUDA"
STAMP_FILE = PACKAGE_DIR / "_C_build.json"
AOT_NAME = "fastgram._C"
# Built for these when no GPU is visible to pick from (Ampere and Hopper).
DEFAULT_CUDA_ARCHS = "8.0;9.0"

CXX_FLAGS = ["-O3", "-fopenmp"]
LD_FLAGS = ["-fopenmp"]
NVCC_FLAGS = ["-O3", "--use_fast_math", "-lineinfo"]


def csrc_dir() -> Path:
    """The C++/CUDA sources: ``$FASTGRAM_EXT_CSRC`` or the checkout's csrc/."""
    override = os.environ.get(CSRC_ENV)
    return Path(override) if override else PACKAGE_DIR.parent / "csrc"


def source_files(kind: str, root: Optional[Path] = None) -> list:
    """Sorted sources of one kind: ``"cpp"``, ``"cu"`` or ``"h"`` (headers)."""
    root = csrc_dir() if root is None else root
    if not root.is_dir():
        return []
    return sorted(str(p) for p in root.glob(f"*.{kind}"))


def sources_hash(root: Optional[Path] = None) -> Optional[str]:
    """sha256 over the names and bytes of every source and header, or None
    when there are no sources here (an installed wheel ships none)."""
    files = source_files("cpp", root) + source_files("cu", root) + source_files("h", root)
    if not files:
        return None
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(Path(path).name.encode())
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------
# CUDA toolkit


def cuda_toolkit() -> Optional[str]:
    """The CUDA toolkit's own directory (holding bin/nvcc and lib64), or None.

    ``nvcc`` on PATH may be a link or a wrapper script into the toolkit; the
    directory two levels above the *resolved* nvcc is the one torch needs.
    """
    for candidate in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")):
        if candidate and (Path(candidate) / "bin" / "nvcc").exists():
            return candidate
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    resolved = Path(os.path.realpath(nvcc))
    home = resolved.parent.parent
    if (home / "lib64").is_dir() or (home / "lib").is_dir():
        if (home / "include" / "cuda_runtime.h").exists():
            return str(home)
    # A wrapper script (`exec /usr/local/cuda-X/bin/nvcc "$@"`): read its target.
    try:
        text = resolved.read_text(errors="ignore")[:4096]
    except OSError:
        return None
    for token in text.split():
        if token.endswith("/bin/nvcc") and Path(token).exists():
            return str(Path(token).parent.parent)
    return None


def nvidia_include_dirs() -> list:
    """Include directories of the ``nvidia`` pip packages (cuBLAS, cuSPARSE
    headers that torch's CUDA headers include)."""
    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return []
    dirs = []
    for root in spec.submodule_search_locations:
        for include in sorted(Path(root).glob("*/include")):
            if (include / "cublas_v2.h").exists() or (include / "cusparse.h").exists():
                dirs.append(str(include))
    return dirs


def cuda_arch_list() -> str:
    """``TORCH_CUDA_ARCH_LIST``, else the visible GPUs, else Ampere + Hopper."""
    explicit = os.environ.get("TORCH_CUDA_ARCH_LIST")
    if explicit:
        return explicit
    if torch.cuda.is_available():
        caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
        return ";".join(f"{major}.{minor}" for major, minor in caps)
    return DEFAULT_CUDA_ARCHS


def cuda_build_possible() -> Optional[str]:
    """None when CUDA sources can be compiled here, else why not."""
    if not torch.version.cuda:
        return "this torch is not a CUDA build"
    if cuda_toolkit() is None:
        return "no CUDA toolkit (nvcc) was found; set CUDA_HOME"
    if not source_files("cu"):
        return "no CUDA sources"
    return None


def prepare_cuda_environment() -> str:
    """Point torch's extension builder at the real toolkit; returns it.

    torch.utils.cpp_extension reads CUDA_HOME once, at import, and guesses
    the wrong prefix when nvcc on PATH is a link, so both the variable and
    the module's copy are set.
    """
    home = cuda_toolkit()
    if home is None:
        raise RuntimeError("no CUDA toolkit found")
    os.environ["CUDA_HOME"] = home
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", cuda_arch_list())
    from torch.utils import cpp_extension

    cpp_extension.CUDA_HOME = home
    return home


def jit_wants_cuda() -> bool:
    """JIT builds include the CUDA sources when they can run here (a GPU is
    visible) or when ``FASTGRAM_EXT_CUDA=1`` asks for them; compiling them on
    a machine that cannot run them only costs minutes."""
    if cuda_build_possible() is not None:
        return False
    forced = os.environ.get(FORCE_CUDA_ENV)
    if forced is not None:
        return forced == "1"
    return torch.cuda.is_available()


# --------------------------------------------------------------------------
# cache


def device_key(with_cuda: bool) -> str:
    if not with_cuda:
        return "cpu"
    return f"cuda{torch.version.cuda}-{cuda_arch_list().replace(';', '_').replace(' ', '_')}"


def cache_root() -> Path:
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastgram" / "ext"


def jit_name(with_cuda: bool) -> str:
    """Library name = its cache key: sources, torch, Python, devices, flags."""
    digest = hashlib.sha256()
    for part in (
        sources_hash() or "",
        torch.__version__,
        sys.implementation.cache_tag or "",
        device_key(with_cuda),
        " ".join(compile_flags(with_cuda)[0] + LD_FLAGS + (NVCC_FLAGS if with_cuda else [])),
    ):
        digest.update(part.encode())
        digest.update(b"\0")
    return f"fastgram_ext_{digest.hexdigest()[:16]}"


@dataclasses.dataclass
class Built:
    """Where the loaded library came from, and the module it is."""

    path: str
    origin: str  # "aot", "jit-cache", "jit-build" or "preloaded"
    module: Optional[ModuleType] = None

    def build_info(self) -> Optional[dict]:
        """What the library says of its own build (``csrc/module.cpp``)."""
        return dict(self.module.build_info()) if self.module is not None else None


def _import_library(path: str, name: str) -> ModuleType:
    """Load the library as the Python module it is; its static initialisers
    register the operators with torch's dispatcher as it loads."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise ImportError(f"{path} is not a loadable extension module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def include_dirs(with_cuda: bool) -> list:
    """csrc/, then the pybind11 package's headers (before torch's bundled
    copy, which is the fallback), then the CUDA headers of the nvidia
    packages for CUDA builds."""
    dirs = [str(csrc_dir())]
    try:
        import pybind11

        dirs.append(pybind11.get_include())
    except ImportError:
        pass
    return dirs + (nvidia_include_dirs() if with_cuda else [])


def compile_flags(with_cuda: bool) -> tuple:
    """(C++ flags, nvcc flags); CUDA builds say so to csrc/module.cpp."""
    marker = ["-DFASTGRAM_WITH_CUDA"] if with_cuda else []
    return CXX_FLAGS + marker, NVCC_FLAGS + marker


def build_jit(verbose: bool = False) -> Built:
    """Load the JIT-built library from the cache, building it first if needed."""
    if sources_hash() is None:
        raise RuntimeError(
            f"no C++ sources in {csrc_dir()} (installed without csrc/ and without an "
            "ahead-of-time build)"
        )
    with_cuda = jit_wants_cuda()
    name = jit_name(with_cuda)
    build_dir = cache_root() / name
    library = build_dir / f"{name}.so"
    # Written once a build has finished: a library without it may be one
    # that another process is still linking.
    done = build_dir / "BUILD_COMPLETE"
    if library.exists() and done.exists():
        try:
            module = _import_library(str(library), name)
        except (OSError, ImportError) as exc:
            raise RuntimeError(
                f"the cached extension {library} could not be loaded ({exc}); "
                f"delete {build_dir} to rebuild it"
            ) from exc
        return Built(str(library), "jit-cache", module)
    build_dir.mkdir(parents=True, exist_ok=True)
    if sys.stderr is not None and sys.stderr.isatty():
        # The only slow step of importing the backend; say what is going on.
        what = "C++/CUDA" if with_cuda else "C++"
        print(f"fastgram: building the {what} extension into {build_dir} (first use; "
              "later imports load it from there)", file=sys.stderr, flush=True)
    sources = source_files("cpp")
    if with_cuda:
        prepare_cuda_environment()
        sources += source_files("cu")
    cxx_flags, nvcc_flags = compile_flags(with_cuda)
    from torch.utils import cpp_extension

    module = cpp_extension.load(
        name=name,
        sources=sources,
        extra_cflags=cxx_flags,
        extra_cuda_cflags=nvcc_flags,
        extra_ldflags=LD_FLAGS,
        extra_include_paths=include_dirs(with_cuda),
        build_directory=str(build_dir),
        with_cuda=with_cuda,
        is_python_module=True,
        verbose=verbose,
    )
    done.write_text(torch.__version__ + "\n")
    return Built(str(library), "jit-build", module)


# --------------------------------------------------------------------------
# ahead of time


def aot_library() -> Optional[str]:
    """Path of the ahead-of-time built ``fastgram._C``, if there is one."""
    try:
        spec = importlib.util.find_spec(AOT_NAME)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None and spec.origin else None


def write_stamp(path: Path, with_cuda: bool) -> None:
    """Record what an ahead-of-time build was built from (called by setup.py)."""
    stamp = {
        "sources_hash": sources_hash(),
        "torch": torch.__version__,
        "devices": ["cpu", "cuda"] if with_cuda else ["cpu"],
    }
    path.write_text(json.dumps(stamp, indent=1) + "\n")


def aot_stale_reason() -> Optional[str]:
    """None when the ahead-of-time build may be loaded, else why not."""
    if aot_library() is None:
        return "not built"
    try:
        stamp = json.loads(STAMP_FILE.read_text())
    except (OSError, ValueError):
        return f"its build stamp {STAMP_FILE.name} is missing or unreadable"
    if stamp.get("torch") != torch.__version__:
        return f"built for torch {stamp.get('torch')}, running torch {torch.__version__}"
    current = sources_hash()
    if current is not None and stamp.get("sources_hash") != current:
        return "csrc/ changed since it was built"
    return None


def load_aot() -> Optional[Built]:
    """Load the ahead-of-time build when it is current; None otherwise."""
    if os.environ.get(CSRC_ENV) or aot_stale_reason() is not None:
        return None
    return Built(aot_library(), "aot", importlib.import_module(AOT_NAME))
