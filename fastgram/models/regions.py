"""AdaIN per region: each style's statistics given to the part of the
content that a soft mask assigns to it.

AdaIN replaces a feature map's channel statistics by a style's. With several
styles on several regions, the statistics that must be replaced are those
of each region's own content, not of the whole image (Huang & Belongie
2017, section 7, spatial control): a region of sky normalised with the
whole photo's mean and deviation keeps the photo's contrast between sky and
ground, and a style then inherits it. So every region ``k`` is normalised
with the mean and variance of the features weighted by its mask ``m_k``,
given style ``k``'s scale and shift, and the results are blended by the
masks:

    y = sum_k m_k * (w_k * (x - mean_k) / sqrt(var_k + eps) + b_k)

with ``sum_k m_k = 1`` at every position. With hard (0/1) masks this is
plain AdaIN inside each region; soft edges blend the neighbouring regions'
results smoothly.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def masked_statistics(x: torch.Tensor, masks: torch.Tensor):
    """Per region and channel, the mask-weighted mean and (biased) variance
    of ``x`` (B, C, H, W) under ``masks`` (K, 1, H, W): two (B, K, C)."""
    means, variances = [], []
    for mask in masks:  # one region at a time: no (K, C, H, W) temporary
        weight = mask.double().sum().clamp_min(1e-12)
        mean = (x * mask).sum(dim=(2, 3), dtype=torch.float64) / weight
        centred = x - mean.to(x.dtype)[..., None, None]
        var = (centred * centred * mask).sum(dim=(2, 3), dtype=torch.float64) / weight
        means.append(mean)
        variances.append(var)
    mean, var = torch.stack(means, dim=1), torch.stack(variances, dim=1)
    return mean.to(x.dtype), var.to(x.dtype)


def regional_adain(x: torch.Tensor, masks: torch.Tensor, weight: torch.Tensor,
                   bias: torch.Tensor, eps: float, activation: Optional[str] = None
                   ) -> torch.Tensor:
    """The formula of the module docstring. ``x`` (B, C, H, W); ``masks``
    (K, 1, H, W) summing to 1 over K; ``weight``, ``bias`` (B, K, C)."""
    x = x.float()
    mean, var = masked_statistics(x, masks)
    scale = weight.float() * torch.rsqrt(var + eps)                # (B, K, C)
    shift = bias.float() - mean * scale
    out = torch.zeros_like(x)
    for k in range(masks.shape[0]):
        out += masks[k] * (x * scale[:, k, :, None, None] + shift[:, k, :, None, None])
    if activation == "relu":
        return F.relu(out)
    if activation == "leaky_relu":
        return F.leaky_relu(out, 0.2)
    return out


__all__ = ["masked_statistics", "regional_adain"]
