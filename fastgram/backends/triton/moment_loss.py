"""The multi-layer moment loss on the Triton kernels (:mod:`fastgram.kernels.moments`).

* ``fastgram::triton_moment_loss(features, target_means, target_sigmas,
  weights, eps, unbiased) -> (loss, means, sigmas)``: the per-layer (B, C)
  moments (statistics dtype) are what the backward needs; not differentiable.
* ``fastgram::triton_moment_loss_backward(grad_loss, features, means,
  sigmas, target_means, target_sigmas, weights, unbiased) -> grad_features``.

The loss itself is a handful of (B, C)-sized PyTorch ops inside the
operator; the kernels do the passes over the features. Autograd is the
extension's too (:mod:`fastgram.backends.moment_loss_autograd`).
"""

# No ``from __future__ import annotations``: see .instance_norm.
from typing import Optional

import torch
from torch.library import triton_op

from fastgram.backends import checks, moment_loss_autograd
from fastgram.backends.triton import support
from fastgram.kernels import moments as kernels


def _squared_distance(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    d = x - target.to(x.dtype)
    return (d * d).mean()


@triton_op("fastgram::triton_moment_loss", mutates_args=())
def triton_moment_loss(
    features: list[torch.Tensor],
    target_means: list[torch.Tensor],
    target_sigmas: list[torch.Tensor],
    weights: list[float],
    eps: float,
    unbiased: bool,
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    checks.moment_loss(features, target_means, target_sigmas, weights, eps, unbiased)
    support.require_device(features[0], "features[0]")
    means, sigmas, total = [], [], None
    for f, tm, ts, w in zip(features, target_means, target_sigmas, weights):
        mean, sigma = kernels.moments(f, eps, unbiased)
        term = w * (_squared_distance(mean, tm) + _squared_distance(sigma, ts))
        total = term if total is None else total + term
        means.append(mean)
        sigmas.append(sigma)
    return total, means, sigmas


@triton_op("fastgram::triton_moment_loss_backward", mutates_args=())
def triton_moment_loss_backward(
    grad_loss: torch.Tensor,
    features: list[torch.Tensor],
    means: list[torch.Tensor],
    sigmas: list[torch.Tensor],
    target_means: list[torch.Tensor],
    target_sigmas: list[torch.Tensor],
    weights: list[float],
    unbiased: bool,
) -> list[torch.Tensor]:
    checks.moment_loss(features, target_means, target_sigmas, weights, 1.0, unbiased)
    support.require_device(features[0], "features[0]")
    grads = []
    for f, m, s, tm, ts, w in zip(features, means, sigmas, target_means, target_sigmas, weights):
        k = grad_loss.to(m.dtype) * (2.0 * w / m.numel())
        g_mean = (m - tm.to(m.dtype)) * k
        g_sigma = (s - ts.to(s.dtype)) * k
        grads.append(kernels.moments_backward(f, m, s, g_mean, g_sigma, unbiased))
    return grads


triton_moment_loss.register_autograd(
    moment_loss_autograd.make_backward(
        lambda *args: torch.ops.fastgram.triton_moment_loss_backward(*args)),
    setup_context=moment_loss_autograd.setup_context)


def run(features, target_means, target_sigmas, weights, eps, unbiased) -> torch.Tensor:
    """Signature of :func:`fastgram.backends.reference.moment_loss`."""
    sdt = checks.stats_dtype(features[0].dtype)
    target_means = [t.to(sdt).contiguous() for t in target_means]
    target_sigmas = [t.to(sdt).contiguous() for t in target_sigmas]
    return torch.ops.fastgram.triton_moment_loss(
        list(features), target_means, target_sigmas, [float(w) for w in weights], eps, unbiased
    )[0]


def supports(features, target_means, target_sigmas, weights, eps, unbiased) -> Optional[str]:
    for i, f in enumerate(features):
        reason = support.norm_reason(f, f"features[{i}]")
        if reason is not None:
            return reason
    return None
