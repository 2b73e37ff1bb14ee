"""Instance norm on the Triton kernels (:mod:`fastgram.kernels.instance_norm`).

* ``fastgram::triton_instance_norm(x, weight?, bias?, eps, activation,
  negative_slope) -> (y, mean, rstd)``; activation is a code of
  :data:`fastgram.backends.checks.ACTIVATION_CODES`; mean and rstd are (B, C)
  in the statistics dtype and not differentiable.
* ``fastgram::triton_instance_norm_backward(grad_y, x, weight?, bias?, mean,
  rstd, activation, negative_slope) -> (grad_x, grad_weight, grad_bias)``; the
  gradient of an absent parameter is an empty tensor.

Autograd and double backward: :mod:`fastgram.backends.autograd`.
"""

# No ``from __future__ import annotations``: the op schemas are inferred from
# the annotations, and older torch releases want them as real types.
from typing import Optional

import torch
from torch import Tensor
from torch.library import triton_op

from fastgram.backends import autograd, checks
from fastgram.backends.triton import support
from fastgram.kernels import instance_norm as kernels


def _check(x, weight, bias, eps, activation, negative_slope) -> None:
    checks.instance_norm(x, weight, bias, eps, activation, negative_slope)
    support.require_device(x, "x")


@triton_op("fastgram::triton_instance_norm", mutates_args=())
def triton_instance_norm(
    x: Tensor,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    eps: float,
    activation: int,
    negative_slope: float,
) -> tuple[Tensor, Tensor, Tensor]:
    _check(x, weight, bias, eps, activation, negative_slope)
    return kernels.forward(x, weight, bias, eps, activation, negative_slope)


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
    checks.instance_norm_backward(grad_y, x, weight, bias, mean, rstd, activation, negative_slope)
    support.require_device(x, "x")
    grad_x, s1, s2 = kernels.backward(grad_y, x, weight, bias, mean, rstd, activation, negative_slope)
    grad_w, grad_b = kernels.param_grads(s1, s2, weight, bias)
    # the schema has no optional outputs: an absent parameter's gradient is
    # empty (a fresh tensor each: outputs may not alias one another)
    return (
        grad_x,
        x.new_empty(0) if grad_w is None else grad_w,
        x.new_empty(0) if grad_b is None else grad_b,
    )


_setup_context, _backward = autograd.instance_norm_formulas(
    lambda grad_y, x, w, b, mean, rstd, code, slope, needs:
    torch.ops.fastgram.triton_instance_norm_backward(grad_y, x, w, b, mean, rstd, code, slope)
)
triton_instance_norm.register_autograd(_backward, setup_context=_setup_context)


def run(x, weight, bias, eps, activation, negative_slope) -> Tensor:
    """Signature of :func:`fastgram.backends.reference.instance_norm`."""
    code = checks.ACTIVATION_CODES[activation]
    return torch.ops.fastgram.triton_instance_norm(x, weight, bias, eps, code, negative_slope)[0]


def supports(x, weight, bias, eps, activation, negative_slope) -> Optional[str]:
    return support.norm_reason(x, "x")
