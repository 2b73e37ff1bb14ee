"""Loading the compiled extension once per process.

:func:`load_error` loads the library (the ahead-of-time build when it is
current, else the JIT build from its cache, compiling it on first use) and
answers ``None`` on success or the reason for failure. Nothing is built or
loaded before the ``ext`` backend's probe first asks. The operators' fakes and
autograd are registered by their modules (``fastgram.backends.ext.<op>``)
right after the library is loaded.

A failed build warns once with the compiler's output and the fallback taken;
with ``FASTGRAM_REQUIRE_EXT=1`` it raises :class:`ExtensionBuildError`
instead, so that a broken build can never pass as a fallback (CI sets it).
:func:`info` says what was loaded, from where, and for which devices.
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import Optional

REQUIRE_ENV = "FASTGRAM_REQUIRE_EXT"
# Lines of compiler output kept in the warning and the error.
_OUTPUT_TAIL_LINES = 30


class ExtensionBuildError(RuntimeError):
    """The extension could not be built or loaded and FASTGRAM_REQUIRE_EXT=1."""


class ExtensionBuildWarning(UserWarning):
    """The extension could not be built or loaded; its ops fall back."""


_lock = threading.Lock()
_attempted = False
_error: Optional[str] = None
_built = None  # build.Built once loaded
_warned = False


def _required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") == "1"


def _tail(text: str) -> str:
    lines = text.strip().splitlines()
    if len(lines) <= _OUTPUT_TAIL_LINES:
        return "\n".join(lines)
    return "\n".join(["[...]"] + lines[-_OUTPUT_TAIL_LINES:])


def _ops_already_loaded() -> bool:
    import torch

    return hasattr(torch.ops.fastgram, "ext_style_loss")


def _load() -> None:
    global _error, _built
    try:
        from fastgram.backends.ext import build

        if _ops_already_loaded():
            # Loaded by someone else in this process (a second TORCH_LIBRARY
            # of the same namespace would abort the load).
            _built = build.Built("<already loaded>", "preloaded")
        else:
            _built = build.load_aot() or build.build_jit()
        _register_operators()
    except Exception as exc:  # any failure means: fall back, and say why
        _built = None
        _error = f"{type(exc).__name__}: {_tail(str(exc))}"


def _register_operators() -> None:
    """Import each op module, which registers the fakes and autograd of its
    operators: a library without them would run forward only."""
    import importlib

    from fastgram.backends.ext import support

    for op in support.OPS:
        importlib.import_module(f"fastgram.backends.ext.{op}")


def _report_failure() -> None:
    global _warned
    message = (
        "fastgram: the C++/CUDA extension (fastgram._C) could not be built or loaded, "
        "so the 'ext' backend is unavailable and its ops run on the next backend "
        "(reference on the CPU).\n"
        f"{_error}\n"
        "Fix: install a C++17 compiler and ninja (pip install ninja), then "
        "`pip install --no-build-isolation -e .` or just import again to rebuild "
        "the JIT cache; set FASTGRAM_REQUIRE_EXT=1 to make this an error."
    )
    if _required():
        raise ExtensionBuildError(message)
    if not _warned:
        _warned = True
        warnings.warn(message, ExtensionBuildWarning, stacklevel=3)


def load_error() -> Optional[str]:
    """``None`` when the extension is loaded, else the reason it is not.

    Loads (building if needed) on the first call. Raises
    :class:`ExtensionBuildError` instead of answering when
    ``FASTGRAM_REQUIRE_EXT=1``.
    """
    global _attempted
    with _lock:
        if not _attempted:
            _attempted = True
            _load()
    if _error is not None:
        _report_failure()
        return f"the extension could not be built or loaded: {_error.splitlines()[0]}"
    return None


def info() -> dict:
    """What ``fastgram info`` shows about the extension.

    Keys: ``loaded`` (bool), ``origin`` (``"aot"``, ``"jit-cache"``,
    ``"jit-build"``, ``"preloaded"`` or None), ``path``, ``devices`` (device
    types with kernels), ``error`` (None or the reason), ``aot`` (None when an
    ahead-of-time build is present and current, else why it is not used),
    ``build`` (the library's own account of its build, or None).
    """
    from fastgram.backends.ext import build, support

    try:
        error = load_error()
    except ExtensionBuildError as exc:
        error = str(exc)
    return {
        "loaded": error is None,
        "origin": _built.origin if _built else None,
        "path": _built.path if _built else None,
        "devices": list(support.devices_built()) if error is None else [],
        "error": error,
        "aot": build.aot_stale_reason(),
        "build": _built.build_info() if _built else None,
    }
