"""The multi-layer moment loss on the Triton kernels (:mod:`fastgram.kernels.moments`).

* ``fastgram::triton_moment_loss(features, target_means, target_sigmas,
  weights, eps, unbiased) -> (loss, means, sigmas)``: the per-layer (B, C)
  moments (statistics dtype) are what the backward needs; not differentiable.
* ``fastgram::triton_moment_loss_backward(grad_loss, features, means,
  sigmas, target_means, target_sigmas, weights, unbiased) -> grad_features``.

The loss itself is a handful of (B, C)-sized PyTorch ops inside the
operator; the kernels do the passes over the features. Autograd as the
extension's (:mod:`fastgram.backends.ext.moment_loss`).
"""

# No ``from __future__ import annotations``: see .instance_norm.
from typing import Optional

import torch
from torch.library import triton_op

from fastgram.backends import autograd, checks, reference
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


def _setup_context(ctx, inputs, output):
    features, target_means, target_sigmas, weights, eps, unbiased = inputs
    _, means, sigmas = output
    ctx.layers = len(features)
    ctx.weights, ctx.eps, ctx.unbiased = list(weights), eps, unbiased
    ctx.save_for_backward(*features, *target_means, *target_sigmas, *means, *sigmas)
    ctx.mark_non_differentiable(*means, *sigmas)


def _target_grad(grad_loss, residual, target, weight: float) -> torch.Tensor:
    g = residual * (-2.0 * weight / residual.numel()) * grad_loss.to(residual.dtype)
    g = g.sum(0, keepdim=True) if target.shape[0] == 1 else g
    return g.to(target.dtype)


def _backward(ctx, grad_loss, _grad_means, _grad_sigmas):
    n = ctx.layers
    saved = ctx.saved_tensors
    features, t_means, t_sigmas, means, sigmas = (list(saved[i * n:(i + 1) * n]) for i in range(5))
    need_f, need_m, need_s = (list(need) for need in ctx.needs_input_grad[:3])

    def kernel_grads():
        f_grads = (torch.ops.fastgram.triton_moment_loss_backward(
            grad_loss, features, means, sigmas, t_means, t_sigmas, ctx.weights, ctx.unbiased)
            if any(need_f) else [None] * n)
        m_grads = [_target_grad(grad_loss, means[l] - t_means[l].to(means[l].dtype), t_means[l],
                                ctx.weights[l]) if need_m[l] else None for l in range(n)]
        s_grads = [_target_grad(grad_loss, sigmas[l] - t_sigmas[l].to(sigmas[l].dtype),
                                t_sigmas[l], ctx.weights[l]) if need_s[l] else None
                   for l in range(n)]
        return f_grads, m_grads, s_grads

    grads = autograd.input_grads(
        (any(need_f), any(need_m), any(need_s)), grad_loss, (features, t_means, t_sigmas),
        lambda f, m, s: reference.moment_loss(f, m, s, ctx.weights, ctx.eps, ctx.unbiased),
        kernel_grads,
    )
    f_grads, m_grads, s_grads = (autograd.masked(g, need)
                                 for g, need in zip(grads, (need_f, need_m, need_s)))
    return f_grads, m_grads, s_grads, None, None, None


triton_moment_loss.register_autograd(_backward, setup_context=_setup_context)


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
