"""Custom ops of the Triton Gram and style-loss kernels, their autograd, and
their registration as the ``triton`` backend of ``gram_matrix`` and
``style_loss`` in :mod:`fastgram.dispatch`.

Ops (the ``triton_`` prefix keeps them apart from the C++ extension's ops in
the same ``fastgram`` namespace):

* ``fastgram::triton_gram(x, scale) -> G``
* ``fastgram::triton_gram_backward(grad, x, scale) -> dx``
* ``fastgram::triton_style_loss(features, targets, weights, scales, keep_gram) -> (loss, saved)``
* ``fastgram::triton_style_loss_backward(grad, features, targets, saved, weights, scales, keep_gram) -> dfeatures``

``saved`` holds per layer what the backward pass needs: ``2 G - T - T^T`` in
the features' dtype, or G itself when ``keep_gram`` (target gradients).

Each is a ``torch.library.triton_op`` whose kernels launch through
``wrap_triton``, so ``torch.compile(fullgraph=True)`` sees through them and
the fake (meta) implementation is derived from the same Python code.
"""

from typing import Optional

import torch
from torch.library import register_autograd, triton_op

from fastgram import dispatch
from fastgram.kernels import gram as _gram

# --------------------------------------------------------------------------
# Gram matrix


@triton_op("fastgram::triton_gram", mutates_args=())
def triton_gram(x: torch.Tensor, scale: float) -> torch.Tensor:
    return _gram.gram_forward(x, scale)


@triton_op("fastgram::triton_gram_backward", mutates_args=())
def triton_gram_backward(grad: torch.Tensor, x: torch.Tensor, scale: float) -> torch.Tensor:
    return _gram.gram_backward(grad, x, scale)


def _gram_setup_context(ctx, inputs, output):
    x, scale = inputs
    ctx.save_for_backward(x)
    ctx.scale = scale


def _gram_backward(ctx, grad):
    (x,) = ctx.saved_tensors
    return torch.ops.fastgram.triton_gram_backward(grad, x, ctx.scale), None


register_autograd("fastgram::triton_gram", _gram_backward, setup_context=_gram_setup_context)


# --------------------------------------------------------------------------
# style loss


@triton_op("fastgram::triton_style_loss", mutates_args=())
def triton_style_loss(
    features: list[torch.Tensor],
    targets: list[torch.Tensor],
    weights: list[float],
    scales: list[float],
    keep_gram: bool,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    return _gram.style_loss_forward(features, targets, weights, scales, keep_gram)


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
    return _gram.style_loss_backward(grad, features, targets, saved, weights, scales, keep_gram)


def _style_setup_context(ctx, inputs, output):
    features, targets, weights, scales, keep_gram = inputs
    _, saved = output
    ctx.layers = len(features)
    ctx.weights = list(weights)
    ctx.scales = list(scales)
    ctx.keep_gram = keep_gram
    ctx.target_needs_grad = [t.requires_grad for t in targets]
    ctx.save_for_backward(*features, *targets, *saved)


def _target_grad(grad, gram, target, weight):
    """dL/dT = -2 w g (G - T) / (B C^2), summed over the batch for a target
    that broadcasts: an elementwise pass over C x C, left to PyTorch."""
    batch, channels = gram.shape[0], gram.shape[1]
    diff = gram - target.to(gram.dtype)
    if target.dim() == 2:
        diff = diff.sum(0)
    coef = -2.0 * weight / (batch * channels * channels)
    return (diff * (coef * grad.to(gram.dtype))).to(target.dtype)


def _style_backward(ctx, grad, _saved_grad):
    # The saved per-layer tensors are an implementation output; the public
    # style_loss never hands them out, so their gradient is ignored.
    n = ctx.layers
    tensors = ctx.saved_tensors
    features, targets, saved = tensors[:n], tensors[n : 2 * n], tensors[2 * n :]
    feature_grads = torch.ops.fastgram.triton_style_loss_backward(
        grad, list(features), list(targets), list(saved), ctx.weights, ctx.scales,
        ctx.keep_gram,
    )
    if any(ctx.target_needs_grad) and not ctx.keep_gram:
        raise RuntimeError(
            "targets: a target requires grad, but the style loss was run with "
            "keep_gram=False, which keeps only what the feature gradients need"
        )
    target_grads = [
        _target_grad(grad, g, t, w) if needed else None
        for g, t, w, needed in zip(saved, targets, ctx.weights, ctx.target_needs_grad)
    ]
    return feature_grads, target_grads, None, None, None


register_autograd(
    "fastgram::triton_style_loss", _style_backward, setup_context=_style_setup_context
)


# --------------------------------------------------------------------------
# dispatch: the triton backend of gram_matrix and style_loss


def _device_reason(device: torch.device, dtype: torch.dtype) -> Optional[str]:
    if device.type == "cuda":
        if dtype == torch.float64:
            # the fp64 kernels have no tensor-core path: they exist for
            # gradcheck and the interpreter, cuBLAS is far faster on a GPU
            return "float64 runs faster on cuBLAS (the reference backend)"
        return None
    if device.type == "cpu":
        if _gram.INTERPRETED:
            return None
        return "CPU tensors need TRITON_INTERPRET=1 (set before triton is imported)"
    return f"{device.type} tensors are not supported by the Triton kernels"


def gram_matrix(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Signature of :func:`fastgram.ops.reference.gram_matrix`."""
    return torch.ops.fastgram.triton_gram(x, scale)


def _gram_supports(x, scale) -> Optional[str]:
    return _device_reason(x.device, x.dtype)


def style_loss(features, targets, weights, scales) -> torch.Tensor:
    """Signature of :func:`fastgram.ops.reference.style_loss`."""
    # Target gradients need G itself; without them the forward keeps only
    # 2 G - T - T^T, in the features' dtype, which the backward reads as is.
    keep_gram = torch.is_grad_enabled() and any(t.requires_grad for t in targets)
    loss, _ = torch.ops.fastgram.triton_style_loss(
        list(features), list(targets), [float(w) for w in weights],
        [float(s) for s in scales], keep_gram,
    )
    return loss


def _style_supports(features, targets, weights, scales) -> Optional[str]:
    return _device_reason(features[0].device, features[0].dtype)


dispatch.register("gram_matrix", "triton", gram_matrix, supports=_gram_supports)
dispatch.register("style_loss", "triton", style_loss, supports=_style_supports)
