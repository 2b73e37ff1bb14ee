"""The fused multi-layer Gram style loss on the Triton kernels
(:mod:`fastgram.kernels.style_loss`).

* ``fastgram::triton_style_loss(features, targets, weights, scales,
  keep_gram) -> (loss, saved)``
* ``fastgram::triton_style_loss_backward(grad, features, targets, saved,
  weights, scales, keep_gram) -> grad_features``

``saved`` holds per layer what the backward kernel reads: ``2 G - T - T^T``
(the matrix it multiplies the features by), or G itself when ``keep_gram``
(target gradients need G - T). It is not differentiable.

Autograd and double backward: :mod:`fastgram.backends.autograd`.
"""

from typing import Optional

import torch
from torch.library import triton_op

from fastgram.backends import autograd, checks
from fastgram.backends.triton import support
from fastgram.kernels import style_loss as kernels


def _check(features, targets, weights, scales) -> None:
    checks.style_loss(features, targets, weights, scales)
    support.require_device(features[0], "features[0]")


@triton_op("fastgram::triton_style_loss", mutates_args=())
def triton_style_loss(
    features: list[torch.Tensor],
    targets: list[torch.Tensor],
    weights: list[float],
    scales: list[float],
    keep_gram: bool,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    _check(features, targets, weights, scales)
    return kernels.style_loss_forward(features, targets, weights, scales, keep_gram)


@triton_op("fastgram::triton_style_loss_backward", mutates_args=())
def triton_style_loss_backward(
    grad: torch.Tensor,
    features: list[torch.Tensor],
    targets: list[torch.Tensor],
    saved: list[torch.Tensor],
    weights: list[float],
    scales: list[float],
    keep_gram: bool,
) -> list[torch.Tensor]:
    checks.style_loss_backward(grad, features, saved, weights, scales, targets)
    support.require_device(features[0], "features[0]")
    return kernels.style_loss_backward(grad, features, targets, saved, weights, scales, keep_gram)


def _setup_context(ctx, inputs, output):
    features, targets, weights, scales, keep_gram = inputs
    _, saved = output
    ctx.layers = len(features)
    ctx.weights, ctx.scales, ctx.keep_gram = list(weights), list(scales), keep_gram
    ctx.save_for_backward(*features, *targets, *saved)
    ctx.mark_non_differentiable(*saved)


def _backward(ctx, grad, _grad_saved):
    n = ctx.layers
    tensors = ctx.saved_tensors
    features, targets, saved = list(tensors[:n]), list(tensors[n:2 * n]), list(tensors[2 * n:])
    need_targets = ctx.needs_input_grad[1]
    if any(need_targets) and not ctx.keep_gram and not autograd.double_backward_wanted():
        raise RuntimeError(
            "targets: a target requires grad, but the style loss was run with "
            "keep_gram=False, which keeps only what the feature gradients need"
        )

    feature_grads, target_grads = autograd.style_loss_grads(
        ctx, grad, features, targets,
        lambda: torch.ops.fastgram.triton_style_loss_backward(
            grad, features, targets, saved, ctx.weights, ctx.scales, ctx.keep_gram
        ),
        lambda l: saved[l] - targets[l].to(saved[l].dtype),
    )
    return feature_grads, target_grads, None, None, None


triton_style_loss.register_autograd(_backward, setup_context=_setup_context)


def run(features, targets, weights, scales) -> torch.Tensor:
    """Signature of :func:`fastgram.backends.reference.style_loss`."""
    # Target gradients need G itself; without them the forward keeps only
    # 2 G - T - T^T, in the features' dtype, which the backward reads as is.
    keep_gram = torch.is_grad_enabled() and any(t.requires_grad for t in targets)
    loss, _ = torch.ops.fastgram.triton_style_loss(
        list(features), list(targets), [float(w) for w in weights],
        [float(s) for s in scales], keep_gram,
    )
    return loss


def supports(features, targets, weights, scales) -> Optional[str]:
    return support.gram_reason(features[0], "features[0]")
