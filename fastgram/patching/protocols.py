"""Recognising the module protocols fastgram can take over in place.

Two protocols: ``torch.nn.InstanceNorm2d`` itself, and MUNIT's AdaIN layer
(:mod:`fastgram.nn.munit`). The second is recognised by what the module
holds, not by its class: ``num_features``, ``eps`` and ``momentum``
attributes, ``weight``/``bias`` as plain attributes (not parameters), and
exactly the ``running_mean``/``running_var`` buffers of ``num_features``
values. A class named ``AdaptiveInstanceNorm2d`` outside torch and fastgram
is a candidate too, so that one missing piece is reported rather than
silently ignored. Recognition says only that the state fits; the probe
(:mod:`fastgram.patching.probe`) decides whether the computation does.
"""

from __future__ import annotations

import numbers
from typing import Optional

import torch

from fastgram.nn.munit import AdaptiveInstanceNorm2d as AssignedAdaIN
from fastgram.nn.normalization import InstanceNorm2d

ADAIN_CLASS_NAME = "AdaptiveInstanceNorm2d"
_ADAIN_ATTRIBUTES = ("num_features", "eps", "momentum")
_ADAIN_BUFFERS = ("running_mean", "running_var")


def is_foreign(module: torch.nn.Module) -> bool:
    """True for a class written outside torch and fastgram (the user's)."""
    return type(module).__module__.split(".")[0] not in ("torch", "fastgram")


def instance_norm_verdict(module: torch.nn.Module) -> Optional[str]:
    """None if a ``torch.nn.InstanceNorm2d`` (or subclass) can be swapped,
    else why not."""
    if isinstance(module, InstanceNorm2d):
        return "already a fastgram.nn.InstanceNorm2d"
    if type(module) is not torch.nn.InstanceNorm2d:
        return (
            f"{type(module).__qualname__} subclasses torch.nn.InstanceNorm2d; "
            "its own behaviour is kept"
        )
    if module.track_running_stats:
        return (
            "track_running_stats=True: uses and updates running statistics, "
            "which fastgram's fused op does not"
        )
    if not module.eps > 0:
        return (
            f"eps={module.eps}: fastgram's op needs eps > 0 (a constant channel would "
            "divide by zero), so torch's own module is kept"
        )
    return None


def is_assigned_adain_candidate(module: torch.nn.Module) -> bool:
    """A foreign module that holds MUNIT's AdaIN state, or is named like it."""
    if not is_foreign(module):
        return False
    if type(module).__name__ == ADAIN_CLASS_NAME:
        return True
    return all(hasattr(module, a) for a in _ADAIN_ATTRIBUTES) and all(
        b in module._buffers for b in _ADAIN_BUFFERS
    )


def assigned_adain_mismatch(module: torch.nn.Module) -> Optional[str]:
    """None when a candidate's state fits MUNIT's protocol exactly (so the
    class can be swapped in place), else the first thing that does not."""
    for attribute in _ADAIN_ATTRIBUTES:
        if not hasattr(module, attribute):
            return f"has no {attribute!r} attribute"
    n = module.num_features
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        return f"num_features={n!r} is not a positive int"
    if isinstance(module.eps, bool) or not isinstance(module.eps, numbers.Real):
        return f"eps={module.eps!r} is not a number"
    if not module.eps > 0:
        return f"eps={module.eps}: fastgram's op needs eps > 0"
    for name in ("weight", "bias"):
        if name in module._parameters:
            return f"{name} is a parameter, not an attribute assigned before forward"
        if name not in module.__dict__:
            return f"has no {name!r} attribute to assign"
    buffers = set(module._buffers)
    if buffers != set(_ADAIN_BUFFERS):
        return f"buffers {sorted(buffers)}, expected exactly {list(_ADAIN_BUFFERS)}"
    for name in _ADAIN_BUFFERS:
        buf = module._buffers[name]
        if buf is None or tuple(buf.shape) != (n,) or not buf.is_floating_point():
            shape = None if buf is None else tuple(buf.shape)
            return f"buffer {name} has shape {shape}, expected ({n},) floating point"
    if module._parameters:
        return f"has parameters {sorted(module._parameters)} its forward may use"
    if module._modules:
        return f"has submodules {sorted(module._modules)} its forward may use"
    return None


def is_fastgram_assigned_adain(module: torch.nn.Module) -> bool:
    return isinstance(module, AssignedAdaIN)
