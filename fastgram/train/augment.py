"""Colour augmentation of style batches.

A model meant for styles it never saw must see many more palettes than a
handful of training images have. Each style crop gets, with a strength in
[0, 1]: a hue rotation (about the grey axis), a saturation and a contrast
scale, a gamma curve, and with some probability a channel permutation or a
grey conversion. Texture is untouched; the palette and tonal range change.

All randomness comes from the generator passed in, so a run resumes exactly.
"""

from __future__ import annotations

import math

import torch

from fastgram import validation

_LUMA = torch.tensor([0.299, 0.587, 0.114])


def _hue_rotation(angle: float) -> torch.Tensor:
    """3x3 matrix rotating RGB colours by ``angle`` radians about (1, 1, 1)."""
    axis = torch.ones(3) / math.sqrt(3.0)
    cross = torch.tensor([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return (
        math.cos(angle) * torch.eye(3)
        + math.sin(angle) * cross
        + (1 - math.cos(angle)) * torch.outer(axis, axis)
    )


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def colour_jitter(batch: torch.Tensor, generator: torch.Generator, strength: float) -> torch.Tensor:
    """Each image of ``batch`` (B, 3, H, W) in [0, 1] with its own random
    palette change; ``strength`` 0 returns ``batch`` unchanged."""
    validation.tensor(batch, "batch", (4,))
    if batch.shape[1] != 3:
        raise ValueError(f"batch: expected RGB images (B, 3, H, W), got shape {tuple(batch.shape)}")
    strength = validation.in_unit_interval(strength, "strength")
    if strength == 0:
        return batch
    out = []
    luma = _LUMA.to(batch)
    for image in batch:
        matrix = _hue_rotation(_uniform(generator, -math.pi, math.pi) * strength)
        if torch.rand((), generator=generator).item() < 0.25 * strength:
            matrix = matrix[torch.randperm(3, generator=generator)]
        saturation = math.exp(_uniform(generator, -0.8, 0.5) * strength)
        if torch.rand((), generator=generator).item() < 0.1 * strength:
            saturation = 0.0
        contrast = math.exp(_uniform(generator, -0.5, 0.4) * strength)
        gamma = math.exp(_uniform(generator, -0.5, 0.5) * strength)
        x = torch.einsum("ij,jhw->ihw", matrix.to(batch), image)
        grey = torch.einsum("c,chw->hw", luma, x).unsqueeze(0)
        x = grey + saturation * (x - grey)
        mean = x.mean()
        x = (mean + contrast * (x - mean)).clamp(0, 1)
        out.append(x.pow(gamma))
    return torch.stack(out)
