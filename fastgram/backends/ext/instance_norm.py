"""Instance norm on the extension's CPU kernels (``csrc/instance_norm_cpu.cpp``).

* ``fastgram::ext_instance_norm(x, weight?, bias?, eps, activation,
  negative_slope) -> (y, mean, rstd)``; activation is a code of
  :data:`fastgram.backends.checks.ACTIVATION_CODES`; mean and rstd are (B, C)
  in the statistics dtype and not differentiable.
* ``fastgram::ext_instance_norm_backward(grad_y, x, weight?, bias?, mean,
  rstd, activation, negative_slope, output_mask) -> (grad_x, grad_weight,
  grad_bias)``; a gradient that is absent or not asked for by
  ``output_mask`` is an empty tensor.

Autograd and double backward: :mod:`fastgram.backends.autograd`.
"""

from __future__ import annotations

from typing import Optional

import torch

from fastgram.backends import autograd, checks
from fastgram.backends.ext import support

def _fake(x, weight, bias, eps, activation, negative_slope):
    checks.instance_norm(x, weight, bias, eps, activation, negative_slope, same_dtype=True)
    support.require_device(x, "x", "ext_instance_norm")
    rows = (x.shape[0], x.shape[1])
    stats = checks.stats_dtype(x.dtype)
    return torch.empty_like(x), x.new_empty(rows, dtype=stats), x.new_empty(rows, dtype=stats)


def _backward_fake(grad_y, x, weight, bias, mean, rstd, activation, negative_slope, output_mask):
    checks.instance_norm_backward(
        grad_y, x, weight, bias, mean, rstd, activation, negative_slope, same_dtype=True
    )
    support.require_device(x, "x", "ext_instance_norm_backward")
    need_x, need_w, need_b = output_mask
    grad_w = torch.empty_like(weight) if need_w and weight is not None else x.new_empty(0)
    grad_b = torch.empty_like(bias) if need_b and bias is not None else x.new_empty(0)
    return torch.empty_like(x) if need_x else x.new_empty(0), grad_w, grad_b


_setup_context, _backward = autograd.instance_norm_formulas(
    lambda grad_y, x, w, b, mean, rstd, code, slope, needs:
    torch.ops.fastgram.ext_instance_norm_backward(grad_y, x, w, b, mean, rstd, code, slope, list(needs))
)


torch.library.register_fake("fastgram::ext_instance_norm", _fake)
torch.library.register_fake("fastgram::ext_instance_norm_backward", _backward_fake)
torch.library.register_autograd(
    "fastgram::ext_instance_norm", _backward, setup_context=_setup_context
)


def run(x, weight, bias, eps, activation, negative_slope) -> torch.Tensor:
    """Signature of :func:`fastgram.backends.reference.instance_norm`."""
    code = checks.ACTIVATION_CODES[activation]
    return torch.ops.fastgram.ext_instance_norm(x, weight, bias, eps, code, negative_slope)[0]


def supports(x, weight, bias, eps, activation, negative_slope) -> Optional[str]:
    reason = support.device_reason(x, "ext_instance_norm")
    if reason is None and (
        (weight is not None and weight.dtype != x.dtype) or (bias is not None and bias.dtype != x.dtype)
    ):
        reason = "its kernels take weight and bias in the dtype of x"
    return reason
