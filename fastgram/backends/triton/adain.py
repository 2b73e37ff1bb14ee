"""AdaIN on the Triton kernels (:mod:`fastgram.kernels.adain`).

* ``fastgram::triton_adain(content, style, eps, alpha, unbiased=False) ->
  (out, c_mean, c_rstd, s_mean, s_sigma)``; the statistics are not
  differentiable.
* ``fastgram::triton_adain_backward(grad_out, content, style, c_mean, c_rstd,
  s_mean, s_sigma, alpha, need_style, unbiased=False) -> (grad_content,
  grad_style)``;
  grad_style is an empty tensor when ``need_style`` is false.

Autograd and double backward: :mod:`fastgram.backends.autograd`.
"""

# No ``from __future__ import annotations``: see .instance_norm.
from typing import Optional

import torch
from torch import Tensor
from torch.library import triton_op

from fastgram.backends import autograd, checks
from fastgram.backends.triton import support
from fastgram.kernels import adain as kernels


@triton_op("fastgram::triton_adain", mutates_args=())
def triton_adain(
    content: Tensor, style: Tensor, eps: float, alpha: float, unbiased: bool = False
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    checks.adain(content, style, eps, alpha, unbiased)
    support.require_device(content, "content")
    return kernels.forward(content, style, eps, alpha, unbiased)


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
    unbiased: bool = False,
) -> tuple[Tensor, Tensor]:
    checks.adain_backward(grad_out, content, style, c_mean, c_rstd, s_mean, s_sigma, alpha,
                          unbiased)
    support.require_device(content, "content")
    grad_c, grad_s = kernels.backward(
        grad_out, content, style, c_mean, c_rstd, s_mean, s_sigma, alpha, need_style, unbiased
    )
    return grad_c, content.new_empty(0) if grad_s is None else grad_s


_setup_context, _backward = autograd.adain_formulas(torch.ops.fastgram.triton_adain_backward)
triton_adain.register_autograd(_backward, setup_context=_setup_context)


def run(content, style, eps, alpha, unbiased=False) -> Tensor:
    """Signature of :func:`fastgram.backends.reference.adain`."""
    return torch.ops.fastgram.triton_adain(content, style, eps, alpha, unbiased)[0]


def supports(content, style, eps, alpha, unbiased=False) -> Optional[str]:
    return support.norm_reason(content, "content") or support.norm_reason(style, "style")
