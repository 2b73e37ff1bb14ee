"""Gram-matrix and style-loss modules that run on fastgram's ops."""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from fastgram import ops


class GramMatrix(torch.nn.Module):
    """Module form of :func:`fastgram.ops.gram_matrix`."""

    def __init__(self, normalize: bool = True, scale: Optional[float] = None):
        super().__init__()
        self.normalize = normalize
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.gram_matrix(x, self.normalize, scale=self.scale)

    def extra_repr(self) -> str:
        return f"normalize={self.normalize}, scale={self.scale}"


class StyleLoss(torch.nn.Module):
    """Multi-layer Gram style loss against fixed targets.

    Build it from the style image's feature maps (``StyleLoss(style_features)``)
    or from precomputed Gram matrices (``StyleLoss(targets=grams)``); calling
    it on the generated image's feature maps returns
    :func:`fastgram.ops.style_loss`. Targets are stored as buffers
    (``target_0``, ``target_1``, ...) so they move with ``.to()`` and live in
    the ``state_dict``.
    """

    def __init__(
        self,
        style_features: Optional[Sequence[torch.Tensor]] = None,
        *,
        targets: Optional[Sequence[torch.Tensor]] = None,
        weights: Optional[Sequence[float]] = None,
        normalize: bool = True,
    ):
        super().__init__()
        if (style_features is None) == (targets is None):
            raise ValueError("style_features, targets: give exactly one of them")
        if style_features is not None:
            if isinstance(style_features, torch.Tensor):
                style_features = [style_features]
            with torch.no_grad():
                targets = [
                    ops.gram_matrix(f.detach(), normalize).mean(0) for f in style_features
                ]
        elif isinstance(targets, torch.Tensor):
            targets = [targets]
        self.normalize = normalize
        self.weights = None if weights is None else [float(w) for w in weights]
        self.num_layers = len(targets)
        for i, t in enumerate(targets):
            self.register_buffer(f"target_{i}", t.detach().clone())

    @property
    def targets(self) -> list:
        return [getattr(self, f"target_{i}") for i in range(self.num_layers)]

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        return ops.style_loss(features, self.targets, self.weights, self.normalize)

    def extra_repr(self) -> str:
        return f"layers={self.num_layers}, weights={self.weights}, normalize={self.normalize}"
