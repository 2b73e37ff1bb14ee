"""Why a norm-like module that follows no swappable protocol is left alone,
so the report shows every normalisation layer it saw, not only the swaps."""

from __future__ import annotations

from typing import Optional

import torch

from fastgram.patching.protocols import is_foreign

_SWAPPABLE = (
    "fastgram swaps torch.nn.InstanceNorm2d and AdaIN layers with assigned "
    "weight/bias (MUNIT's protocol)"
)


def _torch_reason(module: torch.nn.Module) -> Optional[str]:
    name = type(module).__name__
    if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
        return f"{name}: statistics over the batch, not an instance norm"
    if isinstance(module, torch.nn.GroupNorm):
        if module.num_groups == module.num_channels:
            return (
                f"GroupNorm with one channel per group ({module.num_groups}) computes an "
                f"instance norm, but its state is not InstanceNorm2d's; {_SWAPPABLE}"
            )
        if module.num_groups == 1:
            return "GroupNorm with 1 group: a layer norm over (C, H, W), not an instance norm"
        return (
            f"GroupNorm with {module.num_groups} groups of "
            f"{module.num_channels // module.num_groups} channels: statistics over several "
            "channels, not an instance norm"
        )
    if isinstance(module, torch.nn.modules.instancenorm._InstanceNorm):
        return f"{name}: not 2-d; fastgram swaps InstanceNorm2d"
    layer_norms = (torch.nn.LayerNorm,)
    if hasattr(torch.nn, "RMSNorm"):  # torch >= 2.4
        layer_norms += (torch.nn.RMSNorm,)
    if isinstance(module, layer_norms):
        return f"{name}: statistics over the last dimensions of each sample, not an instance norm"
    if isinstance(module, (torch.nn.LocalResponseNorm, torch.nn.CrossMapLRN2d)):
        return f"{name}: normalises across neighbouring channels, not an instance norm"
    return None


def left_alone_reason(module: torch.nn.Module) -> Optional[str]:
    """Why ``module`` is left alone if it is norm-like (torch's normalisation
    layers other than InstanceNorm2d, or a foreign class whose name contains
    "Norm"); None for modules that are not norm-like."""
    cls = type(module)
    if is_foreign(module) and "Norm" in cls.__name__:
        kind = "a layer norm by its name, " if "LayerNorm" in cls.__name__ else ""
        return (
            f"{cls.__qualname__} looks like a norm layer ({kind}follows no swappable "
            f"protocol); {_SWAPPABLE}"
        )
    if cls.__module__.startswith("torch."):
        return _torch_reason(module)
    return None
