"""What every fastgram Triton launcher shares: the interpreter flag, the
device's SM count, output allocation (NaN-poisoned on request), temporary
overrides of the tuning dataclasses, and the launch through ``wrap_triton``.

Launchers call these through the module (``common.launch(...)``), so that a
test can stand in for any of them in one place."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Iterator, Optional, TypeVar

import torch
from torch.library import wrap_triton

# Chosen when triton is first imported: TRITON_INTERPRET=1 runs the kernels'
# Python on the CPU (testing only).
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


@dataclasses.dataclass
class DebugOptions:
    """poison: fill every output and workspace with NaN before the launch,
    so that an element a kernel forgets to write cannot pass unnoticed."""

    poison: bool = False


debug = DebugOptions()

Settings = TypeVar("Settings")


@contextlib.contextmanager
def override(settings: Settings, **changes) -> Iterator[Settings]:
    """Temporarily change fields of a settings dataclass instance (tests,
    benchmarks): ``with override(debug, poison=True): ...``."""
    fields = {f.name for f in dataclasses.fields(settings)}
    unknown = set(changes) - fields
    if unknown:
        raise ValueError(f"override: {type(settings).__name__} has no fields {sorted(unknown)}")
    saved = dataclasses.replace(settings)
    for name, value in changes.items():
        setattr(settings, name, value)
    try:
        yield settings
    finally:
        for name in fields:
            setattr(settings, name, getattr(saved, name))


def new_output(like: torch.Tensor, shape: Optional[tuple] = None,
               dtype: Optional[torch.dtype] = None,
               memory_format: torch.memory_format = torch.preserve_format) -> torch.Tensor:
    """An uninitialised buffer on the device of ``like``: shaped and laid out
    like it (or in ``memory_format``), or contiguous of ``shape``; in
    ``dtype``, else that of ``like``."""
    if shape is None:
        out = torch.empty_like(like, dtype=dtype, memory_format=memory_format)
    else:
        out = torch.empty(shape, dtype=dtype or like.dtype, device=like.device)
    if debug.poison:
        out.fill_(float("nan"))
    return out


def sm_count(device: torch.device) -> Optional[int]:
    """Streaming multiprocessors of the CUDA device the kernels run compiled
    on; None where they run interpreted, and the plans size for that."""
    if INTERPRETED or device.type != "cuda":
        return None
    return torch.cuda.get_device_properties(device).multi_processor_count


def launch(kernel, grid, *args, **kwargs) -> None:
    """Launch through ``wrap_triton`` (so torch.compile traces the kernel) on
    the tensors' own CUDA device (Triton launches on the current one).

    Fake tensors (torch.compile, opcheck) carry no data: a compiled kernel is
    only recorded for them, but the interpreter would try to run it, so under
    the interpreter the launch is skipped, and the outputs' metadata is all
    that fake mode needs."""
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    if INTERPRETED and any(torch._subclasses.fake_tensor.is_fake(t) for t in tensors):
        if torch._C._get_dispatch_mode(torch._C._TorchDispatchModeKey.PROXY) is not None:
            # a graph is being recorded (AOT autograd, make_fx): without the
            # kernel it would compute nothing, so refuse rather than mislead
            raise RuntimeError(
                "torch.compile cannot trace interpreted Triton kernels into a graph: "
                "compile on a CUDA device, or use backend='eager' under TRITON_INTERPRET=1"
            )
        return
    device = tensors[0].device
    if device.type == "cuda":
        with torch.cuda.device(device):
            wrap_triton(kernel)[grid](*args, **kwargs)
    else:
        wrap_triton(kernel)[grid](*args, **kwargs)
