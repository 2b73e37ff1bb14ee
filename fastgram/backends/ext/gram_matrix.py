"""Gram matrices on the extension (``csrc/gram_cpu.cpp``, ``csrc/gram_cuda.cu``).

* ``fastgram::ext_gram_matrix(features, scale) -> G``, (B, C, C) in the
  dtype of the features.
* ``fastgram::ext_gram_matrix_backward(grad_gram, features, scale) -> grad``,
  ``scale * (dG + dG^T) F`` shaped like the features.

Autograd and double backward: :mod:`fastgram.backends.autograd`.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from fastgram.backends import autograd, checks, layout, native
from fastgram.backends.ext import support

# Where the fused CPU Gram pays, measured on the project's 2-core CPU against
# torch.bmm (float32, B 1 and 4, C 64..512, N = H*W 16..65536; the table is in
# the README, section Backends): forward alone it is never more than 1.12x
# faster and down to 0.13x slower (bmm is already one GEMM, and the symmetric
# tiles halve work only where N is long), while forward+backward wins 1.15x to
# 4.1x once N >= max(256, 2C) and loses below. So the kernels run on the CPU
# only for calls a backward pass will follow, with N >= max(MIN_POSITIONS, 2C);
# every other CPU call is plain PyTorch (the reference formula is bmm).
MIN_POSITIONS = 256


def kernel_pays(x: torch.Tensor) -> bool:
    """Whether the fused kernels beat plain PyTorch for features ``x``."""
    if x.device.type != "cpu":
        return True
    if not (x.requires_grad and torch.is_grad_enabled()):
        return False
    return math.prod(x.shape[2:]) >= max(MIN_POSITIONS, 2 * x.shape[1])


def _fake(features, scale):
    checks.gram_matrix(features, scale)
    support.require_device(features, "features", "ext_gram_matrix")
    b, c = features.shape[0], features.shape[1]
    return features.new_empty((b, c, c))


def _backward_fake(grad_gram, features, scale):
    checks.gram_matrix_backward(grad_gram, features, scale)
    support.require_device(features, "features", "ext_gram_matrix_backward")
    return layout.empty_grad(features)


_setup_context, _backward = autograd.gram_formulas(torch.ops.fastgram.ext_gram_matrix_backward)


torch.library.register_fake("fastgram::ext_gram_matrix", _fake)
torch.library.register_fake("fastgram::ext_gram_matrix_backward", _backward_fake)
torch.library.register_autograd("fastgram::ext_gram_matrix", _backward, setup_context=_setup_context)


def run(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Signature of :func:`fastgram.backends.reference.gram_matrix`."""
    if not kernel_pays(x):
        return native.gram_matrix(x, scale)
    return torch.ops.fastgram.ext_gram_matrix(x, scale)


def supports(x, scale) -> Optional[str]:
    return support.device_reason(x, "ext_gram_matrix")
