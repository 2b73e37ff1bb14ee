"""How much memory a stylising forward pass needs, and the budget it must fit.

:func:`estimate_generate_bytes` predicts the peak bytes that a generator
forward (and the style encoder's, for ``alpha < 1``) adds at a given
(B, H, W). It runs the networks' own forward on the ``meta`` device, where
tensors have shapes but no storage: every layer's width and stride is the
module's own, nothing is allocated or computed, and a 10000 x 10000 image
costs as much to estimate as a small one. Each storage is counted from the
op that creates it until it is freed, so residual inputs, padded copies,
upsampled maps and views are accounted as the real run holds them. One
allowance is added for what no op shows: a convolution holds about one more
copy of its input and output while it runs (measured on the CPU, where
oneDNN reorders both between PyTorch's layout and its blocked one; taken as
the same on CUDA for cuDNN's workspace). Against the peak RSS of real CPU
runs the estimate agrees to 1% when every large buffer is mapped and
unmapped at once (glibc's ``MALLOC_MMAP_THRESHOLD_`` fixed, as the tests
measure), and within 15% with the default malloc, which keeps some freed
memory; the tests hold it to 30%.

:func:`check_budget` refuses, with :class:`MemoryBudgetError`, a forward
whose estimate exceeds the budget:

* ``FASTGRAM_MEMORY_BUDGET``: bytes, with an optional binary unit (``512M``,
  ``8G``, ``1.5GiB``), a percentage of the memory available now (``50%``),
  or ``unlimited`` to switch the check off;
* by default, :data:`DEFAULT_FRACTION` of the memory available now: on the
  CPU ``MemAvailable`` of ``/proc/meminfo`` (elsewhere the physical memory),
  on CUDA the device's free memory plus what PyTorch's caching allocator
  holds unused.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import warnings
from typing import Optional, Tuple

import torch

from fastgram.models.frozen_trunk import trunks_on_meta

ENV_VAR = "FASTGRAM_MEMORY_BUDGET"
# The estimate's error (within 15% measured) and the memory the rest of the
# process goes on using both fit in the remaining fifth.
DEFAULT_FRACTION = 0.8
# Extra copies of its input and output a convolution holds while it runs.
CONV_WORKSPACE_COPIES = 1

_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_AMOUNT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")
_OFF = ("unlimited", "off", "none")


class MemoryBudgetError(MemoryError):
    """A forward pass whose estimated memory exceeds the budget; raised before
    anything is allocated. ``estimate`` and ``budget`` are bytes."""

    def __init__(self, what: str, estimate: int, budget: int, budget_source: str,
                 suggested_size: Optional[int]):
        self.what = what
        self.estimate = estimate
        self.budget = budget
        self.budget_source = budget_source
        self.suggested_size = suggested_size
        super().__init__(self.describe())

    def describe(self, size_option: str = "size=") -> str:
        """The message, naming the downscaling option as ``size_option``
        (``"--size "`` on the command line)."""
        if self.suggested_size is not None:
            smaller = f"downscale with {size_option}{self.suggested_size} (or less)"
        else:
            smaller = f"downscale with a smaller {size_option.rstrip('= ')}"
        wanted = _format_bytes(self.estimate * 1.25)
        return (
            f"memory: {self.what} needs about {_format_bytes(self.estimate)}, above the "
            f"memory budget of {_format_bytes(self.budget)} ({self.budget_source}); {smaller}, "
            f"or raise the budget if the memory is there ({ENV_VAR}={wanted}, or "
            f"{ENV_VAR}=unlimited to skip this check)"
        )


def _format_bytes(n: float) -> str:
    for unit, size in (("T", 2**40), ("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{int(n)}B"


# --------------------------------------------------------------------------
# the estimate


class _PeakTracker(torch.utils._python_dispatch.TorchDispatchMode):
    """Bytes of the storages created inside the mode that are still alive,
    and their peak; each convolution adds its transient workspace."""

    def __init__(self):
        super().__init__()
        from torch.multiprocessing.reductions import StorageWeakRef

        self._weak_ref = StorageWeakRef
        self.live: dict = {}
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for key in [k for k, (ref, _) in self.live.items() if ref.expired()]:
            del self.live[key]
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                self.live.setdefault(storage._cdata, (self._weak_ref(storage), storage.nbytes()))
        workspace = 0
        if func is torch.ops.aten.convolution.default:
            workspace = CONV_WORKSPACE_COPIES * (_nbytes(args[0]) + _nbytes(out))
        self.peak = max(self.peak, sum(n for _, n in self.live.values()) + workspace)
        return out


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _on_meta(module: torch.nn.Module) -> dict:
    """Meta stand-ins of the module's parameters and buffers (no copy of the
    weights), for :func:`torch.func.functional_call`."""
    named = itertools.chain(module.named_parameters(), module.named_buffers())
    return {name: torch.empty_like(t, device="meta") for name, t in named}


def _traced_peak(fn) -> int:
    from fastgram import dispatch

    # the reference ops run on meta tensors without a backend's fallback warning
    with torch.no_grad(), dispatch.use_backend("reference"), _PeakTracker() as tracker:
        fn()
    return tracker.peak


def padded_size(generator: torch.nn.Module, height: int, width: int) -> Tuple[int, int]:
    """(H, W) padded as stylising pads them: up to multiples of the
    generator's stride, and at least its minimum size."""
    stride = getattr(generator, "stride", 1)
    minimum = getattr(generator, "min_size", 1)
    return tuple(stride * math.ceil(max(side, minimum) / stride) for side in (height, width))


def _content_code(generator: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The generator's content code of the meta batch ``x``."""
    encoder = getattr(generator, "encoder", None)
    if isinstance(encoder, torch.nn.Module):  # a learned encoder: its weights on meta
        return torch.func.functional_call(encoder, _on_meta(encoder), (x,))
    return generator.encode(x)  # the frozen trunk only (on meta within trunks_on_meta)


def estimate_generate_bytes(generator: torch.nn.Module, shape, *, dtype=torch.float32,
                            style_encoder: Optional[torch.nn.Module] = None) -> int:
    """Peak bytes that stylising a (B, C, H, W) batch adds on top of the
    batch and the weights: the padded copy, the generator's forward, and,
    when given (``alpha < 1``), the style encoder's forward on the batch
    while the content code is held. See the module docstring for the method.
    """
    if not isinstance(generator, torch.nn.Module):
        raise TypeError(f"generator: expected a torch.nn.Module, got {type(generator).__name__}")
    if style_encoder is not None and not isinstance(style_encoder, torch.nn.Module):
        raise TypeError(
            f"style_encoder: expected a torch.nn.Module or None, got {type(style_encoder).__name__}"
        )
    shape = tuple(shape)
    if len(shape) != 4 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1
                              for s in shape):
        raise ValueError(f"shape: expected (B, C, H, W) of positive ints, got {shape}")
    if dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise TypeError(f"dtype: expected a floating-point dtype, got {dtype}")
    batch, channels, height, width = shape
    h, w = padded_size(generator, height, width)
    x = torch.empty(batch, channels, h, w, dtype=dtype, device="meta")
    padded = _nbytes(x) if (h, w) != (height, width) else 0
    style_dim = getattr(generator, "style_dim", None)
    if style_dim is None:
        raise ValueError("generator: expected a fastgram Generator (with style_dim)")
    code = torch.empty(1, style_dim, dtype=dtype, device="meta")
    params = _on_meta(generator)
    total = torch.func.functional_call
    with trunks_on_meta(generator, style_encoder):
        peak = _traced_peak(lambda: total(generator, params, (x, code)))
        if style_encoder is not None:
            with torch.no_grad():
                content = _content_code(generator, x)
            encoder_params = _on_meta(style_encoder)
            peak = max(peak, _nbytes(content) + _traced_peak(
                lambda: total(style_encoder, encoder_params, (x,))))
    return padded + peak


# --------------------------------------------------------------------------
# the budget


def _available(device: torch.device) -> Optional[Tuple[int, str]]:
    """(bytes available now, how that was found) on ``device``, or None."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return free + cached, f"free memory of {device}"
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "memory available"
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "physical memory"
    except (ValueError, OSError, AttributeError):
        return None


def budget_bytes(device="cpu") -> Tuple[Optional[int], str]:
    """(budget in bytes or None for no limit, where it came from) for
    stylising on ``device``, from ``FASTGRAM_MEMORY_BUDGET`` or the default."""
    device = torch.device(device)
    value = os.environ.get(ENV_VAR, "").strip()
    if value.lower() in _OFF:
        return None, f"{ENV_VAR}={value}"
    fraction = DEFAULT_FRACTION
    if value:
        amount = _AMOUNT.match(value)
        if amount:
            return int(float(amount.group(1)) * _UNITS[amount.group(2).lower()]), f"{ENV_VAR}={value}"
        percent = _PERCENT.match(value)
        if not percent or not 0 < float(percent.group(1)) <= 100:
            raise ValueError(
                f"{ENV_VAR}: expected bytes with an optional unit (e.g. 512M, 8G), a percentage "
                f"of the available memory (e.g. 50%) or 'unlimited', got {value!r}"
            )
        fraction = float(percent.group(1)) / 100
    found = _available(device)
    if found is None:
        return None, f"the memory of {device} is unknown"
    available, source = found
    origin = f"{ENV_VAR}={value}" if value else f"the default; {ENV_VAR} sets it"
    return int(available * fraction), (
        f"{fraction:.0%} of the {_format_bytes(available)} of {source}, {origin}"
    )


def _suggested_size(generator, height: int, width: int, estimate: int, budget: int) -> Optional[int]:
    """The largest shorter side, a multiple of the generator's stride, at
    which the estimate fits the budget (memory grows with the pixels)."""
    stride = getattr(generator, "stride", 1)
    side = min(height, width) * math.sqrt(0.95 * budget / estimate)
    side = int(side // stride * stride)
    if side < max(stride, getattr(generator, "min_size", 1)) or side >= min(height, width):
        return None
    return side


def check_budget(generator: torch.nn.Module, batch: torch.Tensor,
                 style_encoder: Optional[torch.nn.Module] = None) -> Optional[int]:
    """Refuse stylising ``batch`` (B, C, H, W) with ``generator`` (and
    ``style_encoder``, when ``alpha < 1`` runs it on the batch) before
    anything is allocated when the estimate exceeds the budget.

    Returns the estimate in bytes (None when no budget applies); raises
    :class:`MemoryBudgetError` naming the estimate, the budget and what to
    do instead. Estimation problems never stop a run: they warn and skip.
    """
    if not isinstance(batch, torch.Tensor) or batch.dim() != 4:
        raise ValueError(f"batch: expected a (B, C, H, W) tensor, got {batch!r:.80}")
    budget, source = budget_bytes(batch.device)
    if budget is None:
        return None
    try:
        estimate = estimate_generate_bytes(generator, batch.shape, dtype=batch.dtype,
                                           style_encoder=style_encoder)
    except Exception as exc:  # a model the meta trace cannot run: no refusal on a guess
        warnings.warn(f"fastgram: the memory estimate failed ({type(exc).__name__}: {exc}); "
                      "stylising without the memory check", RuntimeWarning, stacklevel=2)
        return None
    if estimate > budget:
        batch_size, channels, height, width = batch.shape
        what = f"stylising a {batch_size}x{channels}x{height}x{width} batch"
        raise MemoryBudgetError(what, estimate, budget, source,
                                _suggested_size(generator, height, width, estimate, budget))
    return estimate


__all__ = ["MemoryBudgetError", "budget_bytes", "check_budget", "estimate_generate_bytes"]
