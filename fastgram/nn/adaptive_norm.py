"""Instance normalisation with per-sample affine parameters given at call time."""

from __future__ import annotations

from typing import Optional

import torch

from fastgram import ops
from fastgram.ops.normalization import ACTIVATIONS


class AdaptiveInstanceNorm2d(torch.nn.Module):
    """Instance norm whose scale and shift come from outside, per sample.

    ``forward(x, weight, bias)`` returns
    ``act(weight * (x - mu) / sqrt(var + eps) + bias)`` with ``weight`` and
    ``bias`` of shape (B, C) (or (C,), shared by the batch), as a style-code
    MLP produces them (the AdaIN layers of MUNIT-like decoders). The
    activation is fused into the same :func:`fastgram.ops.instance_norm`
    call. The module holds no parameters.

    Args:
        num_features: C, the channel count of ``x``.
        eps: positive number added to the variance.
        activation: ``None``, ``"relu"`` or ``"leaky_relu"``.
        negative_slope: slope of ``"leaky_relu"`` for negative inputs.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        activation: Optional[str] = None,
        negative_slope: float = 0.2,
    ):
        super().__init__()
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features <= 0:
            raise ValueError(f"num_features: expected a positive int, got {num_features!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {activation!r}")
        if not eps > 0:
            raise ValueError(f"eps: expected a positive number, got {eps!r}")
        self.num_features = num_features
        self.eps = float(eps)
        self.activation = activation
        self.negative_slope = float(negative_slope)

    def forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        if isinstance(x, torch.Tensor) and x.dim() >= 2 and x.shape[1] != self.num_features:
            raise ValueError(
                f"x: expected {self.num_features} channels (num_features), "
                f"got shape {tuple(x.shape)}"
            )
        return ops.instance_norm(x, weight, bias, self.eps, self.activation, self.negative_slope)

    def extra_repr(self) -> str:
        text = f"{self.num_features}, eps={self.eps}, activation={self.activation!r}"
        if self.activation == "leaky_relu":
            text += f", negative_slope={self.negative_slope}"
        return text
