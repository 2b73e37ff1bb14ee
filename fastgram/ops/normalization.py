"""``instance_norm`` and ``adain``: public, validated entry points.

Both use one statistics convention (see :mod:`fastgram.ops.reference`): per
sample and channel, the mean and the *biased* variance over the spatial
positions, and ``sigma = sqrt(var + eps)``. ``adain(..., unbiased=True)``
divides the variances by H*W - 1 instead (pytorch-AdaIN's convention).
"""

from __future__ import annotations

from typing import Optional

import torch

from fastgram import dispatch, validation

ACTIVATIONS = (None, "relu", "leaky_relu")


def instance_norm(
    x: torch.Tensor,
    weight: Optional[torch.Tensor] = None,
    bias: Optional[torch.Tensor] = None,
    eps: float = 1e-5,
    activation: Optional[str] = None,
    negative_slope: float = 0.01,
    *,
    backend: Optional[str] = None,
) -> torch.Tensor:
    """Instance normalisation with optional affine step and fused activation.

    ``y = act(weight * (x - mu) / sqrt(var + eps) + bias)``, statistics per
    sample and channel over the spatial positions, biased variance: the
    numerics of ``torch.nn.functional.instance_norm`` without running stats.

    Args:
        x: (B, C, H, W) or (B, C, N).
        weight, bias: (C,) shared by all samples, or (B, C) per sample (the
            form a style-code decoder produces); ``None`` skips the term.
        eps: positive number added to the variance.
        activation: ``None``, ``"relu"`` or ``"leaky_relu"``, applied after
            the affine step.
        negative_slope: slope of ``"leaky_relu"`` for negative inputs.
        backend: see :func:`fastgram.ops.gram_matrix`.

    Returns:
        A tensor of the shape and dtype of ``x`` (float16/bfloat16 inputs
        are computed in float32).
    """
    validation.tensor(x, "x", (3, 4))
    validation.channel_params(weight, "weight", x, "x")
    validation.channel_params(bias, "bias", x, "x")
    eps = validation.positive(eps, "eps")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {activation!r}")
    negative_slope = validation.real_number(negative_slope, "negative_slope")
    args = (x, weight, bias, eps, activation, negative_slope)
    impl = dispatch.select("instance_norm", x.device, args, backend)
    return impl(*args)


def adain(
    content: torch.Tensor,
    style: torch.Tensor,
    eps: float = 1e-5,
    alpha: float = 1.0,
    unbiased: bool = False,
    *,
    backend: Optional[str] = None,
) -> torch.Tensor:
    """Adaptive instance normalisation (Huang & Belongie, 2017) with blending.

    ``out = sigma_s * (c - mu_c) / sigma_c + mu_s``, then
    ``alpha * out + (1 - alpha) * c``. Statistics per sample and channel over
    the N = H*W spatial positions, for content and style alike:
    ``mu = sum(x) / N``, ``var = sum((x - mu)^2) / D`` and
    ``sigma = sqrt(var + eps)``, with ``D = N`` by default (the biased
    variance, as ``instance_norm``: ``adain(c, s)`` equals
    ``instance_norm(c, weight=sigma_s, bias=mu_s)``) and ``D = N - 1`` with
    ``unbiased=True``: the convention of the AdaIN paper's code
    (pytorch-AdaIN: ``var()`` with its default correction, eps added to the
    variance), which that option reproduces to float32 rounding, also when
    style and content differ in spatial size.

    Args:
        content: (B, C, H, W) or (B, C, N).
        style: same rank and channels as ``content``; batch B or 1 (one style
            for the whole batch); its spatial size may differ.
        eps: positive number added to both variances.
        alpha: blend in [0, 1]; 0 returns ``content``, 1 full stylisation.
        unbiased: divide the variances by H*W - 1 (needs H*W >= 2 in
            content and style) instead of H*W.
        backend: see :func:`fastgram.ops.gram_matrix`.

    Returns:
        A tensor of the shape and dtype of ``content``.
    """
    validation.tensor(content, "content", (3, 4))
    validation.tensor(style, "style", (3, 4))
    validation.same_device(style, "style", content, "content")
    if style.dim() != content.dim():
        raise ValueError(
            f"style: expected a {content.dim()}-dimensional tensor like content, "
            f"got shape {tuple(style.shape)}"
        )
    if style.shape[1] != content.shape[1]:
        raise ValueError(
            f"style: expected {content.shape[1]} channels like content, "
            f"got shape {tuple(style.shape)}"
        )
    if style.shape[0] not in (1, content.shape[0]):
        raise ValueError(
            f"style: expected batch size {content.shape[0]} like content, or 1, "
            f"got shape {tuple(style.shape)}"
        )
    eps = validation.positive(eps, "eps")
    alpha = validation.in_unit_interval(alpha, "alpha")
    unbiased = validation.boolean(unbiased, "unbiased")
    if unbiased:
        validation.unbiased_positions(content, "content")
        validation.unbiased_positions(style, "style")
    if alpha == 0.0:
        # exactly the content, whatever a kernel's fused blend would round to
        return content.clone()
    args = (content, style, eps, alpha, unbiased)
    impl = dispatch.select("adain", content.device, args, backend)
    return impl(*args)
