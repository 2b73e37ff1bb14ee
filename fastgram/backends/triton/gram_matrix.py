"""Gram matrices on the Triton kernels (:mod:`fastgram.kernels.gram`).

* ``fastgram::triton_gram_matrix(x, scale) -> G``
* ``fastgram::triton_gram_matrix_backward(grad, x, scale) -> grad_x``

Autograd and double backward: :mod:`fastgram.backends.autograd`.
"""

from typing import Optional

import torch
from torch.library import triton_op

from fastgram.backends import autograd, checks
from fastgram.backends.triton import support
from fastgram.kernels import gram as kernels


@triton_op("fastgram::triton_gram_matrix", mutates_args=())
def triton_gram_matrix(x: torch.Tensor, scale: float) -> torch.Tensor:
    checks.gram_matrix(x, scale)
    support.require_device(x, "x")
    return kernels.gram_forward(x, scale)


@triton_op("fastgram::triton_gram_matrix_backward", mutates_args=())
def triton_gram_matrix_backward(grad: torch.Tensor, x: torch.Tensor, scale: float) -> torch.Tensor:
    checks.gram_matrix_backward(grad, x, scale)
    support.require_device(x, "x")
    return kernels.gram_backward(grad, x, scale)


_setup_context, _backward = autograd.gram_formulas(torch.ops.fastgram.triton_gram_matrix_backward)
triton_gram_matrix.register_autograd(_backward, setup_context=_setup_context)


def run(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Signature of :func:`fastgram.backends.reference.gram_matrix`."""
    return torch.ops.fastgram.triton_gram_matrix(x, scale)


def supports(x, scale) -> Optional[str]:
    return support.gram_reason(x, "x")
