"""The numerical check before a module's class is swapped.

A module whose state fits a protocol may still compute something else (a
different eps placement, unbiased variance, an extra term). So the module's
own ``forward`` and the replacement's run on the same small random input,
with random assigned parameters, in training and in evaluation mode; the
swap happens only when they agree to the rounding of the module's dtype.
The module is left exactly as found: its assigned attributes, buffers and
mode are restored, and its hooks are not run.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import torch

# Relative error allowed between the module and its replacement: the
# rounding of the dtype (ENGINEERING.md, numerical policy).
_TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}
_HALF_TOLERANCE = 1e-2
_SHAPE = (2, 5, 7)  # batch and spatial size of the probe input


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """``error``: largest relative error seen (None if it could not be
    measured); ``failure``: why the module is not swapped, None if it is."""

    error: Optional[float]
    failure: Optional[str]


def _relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.detach().double(), ref.detach().double()
    if not bool(torch.isfinite(out).all()) or not bool(torch.isfinite(ref).all()):
        return float("inf")
    norm = torch.linalg.vector_norm(ref).clamp_min(1e-300)
    return float(torch.linalg.vector_norm(out - ref) / norm)


def _probe_inputs(module: torch.nn.Module):
    """Input (B, C, H, W) off zero mean and flat (B·C,) weight and bias, in
    the dtype and on the device of the module's buffers."""
    buffer = module.running_mean
    dtype = buffer.dtype
    gen = torch.Generator().manual_seed(20261206)  # fixed: the same verdict every time
    batch, height, width = _SHAPE
    n = batch * module.num_features
    x = torch.randn(batch, module.num_features, height, width, generator=gen, dtype=torch.float64)
    x = 2.0 * x + 0.7
    weight = torch.rand(n, generator=gen, dtype=torch.float64) + 0.5
    bias = torch.randn(n, generator=gen, dtype=torch.float64)
    return [t.to(dtype=dtype, device=buffer.device) for t in (x, weight, bias)]


def probe_assigned_adain(module: torch.nn.Module, replacement: type) -> ProbeResult:
    """Compare ``module``'s forward with ``replacement.forward`` on it (the
    module keeps its state; only the code would change)."""
    dtype = module.running_mean.dtype
    tolerance = _TOLERANCE.get(dtype, _HALF_TOLERANCE)
    x, weight, bias = _probe_inputs(module)
    saved_attrs = {k: module.__dict__[k] for k in ("weight", "bias")}
    saved_buffers = {k: b.detach().clone() for k, b in module._buffers.items()}
    saved_mode = module.training
    worst = 0.0
    try:
        for training in (True, False):
            module.training = training
            with torch.no_grad():
                module.weight, module.bias = weight, bias
                try:
                    # the class's forward, not module(x): user hooks must not see the probe
                    theirs = type(module).forward(module, x.clone())
                except Exception as exc:  # any failure means: leave it alone
                    return ProbeResult(None, f"its forward failed on the probe input: {exc}")
                module.weight, module.bias = weight, bias
                ours = replacement.forward(module, x.clone())
            if not isinstance(theirs, torch.Tensor) or theirs.shape != ours.shape:
                shape = tuple(theirs.shape) if isinstance(theirs, torch.Tensor) else type(theirs)
                expected = tuple(ours.shape)
                return ProbeResult(None, f"its forward returned {shape}, expected {expected}")
            error = _relative_error(ours, theirs)
            worst = max(worst, error)
            if not error <= tolerance:
                mode = "training" if training else "evaluation"
                return ProbeResult(
                    error,
                    f"computes something else: on a probe input in {mode} mode it differs from "
                    f"instance norm with the assigned weight/bias by {error:.1e} (relative), "
                    f"more than {dtype} rounding ({tolerance:.0e})",
                )
        return ProbeResult(worst, None)
    finally:
        module.training = saved_mode
        module.__dict__.update(saved_attrs)
        with torch.no_grad():
            for k, b in saved_buffers.items():
                module._buffers[k].copy_(b)
