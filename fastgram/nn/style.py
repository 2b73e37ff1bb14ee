"""Gram-matrix and style-loss modules that run on fastgram's ops."""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from fastgram import ops, validation
from fastgram.backends import reference


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


class MomentLoss(torch.nn.Module):
    """Multi-layer moment-matching style loss against fixed targets (the
    AdaIN family's counterpart of :class:`StyleLoss`).

    Build it from the style image's feature maps (``MomentLoss(style_features)``:
    their per-channel mean and standard deviation are taken once, with this
    module's ``unbiased`` and ``eps``) or from precomputed ``(mean, std)``
    pairs (``MomentLoss(targets=[(mean, std), ...])``, each (C,), (1, C) or
    (B, C)). Calling it on the generated image's feature maps returns
    :func:`fastgram.ops.moment_loss`. The statistics are buffers
    (``mean_0``, ``std_0``, ...) that move with ``.to()`` and live in the
    ``state_dict``. A style batch of 1 broadcasts over any batch.
    """

    def __init__(
        self,
        style_features: Optional[Sequence[torch.Tensor]] = None,
        *,
        targets: Optional[Sequence] = None,
        weights: Optional[Sequence[float]] = None,
        unbiased: bool = False,
        eps: float = 1e-5,
    ):
        super().__init__()
        if (style_features is None) == (targets is None):
            raise ValueError("style_features, targets: give exactly one of them")
        self.unbiased = validation.boolean(unbiased, "unbiased")
        self.eps = validation.positive(eps, "eps")
        if style_features is not None:
            features = validation.tensor_list(style_features, "style_features")
            with torch.no_grad():
                targets = []
                for i, f in enumerate(features):
                    validation.tensor(f, f"style_features[{i}]", (3, 4))
                    if self.unbiased:
                        validation.unbiased_positions(f, f"style_features[{i}]")
                    targets.append(reference.channel_moments(f.detach(), self.eps, self.unbiased))
        elif isinstance(targets, tuple) and len(targets) == 2 and all(
            isinstance(t, torch.Tensor) for t in targets
        ):
            targets = [targets]
        if not isinstance(targets, (list, tuple)) or not targets:
            raise ValueError("targets: expected a non-empty list of (mean, std) pairs")
        self.weights = None if weights is None else [float(w) for w in weights]
        self.num_layers = len(targets)
        for i, pair in enumerate(targets):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise TypeError(f"targets[{i}]: expected a (mean, std) pair of tensors")
            for name, t in zip(("mean", "std"), pair):
                validation.tensor(t, f"targets[{i}] ({name})", (1, 2))
                self.register_buffer(f"{name}_{i}", t.detach().reshape(-1, t.shape[-1]).clone())

    @property
    def targets(self) -> list:
        return [(getattr(self, f"mean_{i}"), getattr(self, f"std_{i}"))
                for i in range(self.num_layers)]

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        return ops.moment_loss(features, self.targets, self.weights, self.unbiased, eps=self.eps)

    def extra_repr(self) -> str:
        return (f"layers={self.num_layers}, weights={self.weights}, unbiased={self.unbiased}, "
                f"eps={self.eps}")
