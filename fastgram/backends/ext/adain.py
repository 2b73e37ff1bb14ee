"""AdaIN on the extension's CPU kernels (``csrc/adain_cpu.cpp``).

* ``fastgram::ext_adain(content, style, eps, alpha, unbiased=False) -> (out,
  c_mean, c_rstd, s_mean, s_sigma)``; the statistics are not differentiable.
* ``fastgram::ext_adain_backward(grad_out, content, style, c_mean, c_rstd,
  s_mean, s_sigma, alpha, need_style, unbiased=False) -> (grad_content,
  grad_style)``;
  grad_style is an empty tensor when ``need_style`` is false.

Autograd and double backward: :mod:`fastgram.backends.autograd`.
"""

from __future__ import annotations

from typing import Optional

import torch

from fastgram.backends import autograd, checks
from fastgram.backends.ext import support


def _fake(content, style, eps, alpha, unbiased=False):
    checks.adain(content, style, eps, alpha, unbiased)
    support.require_device(content, "content", "ext_adain")
    stats = checks.stats_dtype(content.dtype)
    c_rows, s_rows = (content.shape[0], content.shape[1]), (style.shape[0], style.shape[1])
    return (
        torch.empty_like(content),
        *(content.new_empty(c_rows, dtype=stats) for _ in range(2)),
        *(content.new_empty(s_rows, dtype=stats) for _ in range(2)),
    )


def _backward_fake(grad_out, content, style, c_mean, c_rstd, s_mean, s_sigma, alpha, need_style,
                   unbiased=False):
    checks.adain_backward(grad_out, content, style, c_mean, c_rstd, s_mean, s_sigma, alpha,
                          unbiased)
    support.require_device(content, "content", "ext_adain_backward")
    return torch.empty_like(content), torch.empty_like(style) if need_style else content.new_empty(0)


_setup_context, _backward = autograd.adain_formulas(torch.ops.fastgram.ext_adain_backward)


torch.library.register_fake("fastgram::ext_adain", _fake)
torch.library.register_fake("fastgram::ext_adain_backward", _backward_fake)
torch.library.register_autograd("fastgram::ext_adain", _backward, setup_context=_setup_context)


def run(content, style, eps, alpha, unbiased=False) -> torch.Tensor:
    """Signature of :func:`fastgram.backends.reference.adain`."""
    return torch.ops.fastgram.ext_adain(content, style, eps, alpha, unbiased)[0]


def supports(content, style, eps, alpha, unbiased=False) -> Optional[str]:
    return support.device_reason(content, "ext_adain")
