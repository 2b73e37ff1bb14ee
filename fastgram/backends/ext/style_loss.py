"""The fused multi-layer Gram style loss on the extension
(``csrc/style_loss_cpu.cpp``, ``csrc/style_loss_cuda.cu``).

* ``fastgram::ext_style_loss(features, targets, weights, scales) -> (loss,
  residuals)``: residuals[l] = s_l F_l F_l^T - T_l, (B, C_l, C_l) in the
  compute dtype, what the backward needs; not differentiable.
* ``fastgram::ext_style_loss_backward(grad_loss, features, residuals,
  weights, scales) -> grad_features``.

Autograd and double backward: :mod:`fastgram.backends.autograd`.
"""

from __future__ import annotations

from typing import Optional

import torch

from fastgram.backends import autograd, checks, layout, native, reference
from fastgram.backends.ext import support
from fastgram.backends.ext import gram_matrix


def _fake(features, targets, weights, scales):
    checks.style_loss(features, targets, weights, scales)
    support.require_device(features[0], "features[0]", "ext_style_loss")
    cdt = reference.compute_dtype(features[0].dtype)
    loss = features[0].new_empty((), dtype=cdt)
    residuals = [f.new_empty((f.shape[0], f.shape[1], f.shape[1]), dtype=cdt) for f in features]
    return loss, residuals


def _backward_fake(grad_loss, features, residuals, weights, scales):
    checks.style_loss_backward(grad_loss, features, residuals, weights, scales)
    support.require_device(features[0], "features[0]", "ext_style_loss_backward")
    cdt = reference.compute_dtype(features[0].dtype)
    for i, r in enumerate(residuals):
        if r.dtype != cdt:
            raise TypeError(f"residuals[{i}]: expected dtype {cdt} (the compute dtype), got {r.dtype}")
    return [layout.empty_grad(f) for f in features]


def _setup_context(ctx, inputs, output):
    features, targets, weights, scales = inputs
    _, residuals = output
    ctx.layers = len(features)
    ctx.weights, ctx.scales = list(weights), list(scales)
    ctx.save_for_backward(*features, *targets, *residuals)
    ctx.mark_non_differentiable(*residuals)


def _backward(ctx, grad_loss, _grad_residuals):
    n = ctx.layers
    saved = ctx.saved_tensors
    features, targets, residuals = list(saved[:n]), list(saved[n:2 * n]), list(saved[2 * n:])
    feature_grads, target_grads = autograd.style_loss_grads(
        ctx, grad_loss, features, targets,
        lambda: torch.ops.fastgram.ext_style_loss_backward(
            grad_loss, features, residuals, ctx.weights, ctx.scales
        ),
        lambda l: residuals[l],
    )
    return feature_grads, target_grads, None, None


torch.library.register_fake("fastgram::ext_style_loss", _fake)
torch.library.register_fake("fastgram::ext_style_loss_backward", _backward_fake)
torch.library.register_autograd("fastgram::ext_style_loss", _backward, setup_context=_setup_context)


def run(features, targets, weights, scales) -> torch.Tensor:
    """Signature of :func:`fastgram.backends.reference.style_loss`: the layers
    where the fused kernels pay (:func:`gram_matrix.kernel_pays`) in one
    operator call, the others in plain PyTorch."""
    fused = [i for i, f in enumerate(features) if gram_matrix.kernel_pays(f)]
    if not fused:
        return native.style_loss(features, targets, weights, scales)
    plain = [i for i in range(len(features)) if i not in fused]
    total = None
    if fused:
        total, _ = torch.ops.fastgram.ext_style_loss(
            [features[i] for i in fused], [targets[i] for i in fused],
            [float(weights[i]) for i in fused], [float(scales[i]) for i in fused],
        )
    if plain:
        rest = native.style_loss(*([seq[i] for i in plain] for seq in
                                   (features, targets, weights, scales)))
        total = rest if total is None else total + rest
    return total


def supports(features, targets, weights, scales) -> Optional[str]:
    return support.device_reason(features[0], "ext_style_loss")
