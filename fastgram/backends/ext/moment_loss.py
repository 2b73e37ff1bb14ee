"""The multi-layer moment loss on the extension's CPU kernels
(``csrc/moment_loss_cpu.cpp``, moments of ``csrc/moments_cpu.h``).

* ``fastgram::ext_moment_loss(features, target_means, target_sigmas,
  weights, eps, unbiased) -> (loss, means, sigmas)``: the per-layer (B, C)
  moments of the features are what the backward needs; not differentiable.
* ``fastgram::ext_moment_loss_backward(grad_loss, features, means, sigmas,
  target_means, target_sigmas, weights, unbiased) -> grad_features``.

The target statistics are (B, C) or (1, C) in the features' dtype; their
gradients, (B, C)-sized, are computed here. Double backward goes through the
reference formula (:mod:`fastgram.backends.autograd`).
"""

from __future__ import annotations

from typing import Optional

import torch

from fastgram.backends import autograd, checks, reference
from fastgram.backends.ext import support


def _fake(features, target_means, target_sigmas, weights, eps, unbiased):
    checks.moment_loss(features, target_means, target_sigmas, weights, eps, unbiased)
    support.require_device(features[0], "features[0]", "ext_moment_loss")
    rows = [(f.shape[0], f.shape[1]) for f in features]
    return (features[0].new_empty(()), [f.new_empty(r) for f, r in zip(features, rows)],
            [f.new_empty(r) for f, r in zip(features, rows)])


def _backward_fake(grad_loss, features, means, sigmas, target_means, target_sigmas, weights,
                   unbiased):
    checks.moment_loss_backward(grad_loss, features, means, sigmas, target_means,
                                target_sigmas, weights, unbiased)
    support.require_device(features[0], "features[0]", "ext_moment_loss_backward")
    return [torch.empty_like(f) for f in features]


def _setup_context(ctx, inputs, output):
    features, target_means, target_sigmas, weights, eps, unbiased = inputs
    _, means, sigmas = output
    ctx.layers = len(features)
    ctx.weights, ctx.eps, ctx.unbiased = list(weights), eps, unbiased
    ctx.save_for_backward(*features, *target_means, *target_sigmas, *means, *sigmas)
    ctx.mark_non_differentiable(*means, *sigmas)


def _target_grad(grad_loss, residual, target, weight: float) -> torch.Tensor:
    """d loss / d target = -2 w g (x - t) / (B C), summed over the batch for
    a broadcast (1, C) target."""
    g = residual * (-2.0 * weight / residual.numel()) * grad_loss.to(residual.dtype)
    g = g.sum(0, keepdim=True) if target.shape[0] == 1 else g
    return g.to(target.dtype)


def _backward(ctx, grad_loss, _grad_means, _grad_sigmas):
    n = ctx.layers
    saved = ctx.saved_tensors
    features, t_means, t_sigmas, means, sigmas = (list(saved[i * n:(i + 1) * n]) for i in range(5))
    need_f, need_m, need_s = (list(need) for need in ctx.needs_input_grad[:3])

    def kernel_grads():
        f_grads = (torch.ops.fastgram.ext_moment_loss_backward(
            grad_loss, features, means, sigmas, t_means, t_sigmas, ctx.weights, ctx.unbiased)
            if any(need_f) else [None] * n)
        m_grads = [_target_grad(grad_loss, means[l] - t_means[l], t_means[l], ctx.weights[l])
                   if need_m[l] else None for l in range(n)]
        s_grads = [_target_grad(grad_loss, sigmas[l] - t_sigmas[l], t_sigmas[l], ctx.weights[l])
                   if need_s[l] else None for l in range(n)]
        return f_grads, m_grads, s_grads

    grads = autograd.input_grads(
        (any(need_f), any(need_m), any(need_s)), grad_loss, (features, t_means, t_sigmas),
        lambda f, m, s: reference.moment_loss(f, m, s, ctx.weights, ctx.eps, ctx.unbiased),
        kernel_grads,
    )
    f_grads, m_grads, s_grads = (autograd.masked(g, need)
                                 for g, need in zip(grads, (need_f, need_m, need_s)))
    return f_grads, m_grads, s_grads, None, None, None


torch.library.register_fake("fastgram::ext_moment_loss", _fake)
torch.library.register_fake("fastgram::ext_moment_loss_backward", _backward_fake)
torch.library.register_autograd("fastgram::ext_moment_loss", _backward,
                                setup_context=_setup_context)


def run(features, target_means, target_sigmas, weights, eps, unbiased) -> torch.Tensor:
    """Signature of :func:`fastgram.backends.reference.moment_loss`."""
    dtype = checks.stats_dtype(features[0].dtype)  # the features' own on the CPU kernels
    target_means = [t.to(dtype).contiguous() for t in target_means]
    target_sigmas = [t.to(dtype).contiguous() for t in target_sigmas]
    return torch.ops.fastgram.ext_moment_loss(
        list(features), target_means, target_sigmas, [float(w) for w in weights], eps, unbiased
    )[0]


def supports(features, target_means, target_sigmas, weights, eps, unbiased) -> Optional[str]:
    return support.device_reason(features[0], "ext_moment_loss")
