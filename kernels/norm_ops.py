"""Instance norm and AdaIN as registered custom ops with autograd.

``torch.library.triton_op`` + ``wrap_triton`` (in ``_norm_common.launch``)
make each launcher an op that eager mode, autograd and
``torch.compile(fullgraph=True)`` see as one node whose Triton kernels
Inductor can call directly. Ops (namespace ``fastgram``, prefixed
``triton_`` so they never clash with the C++ extension's ops):

* ``triton_instance_norm(x, weight?, bias?, eps, activation, negative_slope)
  -> (y, mean, rstd)``; activation is 0 (none), 1 (relu), 2 (leaky_relu).
* ``triton_instance_norm_backward(grad_y, x, weight?, bias?, mean, rstd,
  activation, negative_slope) -> (grad_x, grad_weight, grad_bias)``; a
  gradient of an absent parameter is an empty tensor.
* ``triton_adain(content, style, eps, alpha) -> (out, c_mean, c_rstd,
  s_mean, s_sigma)``.
* ``triton_adain_backward(grad_out, content, style, c_mean, c_rstd, s_mean,
  s_sigma, alpha, need_style) -> (grad_content, grad_style)``; grad_style is
  an empty tensor when ``need_style`` is false.

The statistics outputs are what backward needs (per-row mean and rstd, never
a normalised copy of the input) and are not differentiable.

Double backward (``create_graph=True``, as gradient penalties such as R1
need): the backward kernels have no derivative of their own, so a backward
pass that must itself be differentiable computes the gradients by
differentiating the reference formula (:mod:`fastgram.ops.reference`) on the
saved inputs instead. Such passes run at reference speed; ordinary backward
passes, and compiled ones, use the kernels.

Importing this module registers ``instance_norm`` and ``adain`` as the
``triton`` backend of :mod:`fastgram.dispatch`.
"""

# No ``from __future__ import annotations``: the op schemas are inferred from
# the annotations, and older torch releases want them as real types.
from typing import Optional

import torch
from torch import Tensor
from torch.library import triton_op

from fastgram import dispatch
from fastgram.ops import reference

from . import _norm_common as common
from . import adain as adain_kernels
from . import instance_norm as in_kernels

# --------------------------------------------------------------------------
# instance norm


@triton_op("fastgram::triton_instance_norm", mutates_args=())
def triton_instance_norm(
    x: Tensor,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    eps: float,
    activation: int,
    negative_slope: float,
) -> tuple[Tensor, Tensor, Tensor]:
    return in_kernels.forward(x, weight, bias, eps, activation, negative_slope)


@triton_op("fastgram::triton_instance_norm_backward", mutates_args=())
def triton_instance_norm_backward(
    grad_y: Tensor,
    x: Tensor,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    mean: Tensor,
    rstd: Tensor,
    activation: int,
    negative_slope: float,
) -> tuple[Tensor, Tensor, Tensor]:
    grad_x, s1, s2 = in_kernels.backward(
        grad_y, x, weight, bias, mean, rstd, activation, negative_slope
    )
    grad_w, grad_b = in_kernels.param_grads(s1, s2, weight, bias)
    # the schema has no optional outputs: an absent parameter's gradient is
    # empty (a fresh tensor each: outputs may not alias one another)
    if grad_w is None:
        grad_w = x.new_empty(0)
    if grad_b is None:
        grad_b = x.new_empty(0)
    return grad_x, grad_w, grad_b


def _differentiable_grads(fn, inputs, needs, grad_out):
    """Gradients of ``fn(*inputs)`` that can themselves be differentiated
    (the backward of a ``create_graph=True`` pass); None where not needed."""
    wanted = [t for t, need in zip(inputs, needs) if need]
    with torch.enable_grad():
        out = fn(*inputs)
        grads = iter(torch.autograd.grad(out, wanted, grad_out, create_graph=True))
    return [next(grads) if need else None for need in needs]


_ACTIVATION_NAMES = {code: name for name, code in in_kernels.ACTIVATION_CODES.items()}


def _in_setup_context(ctx, inputs, output):
    x, weight, bias, eps, activation, negative_slope = inputs
    _y, mean, rstd = output
    ctx.save_for_backward(x, weight, bias, mean, rstd)
    ctx.eps = eps
    ctx.activation = activation
    ctx.negative_slope = negative_slope
    ctx.mark_non_differentiable(mean, rstd)


def _in_backward(ctx, grad_y, _grad_mean, _grad_rstd):
    x, weight, bias, mean, rstd = ctx.saved_tensors
    if grad_y is None:
        return None, None, None, None, None, None
    needs = ctx.needs_input_grad[:3]
    if torch.is_grad_enabled():  # create_graph=True: see the module docstring
        activation = _ACTIVATION_NAMES[ctx.activation]
        grads = _differentiable_grads(
            lambda x, w, b: reference.instance_norm(
                x, w, b, ctx.eps, activation, ctx.negative_slope
            ),
            (x, weight, bias), needs, grad_y,
        )
        return (*grads, None, None, None)
    grad_x, grad_w, grad_b = torch.ops.fastgram.triton_instance_norm_backward(
        grad_y, x, weight, bias, mean, rstd, ctx.activation, ctx.negative_slope
    )
    need_x, need_w, need_b = needs
    return (
        grad_x if need_x else None,
        grad_w if need_w else None,
        grad_b if need_b else None,
        None,
        None,
        None,
    )


triton_instance_norm.register_autograd(_in_backward, setup_context=_in_setup_context)


# --------------------------------------------------------------------------
# AdaIN


@triton_op("fastgram::triton_adain", mutates_args=())
def triton_adain(
    content: Tensor, style: Tensor, eps: float, alpha: float
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    return adain_kernels.forward(content, style, eps, alpha)


@triton_op("fastgram::triton_adain_backward", mutates_args=())
def triton_adain_backward(
    grad_out: Tensor,
    content: Tensor,
    style: Tensor,
    c_mean: Tensor,
    c_rstd: Tensor,
    s_mean: Tensor,
    s_sigma: Tensor,
    alpha: float,
    need_style: bool,
) -> tuple[Tensor, Tensor]:
    grad_c, grad_s = adain_kernels.backward(
        grad_out, content, style, c_mean, c_rstd, s_mean, s_sigma, alpha, True, need_style
    )
    if grad_s is None:
        grad_s = content.new_empty(0)
    return grad_c, grad_s


def _adain_setup_context(ctx, inputs, output):
    content, style, eps, alpha = inputs
    _out, c_mean, c_rstd, s_mean, s_sigma = output
    ctx.save_for_backward(content, style, c_mean, c_rstd, s_mean, s_sigma)
    ctx.eps = eps
    ctx.alpha = alpha
    ctx.mark_non_differentiable(c_mean, c_rstd, s_mean, s_sigma)


def _adain_backward(ctx, grad_out, *_grad_stats):
    content, style, c_mean, c_rstd, s_mean, s_sigma = ctx.saved_tensors
    if grad_out is None:
        return None, None, None, None
    need_c, need_s = ctx.needs_input_grad[:2]
    if torch.is_grad_enabled():  # create_graph=True: see the module docstring
        grads = _differentiable_grads(
            lambda c, s: reference.adain(c, s, ctx.eps, ctx.alpha),
            (content, style), (need_c, need_s), grad_out,
        )
        return (*grads, None, None)
    grad_c, grad_s = torch.ops.fastgram.triton_adain_backward(
        grad_out, content, style, c_mean, c_rstd, s_mean, s_sigma, ctx.alpha, need_s
    )
    return (grad_c if need_c else None), (grad_s if need_s else None), None, None


triton_adain.register_autograd(_adain_backward, setup_context=_adain_setup_context)


# --------------------------------------------------------------------------
# dispatch registration: the signatures of fastgram.ops.reference

_INT32_MAX = 2**31 - 1


def _unsupported(t: Tensor, name: str) -> Optional[str]:
    """Why the kernels cannot take ``t``, or None."""
    if t.device.type == "cpu":
        if not common.INTERPRETED:
            return f"{name} is a CPU tensor and TRITON_INTERPRET=1 is not set"
    elif t.device.type != "cuda":
        return f"{name} is on {t.device.type}, the Triton kernels run on CUDA"
    # offsets inside one sample are 32-bit; the sample offset is 64-bit
    if sample_reach(t) > _INT32_MAX:
        return f"{name} has a sample spanning more than 2**31 elements"
    return None


def sample_reach(t: Tensor) -> int:
    """Largest element offset within one sample of ``t``."""
    return sum((size - 1) * abs(stride) for size, stride in zip(t.shape[1:], t.stride()[1:]))


def instance_norm(
    x: Tensor,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    eps: float,
    activation: Optional[str],
    negative_slope: float,
) -> Tensor:
    code = in_kernels.ACTIVATION_CODES[activation]
    return torch.ops.fastgram.triton_instance_norm(x, weight, bias, eps, code, negative_slope)[0]


def supports_instance_norm(x, weight, bias, eps, activation, negative_slope) -> Optional[str]:
    return _unsupported(x, "x")


def adain(content: Tensor, style: Tensor, eps: float, alpha: float) -> Tensor:
    return torch.ops.fastgram.triton_adain(content, style, eps, alpha)[0]


def supports_adain(content, style, eps, alpha) -> Optional[str]:
    return _unsupported(content, "content") or _unsupported(style, "style")


dispatch.register("instance_norm", "triton", instance_norm, supports=supports_instance_norm)
dispatch.register("adain", "triton", adain, supports=supports_adain)
