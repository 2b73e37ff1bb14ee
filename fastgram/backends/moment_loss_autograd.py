"""Autograd of the fused moment-loss operators, shared by the ext and Triton
backends: both return ``(loss, means, sigmas)`` and have a
``*_moment_loss_backward`` operator for the features' gradient; the targets'
(B, C)-sized gradients are computed here, double backward goes through the
reference formula (:mod:`fastgram.backends.autograd`)."""

from typing import Callable

import torch

from fastgram.backends import autograd, reference


def setup_context(ctx, inputs, output):
    features, target_means, target_sigmas, weights, eps, unbiased = inputs
    _, means, sigmas = output
    ctx.layers = len(features)
    ctx.weights, ctx.eps, ctx.unbiased = list(weights), eps, unbiased
    ctx.save_for_backward(*features, *target_means, *target_sigmas, *means, *sigmas)
    ctx.mark_non_differentiable(*means, *sigmas)


def _target_grad(grad_loss, statistic, target, weight: float) -> torch.Tensor:
    """d loss / d target = -2 w g (x - t) / (B C), summed over the batch for
    a broadcast (1, C) target."""
    residual = statistic - target.to(statistic.dtype)
    g = residual * (-2.0 * weight / residual.numel()) * grad_loss.to(residual.dtype)
    g = g.sum(0, keepdim=True) if target.shape[0] == 1 else g
    return g.to(target.dtype)


def make_backward(features_backward: Callable) -> Callable:
    """The autograd backward of an operator whose features' gradient is
    ``features_backward(grad_loss, features, means, sigmas, target_means,
    target_sigmas, weights, unbiased)``."""

    def backward(ctx, grad_loss, _grad_means, _grad_sigmas):
        n = ctx.layers
        saved = ctx.saved_tensors
        features, t_means, t_sigmas, means, sigmas = (list(saved[i * n:(i + 1) * n])
                                                      for i in range(5))
        need_f, need_m, need_s = (list(need) for need in ctx.needs_input_grad[:3])

        def kernel_grads():
            f_grads = (features_backward(grad_loss, features, means, sigmas, t_means, t_sigmas,
                                         ctx.weights, ctx.unbiased)
                       if any(need_f) else [None] * n)
            m_grads = [_target_grad(grad_loss, means[l], t_means[l], ctx.weights[l])
                       if need_m[l] else None for l in range(n)]
            s_grads = [_target_grad(grad_loss, sigmas[l], t_sigmas[l], ctx.weights[l])
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

    return backward
