"""Normalisation modules that run on fastgram's ops."""

from __future__ import annotations

from typing import Optional

import torch

from fastgram import ops, validation


class InstanceNorm2d(torch.nn.InstanceNorm2d):
    """Drop-in for :class:`torch.nn.InstanceNorm2d` running on fastgram's op.

    Same constructor arguments, parameters, buffers and ``state_dict`` keys
    (it subclasses the torch module). With ``track_running_stats=True`` the
    running statistics must be read or updated, which the fused op does not
    do, so that mode runs torch's own implementation.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.track_running_stats:
            return super().forward(input)
        if input.dim() == 3:  # unbatched (C, H, W), as torch accepts
            return self.forward(input.unsqueeze(0)).squeeze(0)
        self._check_input_dim(input)
        if input.shape[1] != self.num_features and self.affine:
            raise ValueError(
                f"input: expected {self.num_features} channels (num_features), "
                f"got shape {tuple(input.shape)}"
            )
        if input.shape[2] * input.shape[3] == 1:
            # torch refuses statistics of a single position (they would
            # normalise everything to zero); so does the drop-in
            raise ValueError(
                f"input: expected more than 1 spatial element, got input size {tuple(input.shape)}"
            )
        return ops.instance_norm(input, self.weight, self.bias, self.eps)


class AdaIN(torch.nn.Module):
    """Adaptive instance normalisation of content features by style features.

    ``forward(content, style, alpha=None)`` returns
    :func:`fastgram.ops.adain` of them; ``alpha`` defaults to the one given
    at construction. ``unbiased=True`` takes the variances over H*W - 1
    (pytorch-AdaIN's convention; see :func:`fastgram.ops.adain`).
    """

    def __init__(self, eps: float = 1e-5, alpha: float = 1.0, unbiased: bool = False):
        super().__init__()
        self.eps = eps
        self.alpha = alpha
        self.unbiased = validation.boolean(unbiased, "unbiased")

    def forward(
        self, content: torch.Tensor, style: torch.Tensor, alpha: Optional[float] = None
    ) -> torch.Tensor:
        return ops.adain(content, style, self.eps, self.alpha if alpha is None else alpha,
                         self.unbiased)

    def extra_repr(self) -> str:
        return f"eps={self.eps}, alpha={self.alpha}, unbiased={self.unbiased}"
