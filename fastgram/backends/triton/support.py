"""Which tensors the Triton kernels take: the ``supports`` answers of the
triton backend's table and the device check of its operators."""

from __future__ import annotations

from typing import Optional

import torch

from fastgram.kernels import common

_INT32_MAX = 2**31 - 1


def device_reason(t: torch.Tensor, name: str) -> Optional[str]:
    """Why the kernels cannot run on the device of ``t``, or None."""
    if t.device.type == "cuda":
        return None
    if t.device.type == "cpu":
        if common.INTERPRETED:
            return None
        return f"{name} is a CPU tensor and TRITON_INTERPRET=1 was not set before triton was imported"
    return f"{name} is on {t.device.type}; the Triton kernels run on CUDA"


def require_device(t: torch.Tensor, name: str) -> None:
    """The operators' own check: a clear error instead of a failed launch."""
    reason = device_reason(t, name)
    if reason is not None:
        raise ValueError(f"{name}: expected a CUDA tensor ({reason})")


def sample_reach(t: torch.Tensor) -> int:
    """Largest element offset within one sample of ``t``."""
    return sum((size - 1) * abs(stride) for size, stride in zip(t.shape[1:], t.stride()[1:]))


def norm_reason(t: torch.Tensor, name: str) -> Optional[str]:
    """The norm kernels index inside one sample with 32-bit offsets."""
    reason = device_reason(t, name)
    if reason is None and sample_reach(t) > _INT32_MAX:
        reason = f"{name} has a sample spanning more than 2**31 elements"
    return reason


def gram_reason(t: torch.Tensor, name: str) -> Optional[str]:
    reason = device_reason(t, name)
    if reason is None and t.device.type == "cuda" and t.dtype == torch.float64:
        # the fp64 kernels have no tensor-core path: they exist for gradcheck
        # and the interpreter, cuBLAS is far faster on a GPU
        reason = "float64 runs faster on cuBLAS (the reference backend)"
    return reason
