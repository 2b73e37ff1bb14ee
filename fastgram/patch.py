"""Swap fastgram's modules into an existing model, and back.

>>> report = fastgram.patch(model)      # torch InstanceNorm2d -> fastgram's
>>> print(report)
>>> fastgram.unpatch(model)             # the original modules again

The swap changes each module's class in place: the module object, its
parameters, buffers, hooks and ``state_dict`` keys stay the same, so
optimisers, checkpoints and references held elsewhere keep working.
:class:`fastgram.nn.InstanceNorm2d` subclasses ``torch.nn.InstanceNorm2d``
and adds no state, which is what makes the in-place swap sound.

Patch before wrapping the model in ``torch.compile``: a compiled graph
already traced through torch's instance norm keeps running it.
"""

from __future__ import annotations

import dataclasses
from typing import List, Tuple

import torch

from fastgram.nn.normalization import InstanceNorm2d

# Set on every swapped module: the class to restore on unpatch.
_ORIGINAL_CLASS = "_fastgram_original_class"


@dataclasses.dataclass(frozen=True)
class PatchReport:
    """What :func:`patch` did.

    Attributes:
        swapped: qualified names of the modules now running on fastgram.
        skipped: ``(name, reason)`` of the candidates left as they were.
    """

    swapped: Tuple[str, ...] = ()
    skipped: Tuple[Tuple[str, str], ...] = ()

    def __str__(self) -> str:
        lines = [f"fastgram.patch: {len(self.swapped)} swapped, {len(self.skipped)} left"]
        lines += [f"  swapped {name or '<root>'}" for name in self.swapped]
        lines += [f"  left    {name or '<root>'}: {reason}" for name, reason in self.skipped]
        return "\n".join(lines)


def _instance_norm_verdict(module: torch.nn.Module):
    """None if ``module`` can be swapped, else why not; the module must be a
    torch.nn.InstanceNorm2d (or subclass)."""
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


def _custom_norm_reason(module: torch.nn.Module):
    """Why a module of the user's own norm-like class (its name contains
    "Norm", and it is neither torch's nor fastgram's) is left alone, so the
    report shows it was seen; None for any other module."""
    cls = type(module)
    if "Norm" not in cls.__name__ or isinstance(module, torch.nn.InstanceNorm2d):
        return None
    if cls.__module__.split(".")[0] in ("torch", "fastgram"):
        return None
    return (
        f"{cls.__qualname__} looks like a norm layer but is not a torch.nn.InstanceNorm2d; "
        "fastgram swaps only those"
    )


def patch(model: torch.nn.Module, instance_norm: bool = True) -> PatchReport:
    """Make ``model`` run its instance norms on fastgram's ops, in place.

    Args:
        model: any ``torch.nn.Module`` (the model itself may be a norm).
        instance_norm: swap every ``torch.nn.InstanceNorm2d`` (exact type,
            ``track_running_stats=False``) for
            :class:`fastgram.nn.InstanceNorm2d`; parameters and buffers are
            kept, outputs and gradients are unchanged up to float rounding.

    Returns:
        A :class:`PatchReport` naming every swapped module and every
        ``InstanceNorm2d`` left alone (subclasses, running statistics,
        ``eps=0``), with the reason, and the modules of the model's own
        norm-like classes (name containing "Norm"), which are never swapped.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(instance_norm, bool):
        raise TypeError(f"instance_norm: expected True or False, got {instance_norm!r}")
    swapped: List[str] = []
    skipped: List[Tuple[str, str]] = []
    if instance_norm:
        for name, module in model.named_modules(remove_duplicate=True):
            if not isinstance(module, torch.nn.InstanceNorm2d):
                custom = _custom_norm_reason(module)
                if custom is not None:
                    skipped.append((name, custom))
                continue
            reason = _instance_norm_verdict(module)
            if reason is not None:
                skipped.append((name, reason))
                continue
            setattr(module, _ORIGINAL_CLASS, type(module))
            module.__class__ = InstanceNorm2d
            swapped.append(name)
    return PatchReport(tuple(swapped), tuple(skipped))


def unpatch(model: torch.nn.Module) -> Tuple[str, ...]:
    """Undo :func:`patch` on ``model``: every module it swapped gets its
    original class back. Modules built as fastgram modules are untouched.

    Returns:
        The qualified names of the restored modules.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    restored = []
    for name, module in model.named_modules(remove_duplicate=True):
        original = module.__dict__.get(_ORIGINAL_CLASS)
        if original is None:
            continue
        module.__class__ = original
        del module.__dict__[_ORIGINAL_CLASS]
        restored.append(name)
    return tuple(restored)
