"""Backend registry and selection.

Every op in :mod:`fastgram.ops` has a ``reference`` implementation (pure
PyTorch) and may have faster ones: ``triton`` (Triton kernels) and ``ext``
(the compiled C++/CUDA extension). Which one runs is decided here, per call,
from the requested backend name:

* the ``backend=`` argument of the op, else
* the innermost :func:`use_backend` context, else
* the last :func:`set_backend` call, else
* the environment variable ``FASTGRAM_BACKEND``, else
* ``"auto"``.

``auto`` tries the compiled backends in the order of :data:`AUTO_ORDER` for
the input's device and takes the first that implements the op, is available
and supports the inputs; when none does, the call runs the plain PyTorch a
user would write (:mod:`fastgram.backends.native`), so ``auto`` is never
slower than eager PyTorch. Passing over a backend that implements the op but
cannot run emits one :class:`FastgramFallbackWarning` per (op, backend) pair,
never one per call.

An explicitly requested backend that is unavailable on this machine is an
error (:class:`BackendUnavailableError`). An available backend that does not
cover an op or an input combination (dtype, layout, device) routes that call
to plain PyTorch, again with one warning per (op, backend) pair.
``"reference"`` always runs the readable ground truth.

The backends themselves are data (see :mod:`fastgram.backends`): this module
reads their tables and none of them imports it.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import importlib
import os
import threading
import warnings
from typing import Callable, Iterator, Optional

import torch

from fastgram import backends as _backends
from fastgram.backends import native

BACKENDS = _backends.NAMES
CHOICES = BACKENDS + ("auto",)
ENV_VAR = "FASTGRAM_BACKEND"

# Fastest first. Triton on the CPU only runs under its interpreter, which is a
# testing aid and far slower than PyTorch, so auto never picks it there.
AUTO_ORDER = {
    "cuda": ("triton", "ext"),
    "cpu": ("ext",),
}


class BackendUnavailableError(RuntimeError):
    """A backend was requested explicitly but cannot run on this machine."""


class FastgramFallbackWarning(UserWarning):
    """A faster backend was passed over and a slower one used instead."""


@dataclasses.dataclass(frozen=True)
class BackendStatus:
    """Whether a backend can run here, why not if it cannot, and its ops."""

    name: str
    available: bool
    reason: Optional[str]
    ops: tuple

    def __str__(self) -> str:
        state = "available" if self.available else f"unavailable: {self.reason}"
        ops = ", ".join(self.ops) if self.ops else "none"
        return f"{self.name}: {state} (ops: {ops})"


# The backend modules are light to import (their heavy imports happen in
# probe() and table()); holding them here keeps every lookup a plain dict
# read that torch.compile can trace.
_MODULES = {name: importlib.import_module(f"fastgram.backends.{name}") for name in BACKENDS}

_lock = threading.Lock()
# name -> {op: OpImpl}, filled once the backend's probe has passed
_tables: dict[str, dict] = {}
# name -> None (runs here) or the reason it does not; cached probes
_probe_results: dict[str, Optional[str]] = {}
_UNPROBED = object()
_warned: set[tuple[str, str]] = set()
_global_choice: Optional[str] = None
_context_choice: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar(
    "fastgram_backend", default=None
)


def provided_ops(backend: str) -> tuple:
    """The ops ``backend`` covers when it can run, sorted."""
    return tuple(sorted(_MODULES[backend].OPS))


def _load_table(name: str) -> Optional[str]:
    """Probe backend ``name`` and read its table; None or why it cannot run.

    A probe answers with a reason; it raises only where that is asked for
    (``FASTGRAM_REQUIRE_EXT=1``), and then the error propagates."""
    backend = _MODULES[name]
    reason = backend.probe()
    if reason is not None:
        return reason
    try:
        table = backend.table()
    except Exception as exc:  # a broken backend must not break fastgram
        return f"loading the {name} backend failed: {type(exc).__name__}: {exc}"
    missing = sorted(set(backend.OPS) - set(table))
    if missing:
        return f"{backend.__name__} has no implementation of {', '.join(missing)}"
    _tables[name] = table
    return None


def unavailable_reason(name: str) -> Optional[str]:
    """``None`` if backend ``name`` can run here, else why it cannot (cached).

    The cached read takes no lock (a dict read is atomic under the GIL), so
    ``torch.compile`` can trace through it; two threads racing on the first
    probe compute the same answer.
    """
    _check_name(name, "backend", allow_auto=False)
    if name == "reference":
        return None
    reason = _probe_results.get(name, _UNPROBED)
    if reason is _UNPROBED:
        reason = _load_table(name)
        _probe_results[name] = reason
    return reason


def refresh() -> None:
    """Forget cached availability probes and issued warnings.

    For tests and for programs that change the environment (for example set
    ``TRITON_INTERPRET``) after fastgram first looked at it.
    """
    with _lock:
        _probe_results.clear()
        _tables.clear()
        _warned.clear()


def backends() -> dict:
    """Status of every backend: ``{name: BackendStatus}``.

    >>> fastgram.backends()["reference"].available
    True
    """
    report = {}
    for name in BACKENDS:
        reason = unavailable_reason(name)
        report[name] = BackendStatus(name, reason is None, reason, provided_ops(name))
    return report


# --------------------------------------------------------------------------
# choosing a backend


def _check_name(name, argument: str, allow_auto: bool = True) -> str:
    valid = CHOICES if allow_auto else BACKENDS
    if not isinstance(name, str) or name not in valid:
        raise ValueError(f"{argument}: expected one of {', '.join(valid)}; got {name!r}")
    return name


def _require_available(name: str, argument: str) -> None:
    if name in ("auto", "reference"):
        return
    reason = unavailable_reason(name)
    if reason is not None:
        raise BackendUnavailableError(
            f"{argument}: backend {name!r} was requested but cannot run here: {reason}"
        )


def _env_choice() -> str:
    value = os.environ.get(ENV_VAR, "").strip()
    return _check_name(value, ENV_VAR) if value else "auto"


def get_backend() -> str:
    """The backend name in force for calls that do not pass ``backend=``."""
    choice = _context_choice.get()
    if choice is None:
        choice = _global_choice
    return choice if choice is not None else _env_choice()


def set_backend(name: Optional[str]) -> None:
    """Choose the backend for all later calls; ``None`` goes back to the
    environment variable ``FASTGRAM_BACKEND`` (default ``"auto"``)."""
    global _global_choice
    if name is not None:
        _check_name(name, "name")
        _require_available(name, "name")
    _global_choice = name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Context manager: use backend ``name`` inside the ``with`` block.

    Nests, is local to the thread or task, and restores the previous choice
    on exit, also when the block raises.
    """
    _check_name(name, "name")
    _require_available(name, "name")
    token = _context_choice.set(name)
    try:
        yield name
    finally:
        _context_choice.reset(token)


def _warn_once(op: str, backend: str, reason: str, fallback: str) -> None:
    # While torch.compile traces, the choice is baked into the graph and a
    # warning cannot be traced; the eager call that precedes tracing warns.
    key = (op, backend)
    if key in _warned or torch.compiler.is_compiling():
        return
    _warned.add(key)
    warnings.warn(
        f"fastgram: {op} cannot use the {backend!r} backend ({reason}); "
        f"using {fallback} instead. Shown once per op and backend.",
        FastgramFallbackWarning,
        stacklevel=4,
    )


_NATIVE = native.table()


def _implementation(name: str, op: str):
    """Backend ``name``'s OpImpl of ``op`` (None if it has none); the backend
    must already have passed its probe."""
    return _tables[name].get(op) if name != "reference" else _reference_table()[op]


def _reference_table() -> dict:
    table = _tables.get("reference")
    if table is None:
        table = _tables["reference"] = _MODULES["reference"].table()
    return table


def select(op: str, device: torch.device, args: tuple, backend: Optional[str] = None) -> Callable:
    """Return the implementation of ``op`` to call with ``args`` on ``device``.

    ``backend`` is the op's ``backend=`` argument; ``None`` means the backend
    in force (:func:`get_backend`).
    """
    name = get_backend() if backend is None else _check_name(backend, "backend")
    if name == "reference":
        return _reference_table()[op].fn
    fallback = _NATIVE[op].fn
    if name == "auto":
        for candidate in AUTO_ORDER.get(device.type, ()):
            if op not in _MODULES[candidate].OPS:
                continue
            reason = unavailable_reason(candidate)
            if reason is None:
                reason = _implementation(candidate, op).supports(*args)
                if reason is None:
                    return _implementation(candidate, op).fn
            _warn_once(op, candidate, reason, "the next backend in auto order (plain PyTorch last)")
        return fallback
    _require_available(name, "backend")
    impl = _implementation(name, op)
    reason = (
        f"the {name} backend has no implementation of {op}"
        if impl is None
        else impl.supports(*args)
    )
    if reason is None:
        return impl.fn
    _warn_once(op, name, reason, "plain PyTorch")
    return fallback
