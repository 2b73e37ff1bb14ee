"""bfloat16 autocast where the hardware runs it natively.

On CUDA every GPU fastgram targets has bf16 tensor cores. On the CPU, only
processors with AMX or AVX512-BF16 run bf16 convolutions natively (measured
on a 2-core Xeon with AMX: the VGG19 trunk to relu4_1 at 512x512 in 0.26 s
under bf16 autocast against 0.99 s in float32); elsewhere bf16 is emulated
and slower than float32, so autocast is not used there.
"""

from __future__ import annotations

import contextlib
import functools

import torch


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AMX or AVX512-BF16)."""
    try:
        return bool(torch.backends.mkldnn.is_available()
                    and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def bf16_on_cpu(device, asked: bool) -> bool:
    """Whether :func:`autocast` with ``cpu=asked`` runs bf16 on ``device``."""
    return torch.device(device).type == "cpu" and asked and cpu_has_native_bf16()


def autocast(device: torch.device, *, cuda: bool, cpu: bool):
    """bf16 autocast on ``device`` when asked for there (``cuda`` / ``cpu``)
    and, on the CPU, when the processor runs bf16 natively; otherwise a
    context that changes nothing."""
    device = torch.device(device)
    if device.type == "cuda" and cuda:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if bf16_on_cpu(device, cpu):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
