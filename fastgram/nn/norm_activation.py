"""A normalisation followed by an activation, fused where fastgram can."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from fastgram import ops
from fastgram.nn.normalization import InstanceNorm2d
from fastgram.ops.normalization import ACTIVATIONS


class NormActivation(torch.nn.Module):
    """``activation(norm(x))`` in one instance-norm call when possible.

    When ``norm`` is a :class:`fastgram.nn.InstanceNorm2d` without running
    statistics, the activation is fused into the
    :func:`fastgram.ops.instance_norm` call (one pass over memory on the
    kernels). Any other module (``torch.nn.InstanceNorm2d``, ``GroupNorm``,
    ``BatchNorm2d``, ...) or ``None`` (no normalisation) runs as given, then
    the activation. The norm is the submodule ``norm``, so
    :func:`fastgram.patch` can swap a torch instance norm for fastgram's and
    the fused path takes over.

    Args:
        norm: a normalisation module or ``None``.
        activation: ``None``, ``"relu"`` or ``"leaky_relu"``.
        negative_slope: slope of ``"leaky_relu"`` for negative inputs.
    """

    def __init__(
        self,
        norm: Optional[torch.nn.Module],
        activation: Optional[str] = "relu",
        negative_slope: float = 0.2,
    ):
        super().__init__()
        if norm is not None and not isinstance(norm, torch.nn.Module):
            raise TypeError(f"norm: expected a torch.nn.Module or None, got {type(norm).__name__}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {activation!r}")
        self.norm = norm
        self.activation = activation
        self.negative_slope = float(negative_slope)

    def _fusable(self, x: torch.Tensor) -> bool:
        norm = self.norm
        # Only fastgram's own forward is known to equal instance_norm(...);
        # a subclass overriding forward keeps its behaviour.
        return (
            isinstance(norm, InstanceNorm2d)
            and type(norm).forward is InstanceNorm2d.forward
            and not norm.track_running_stats
            and x.dim() == 4
            and (not norm.affine or x.shape[1] == norm.num_features)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fusable(x):
            norm = self.norm
            return ops.instance_norm(
                x, norm.weight, norm.bias, norm.eps, self.activation, self.negative_slope
            )
        y = x if self.norm is None else self.norm(x)
        if self.activation == "relu":
            return F.relu(y)
        if self.activation == "leaky_relu":
            return F.leaky_relu(y, self.negative_slope)
        return y

    def extra_repr(self) -> str:
        text = f"activation={self.activation!r}"
        if self.activation == "leaky_relu":
            text += f", negative_slope={self.negative_slope}"
        return text
