"""Memory layout of the gradients the fused kernels write."""

from __future__ import annotations

import torch


def grad_format(x: torch.Tensor) -> torch.memory_format:
    """channels_last for channels_last 4-D tensors, contiguous otherwise:
    the layouts every kernel reads and writes in place."""
    channels_last = (
        x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    )
    return torch.channels_last if channels_last else torch.contiguous_format


def empty_grad(x: torch.Tensor) -> torch.Tensor:
    """An uninitialised tensor shaped like ``x`` in :func:`grad_format`."""
    return torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=grad_format(x))
