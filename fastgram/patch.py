"""Swap fastgram's modules into an existing model, and back.

>>> report = fastgram.patch(model)      # instance norms, MUNIT-style AdaIN -> fastgram's
>>> print(report)                       # every swap, and every norm-like module left and why
>>> fastgram.unpatch(model)             # the original modules again

The swap changes each module's class in place: the module object, its
parameters, buffers, assigned attributes, hooks and ``state_dict`` keys
stay the same, so optimisers, checkpoints and references held elsewhere
keep working. It is sound because each replacement class holds exactly the
state of the protocol it replaces: :class:`fastgram.nn.InstanceNorm2d`
subclasses ``torch.nn.InstanceNorm2d`` and adds nothing, and
:class:`fastgram.nn.MUNITAdaptiveInstanceNorm2d` holds what MUNIT's AdaIN
layer holds. Recognition is in ``fastgram/patching/protocols.py``, the
numerical check before an AdaIN swap in ``probe.py``, the reasons for
other norm layers in ``norm_like.py``.

Patch before wrapping the model in ``torch.compile``: a compiled graph
already traced through the original modules keeps running them.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch

from fastgram.nn.munit import AdaptiveInstanceNorm2d as AssignedAdaIN
from fastgram.nn.normalization import InstanceNorm2d
from fastgram.patching import protocols
from fastgram.patching.norm_like import left_alone_reason
from fastgram.patching.probe import probe_assigned_adain
from fastgram.patching.report import PatchReport

__all__ = ["PatchReport", "patch", "unpatch"]

# Set on every swapped module: the class to restore on unpatch.
_ORIGINAL_CLASS = "_fastgram_original_class"

# Replacement classes named after the original, one per original name:
# code that finds its AdaIN layers by class name (MUNIT's does) still does.
_NAMED_REPLACEMENTS: Dict[str, type] = {AssignedAdaIN.__name__: AssignedAdaIN}


def _assigned_adain_class(original: type) -> type:
    name = original.__name__
    if name not in _NAMED_REPLACEMENTS:
        namespace = {"__module__": AssignedAdaIN.__module__, "__doc__": AssignedAdaIN.__doc__}
        _NAMED_REPLACEMENTS[name] = type(name, (AssignedAdaIN,), namespace)
    return _NAMED_REPLACEMENTS[name]


def _swap(module: torch.nn.Module, cls: type) -> None:
    setattr(module, _ORIGINAL_CLASS, type(module))
    module.__class__ = cls


def _assigned_adain(module: torch.nn.Module):
    """(replacement class, note) to swap ``module``, or (None, reason)."""
    mismatch = protocols.assigned_adain_mismatch(module)
    if mismatch is not None:
        return None, f"{type(module).__qualname__} is not MUNIT's AdaIN protocol: {mismatch}"
    cls = _assigned_adain_class(type(module))
    probe = probe_assigned_adain(module, cls)
    if probe.failure is not None:
        return None, f"{type(module).__qualname__} {probe.failure}"
    note = "AdaIN with assigned weight/bias (MUNIT's protocol)"
    return cls, f"{note}; probe relative error {probe.error:.1e}"


def patch(
    model: torch.nn.Module, instance_norm: bool = True, munit_adain: bool = True
) -> PatchReport:
    """Make ``model`` run its instance norms on fastgram's ops, in place.

    Args:
        model: any ``torch.nn.Module`` (the model itself may be a norm).
        instance_norm: swap every ``torch.nn.InstanceNorm2d`` (exact type,
            ``track_running_stats=False``, ``eps > 0``) for
            :class:`fastgram.nn.InstanceNorm2d`.
        munit_adain: swap every module following MUNIT's AdaIN protocol
            (recognised by its state, see :mod:`fastgram.patching.protocols`,
            and checked on a probe input to compute the same to the rounding
            of its dtype) for :class:`fastgram.nn.MUNITAdaptiveInstanceNorm2d`
            (a subclass named like the original when its name differs).

    Outputs and gradients are unchanged up to float rounding; parameters,
    buffers and ``state_dict`` keys are kept.

    Returns:
        A :class:`PatchReport` naming every swapped module and every
        norm-like module left alone with the reason: instance norms with
        running statistics, subclasses, ``eps=0``; modules that look like the
        AdaIN protocol but differ in state or fail the probe; torch's batch,
        group, layer and other norms; the model's own classes named "...Norm...".
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(instance_norm, bool):
        raise TypeError(f"instance_norm: expected True or False, got {instance_norm!r}")
    if not isinstance(munit_adain, bool):
        raise TypeError(f"munit_adain: expected True or False, got {munit_adain!r}")
    swapped: List[str] = []
    skipped: List[Tuple[str, str]] = []
    notes: List[Tuple[str, str]] = []
    for name, module in model.named_modules(remove_duplicate=True):
        if isinstance(module, torch.nn.InstanceNorm2d):
            reason = protocols.instance_norm_verdict(module)
            if reason is None and not instance_norm:
                reason = "instance_norm=False was passed"
            if reason is None:
                _swap(module, InstanceNorm2d)
                swapped.append(name)
            else:
                skipped.append((name, reason))
        elif protocols.is_fastgram_assigned_adain(module):
            skipped.append((name, "already a fastgram.nn.MUNITAdaptiveInstanceNorm2d"))
        elif protocols.is_assigned_adain_candidate(module):
            if not munit_adain:
                skipped.append((name, "munit_adain=False was passed"))
                continue
            cls, text = _assigned_adain(module)
            if cls is None:
                skipped.append((name, text))
                continue
            _swap(module, cls)
            swapped.append(name)
            notes.append((name, text))
        else:
            reason = left_alone_reason(module)
            if reason is not None:
                skipped.append((name, reason))
    return PatchReport(tuple(swapped), tuple(skipped), tuple(notes))


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
