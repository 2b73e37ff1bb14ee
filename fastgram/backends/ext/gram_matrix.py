"""Gram matrices on the extension (``csrc/gram_cpu.cpp``, ``csrc/gram_cuda.cu``).

* ``fastgram::ext_gram_matrix(features, scale) -> G``, (B, C, C) in the
  dtype of the features.
* ``fastgram::ext_gram_matrix_backward(grad_gram, features, scale) -> grad``,
  ``scale * (dG + dG^T) F`` shaped like the features.

Autograd and double backward: :mod:`fastgram.backends.autograd`.
"""

from __future__ import annotations

from typing import Optional

import torch

from fastgram.backends import autograd, checks, layout, reference
from fastgram.backends.ext import support

# Below this many multiply-adds (B * C^2 * N) the CPU path hands the call to
# the reference: the fixed cost of the custom op's autograd bookkeeping
# (about 0.1 ms, measured on a 2-core machine) exceeds the work, and plain
# PyTorch is faster. Above it the fused kernels win.
CPU_MIN_WORK = 1 << 20


def work(x: torch.Tensor) -> int:
    """Multiply-adds of one Gram: B * C * (C * N)."""
    return x.shape[0] * x.shape[1] * x[0].numel()


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
    if x.device.type == "cpu" and work(x) < CPU_MIN_WORK:
        return reference.gram_matrix(x, scale)
    return torch.ops.fastgram.ext_gram_matrix(x, scale)


def supports(x, scale) -> Optional[str]:
    return support.device_reason(x, "ext_gram_matrix")
