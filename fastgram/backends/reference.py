"""Pure-PyTorch reference implementations of every fastgram op.

This is the ground truth every faster backend is tested against, and what
runs where no faster backend can. It is written for reading, not speed.

The functions take already validated, canonical arguments (see the public
wrappers in :mod:`fastgram.ops`): scales are resolved to floats, weights to a
list of floats, and so on. Every faster backend's table holds functions with
the same signatures.

Precision: float16 and bfloat16 inputs are computed in float32 and the result
is cast back to the input dtype (losses stay float32); float32 and float64
are computed in their own dtype. Autocast does not change this: the Gram
products run outside it (:func:`outside_autocast`), as the fused kernels of
the other backends, which autocast never sees, do.

Statistics convention (instance norm and AdaIN alike): per sample and
channel over the spatial positions, mean ``mu`` and *biased* variance
``var`` (divided by H*W, as ``torch.nn.functional.instance_norm`` does), and
``sigma = sqrt(var + eps)``: eps enters inside the square root. AdaIN and the
moment loss also take ``unbiased=True``: the variance is then divided by
H*W - 1 (pytorch-AdaIN's ``var()``), still ``sigma = sqrt(var + eps)``.
"""

from __future__ import annotations

import contextlib
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from fastgram.backends import OpImpl


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype arithmetic runs in for inputs of ``dtype``."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def outside_autocast(device: torch.device):
    """A context in which matmuls on ``device`` run in their inputs' dtype.

    The fused Gram and style-loss kernels have no autocast rule, so under
    autocast they still compute from the input dtype (fp32 accumulation);
    ``torch.bmm`` would be cast to the autocast dtype instead. The plain
    PyTorch paths step out of autocast, so every backend computes alike."""
    kind = device.type
    if torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind):
        return torch.autocast(kind, enabled=False)
    return contextlib.nullcontext()


def _channel_stats(x: torch.Tensor, unbiased: bool = False):
    """Per-(sample, channel) mean and variance over all spatial dims, divided
    by H*W (biased) or H*W - 1 (unbiased)."""
    dims = tuple(range(2, x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, unbiased=unbiased, keepdim=True)
    return mean, var


def as_channel_param(p: torch.Tensor, ndim: int) -> torch.Tensor:
    """(C,) -> (1, C, 1, ...) and (B, C) -> (B, C, 1, ...) for broadcasting."""
    if p.dim() == 1:
        p = p.unsqueeze(0)
    return p.reshape(p.shape + (1,) * (ndim - 2))


def activate(y: torch.Tensor, activation: Optional[str], negative_slope: float):
    if activation is None:
        return y
    if activation == "relu":
        return F.relu(y)
    if activation == "leaky_relu":
        return F.leaky_relu(y, negative_slope)
    raise ValueError(f"activation: unknown activation {activation!r}")


def gram_matrix(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale * F @ F^T`` per sample, F = x viewed as (B, C, N)."""
    f = x.flatten(2).to(compute_dtype(x.dtype))
    with outside_autocast(x.device):
        g = torch.bmm(f, f.transpose(1, 2))
    return (g * scale).to(x.dtype)


def style_loss(
    features: Sequence[torch.Tensor],
    targets: Sequence[torch.Tensor],
    weights: Sequence[float],
    scales: Sequence[float],
) -> torch.Tensor:
    """``sum_l w_l * mean((gram(F_l) - T_l)^2)``; T_l (C, C) broadcasts over B."""
    total = None
    for f, t, w, s in zip(features, targets, weights, scales):
        cdt = compute_dtype(f.dtype)
        flat = f.flatten(2).to(cdt)
        with outside_autocast(f.device):
            gram = torch.bmm(flat, flat.transpose(1, 2)) * s
        diff = gram - t.to(cdt)
        term = w * (diff * diff).mean()
        total = term if total is None else total + term
    return total


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean((features - target)^2)``."""
    cdt = compute_dtype(features.dtype)
    return F.mse_loss(features.to(cdt), target.to(cdt))


def instance_norm(
    x: torch.Tensor,
    weight: Optional[torch.Tensor],
    bias: Optional[torch.Tensor],
    eps: float,
    activation: Optional[str],
    negative_slope: float,
) -> torch.Tensor:
    """``act(weight * (x - mu) / sqrt(var + eps) + bias)`` per sample and channel."""
    cdt = compute_dtype(x.dtype)
    xc = x.to(cdt)
    mean, var = _channel_stats(xc)
    y = (xc - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        y = y * as_channel_param(weight.to(cdt), x.dim())
    if bias is not None:
        y = y + as_channel_param(bias.to(cdt), x.dim())
    return activate(y, activation, negative_slope).to(x.dtype)


def adain(content: torch.Tensor, style: torch.Tensor, eps: float, alpha: float,
          unbiased: bool = False) -> torch.Tensor:
    """``alpha * (sigma_s * (c - mu_c) / sigma_c + mu_s) + (1 - alpha) * c``.

    ``style`` has the batch size of ``content`` or 1 (one style for all);
    ``unbiased`` divides both variances by H*W - 1 instead of H*W.
    """
    cdt = compute_dtype(content.dtype)
    c = content.to(cdt)
    s = style.to(cdt)
    c_mean, c_var = _channel_stats(c, unbiased)
    s_mean, s_var = _channel_stats(s, unbiased)
    stylized = (c - c_mean) * torch.rsqrt(c_var + eps) * torch.sqrt(s_var + eps) + s_mean
    return (alpha * stylized + (1.0 - alpha) * c).to(content.dtype)


def channel_moments(x: torch.Tensor, eps: float, unbiased: bool):
    """(mean, sigma) of ``x`` per sample and channel, (B, C) in the compute
    dtype: ``sigma = sqrt(var + eps)``, var over H*W (or H*W - 1)."""
    flat = x.flatten(2).to(compute_dtype(x.dtype))
    var, mean = torch.var_mean(flat, dim=2, unbiased=unbiased)
    return mean, torch.sqrt(var + eps)


def moment_loss(
    features: Sequence[torch.Tensor],
    target_means: Sequence[torch.Tensor],
    target_sigmas: Sequence[torch.Tensor],
    weights: Sequence[float],
    eps: float,
    unbiased: bool,
) -> torch.Tensor:
    """``sum_l w_l * (mean((mu(F_l) - M_l)^2) + mean((sigma(F_l) - S_l)^2))``;
    the targets M_l, S_l are (B, C) or (1, C) (broadcast over the batch)."""
    total = None
    for f, tm, ts, w in zip(features, target_means, target_sigmas, weights):
        mean, sigma = channel_moments(f, eps, unbiased)
        dm = mean - tm.to(mean.dtype)
        ds = sigma - ts.to(sigma.dtype)
        term = w * ((dm * dm).mean() + (ds * ds).mean())
        total = term if total is None else total + term
    return total


# --------------------------------------------------------------------------
# the backend contract (see fastgram.backends)

NAME = "reference"
OPS = ("gram_matrix", "style_loss", "content_loss", "instance_norm", "adain", "moment_loss")


def probe() -> Optional[str]:
    return None  # plain PyTorch runs wherever fastgram imports


def table() -> dict:
    return {op: OpImpl(globals()[op]) for op in OPS}
