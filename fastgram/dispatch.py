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

``auto`` tries the backends in the order of :data:`AUTO_ORDER` for the input's
device and takes the first that implements the op, is available and supports
the inputs. Passing over a backend that implements the op but cannot run
emits one :class:`FastgramFallbackWarning` per (op, backend) pair, never one
per call.

An explicitly requested backend that is unavailable on this machine is an
error (:class:`BackendUnavailableError`). An available backend that does not
cover an op or an input combination (dtype, layout, device) routes that call
to ``reference``, again with one warning per (op, backend) pair.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import importlib
import importlib.util
import os
import threading
import warnings
from typing import Callable, Iterator, Optional

import torch

BACKENDS = ("reference", "triton", "ext")
CHOICES = BACKENDS + ("auto",)
ENV_VAR = "FASTGRAM_BACKEND"

# Fastest first. Triton on the CPU only runs under its interpreter, which is a
# testing aid and far slower than PyTorch, so auto never picks it there.
AUTO_ORDER = {
    "cuda": ("triton", "ext", "reference"),
    "cpu": ("ext", "reference"),
}

# Where each compiled backend registers its implementations. Importing the
# module registers them; it is imported only once the backend's own probe
# has passed, so importing fastgram never imports triton or builds anything.
_BACKEND_MODULES = {
    "triton": "fastgram.kernels",
    "ext": "fastgram._ext",
}

# The ops each compiled backend provides once its module is loaded. Declared
# here, not discovered, so that auto can warn about a backend that would have
# served an op but failed to load, and so that a module that forgets to
# register an op it promises is caught. Each kernel module adds its ops here,
# one per line.
PROVIDES: dict[str, tuple] = {
    "triton": (
        "gram_matrix",
        "style_loss",
        "instance_norm",
        "adain",
    ),
    "ext": (
        "gram_matrix",
        "style_loss",
    ),
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


@dataclasses.dataclass(frozen=True)
class Implementation:
    """One backend's implementation of one op.

    ``supports`` receives the op's canonical arguments (those ``fn`` receives)
    and returns ``None`` when ``fn`` can handle them, else a short reason.
    """

    fn: Callable
    supports: Optional[Callable[..., Optional[str]]] = None

    def unsupported_reason(self, args: tuple) -> Optional[str]:
        return None if self.supports is None else self.supports(*args)


_lock = threading.Lock()
_impls: dict[str, dict[str, Implementation]] = {}
_probe_results: dict[str, Optional[str]] = {}
_UNPROBED = object()
_warned: set[tuple[str, str]] = set()
_global_choice: Optional[str] = None
_context_choice: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar(
    "fastgram_backend", default=None
)


# --------------------------------------------------------------------------
# registration


def register(op: str, backend: str, fn: Callable, supports=None) -> None:
    """Register ``fn`` as ``backend``'s implementation of ``op``.

    Re-registering replaces the previous implementation (kernel modules may be
    reloaded in tests).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    with _lock:
        _impls.setdefault(op, {})[backend] = Implementation(fn, supports)


def unregister(op: str, backend: str) -> None:
    """Remove ``backend``'s implementation of ``op`` (used by tests)."""
    with _lock:
        _impls.get(op, {}).pop(backend, None)


def registered_ops(backend: str) -> tuple:
    """The ops for which ``backend`` has a registered implementation, sorted."""
    return tuple(sorted(op for op, impls in _impls.items() if backend in impls))


def provided_ops(backend: str) -> tuple:
    """The ops ``backend`` covers when it can run, sorted."""
    if backend == "reference":
        return registered_ops("reference")
    return tuple(sorted(PROVIDES[backend]))


# --------------------------------------------------------------------------
# availability


def _probe_triton() -> Optional[str]:
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (pip install triton; Linux only)"
    interpreted = os.environ.get("TRITON_INTERPRET") == "1"
    if not interpreted and not torch.cuda.is_available():
        return (
            "no CUDA device is visible (set TRITON_INTERPRET=1 before importing "
            "triton to run the kernels on the CPU, for testing)"
        )
    try:
        importlib.import_module("triton")
    except Exception as exc:  # a broken install must not break fastgram
        return f"importing triton failed: {type(exc).__name__}: {exc}"
    return None


def _probe_ext() -> Optional[str]:
    from fastgram import _ext

    return _ext.load_error()


_PROBES = {"triton": _probe_triton, "ext": _probe_ext}


def _load_backend_module(name: str) -> Optional[str]:
    module = _BACKEND_MODULES[name]
    try:
        importlib.import_module(module)
    except Exception as exc:
        return f"importing {module} failed: {type(exc).__name__}: {exc}"
    if not PROVIDES[name]:
        return f"this build of fastgram has no {name} implementation of any op yet"
    missing = sorted(set(PROVIDES[name]) - set(registered_ops(name)))
    if missing:
        return f"{module} did not register its ops {', '.join(missing)}"
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
        reason = _PROBES[name]() or _load_backend_module(name)
        _probe_results[name] = reason
    return reason


def refresh() -> None:
    """Forget cached availability probes and issued warnings.

    For tests and for programs that change the environment (for example set
    ``TRITON_INTERPRET``) after fastgram first looked at it.
    """
    with _lock:
        _probe_results.clear()
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


def select(op: str, device: torch.device, args: tuple, backend: Optional[str] = None) -> Callable:
    """Return the implementation of ``op`` to call with ``args`` on ``device``.

    ``backend`` is the op's ``backend=`` argument; ``None`` means the backend
    in force (:func:`get_backend`).
    """
    impls = _impls.get(op)
    if not impls or "reference" not in impls:
        raise KeyError(f"fastgram op {op!r} has no reference implementation registered")
    if backend is None:
        name = get_backend()
    else:
        name = _check_name(backend, "backend")
    if name == "reference":
        return impls["reference"].fn
    if name == "auto":
        for candidate in AUTO_ORDER.get(device.type, ("reference",)):
            if candidate == "reference":
                break
            if op not in PROVIDES[candidate]:
                continue
            reason = unavailable_reason(candidate)
            impl = impls.get(candidate)
            if reason is None and impl is not None:
                reason = impl.unsupported_reason(args)
                if reason is None:
                    return impl.fn
            _warn_once(op, candidate, reason or "not registered", "the next backend in auto order")
        return impls["reference"].fn
    _require_available(name, "backend")
    impl = impls.get(name)
    reason = (
        f"the {name} backend has no implementation of {op}"
        if impl is None
        else impl.unsupported_reason(args)
    )
    if reason is None:
        return impl.fn
    _warn_once(op, name, reason, "'reference'")
    return impls["reference"].fn
