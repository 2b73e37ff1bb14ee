"""The multi-layer moment loss on the extension's CPU kernels
(``csrc/moment_loss_cpu.cpp``, moments of ``csrc/moments_cpu.h``).

* ``fastgram::ext_moment_loss(features, target_means, target_sigmas,
  weights, eps, unbiased) -> (loss, means, sigmas)``: the per-layer (B, C)
  moments of the features are what the backward needs; not differentiable.
* ``fastgram::ext_moment_loss_backward(grad_loss, features, means, sigmas,
  target_means, target_sigmas, weights, unbiased) -> grad_features``.

The target statistics are (B, C) or (1, C) in the features' dtype; their
gradients, (B, C)-sized, are computed here. Double backward goes through the
reference formula (:mod:`fastgram.backends.autograd`).
"""

from __future__ import annotations

from typing import Optional

import torch

from fastgram.backends import checks, moment_loss_autograd
from fastgram.backends.ext import support


def _fake(features, target_means, target_sigmas, weights, eps, unbiased):
    checks.moment_loss(features, target_means, target_sigmas, weights, eps, unbiased)
    support.require_device(features[0], "features[0]", "ext_moment_loss")
    rows = [(f.shape[0], f.shape[1]) for f in features]
    return (features[0].new_empty(()), [f.new_empty(r) for f, r in zip(features, rows)],
            [f.new_empty(r) for f, r in zip(features, rows)])


def _backward_fake(grad_loss, features, means, sigmas, target_means, target_sigmas, weights,
                   unbiased):
    checks.moment_loss_backward(grad_loss, features, means, sigmas, target_means,
                                target_sigmas, weights, unbiased)
    support.require_device(features[0], "features[0]", "ext_moment_loss_backward")
    return [torch.empty_like(f) for f in features]


torch.library.register_fake("fastgram::ext_moment_loss", _fake)
torch.library.register_fake("fastgram::ext_moment_loss_backward", _backward_fake)
torch.library.register_autograd(
    "fastgram::ext_moment_loss",
    moment_loss_autograd.make_backward(
        lambda *args: torch.ops.fastgram.ext_moment_loss_backward(*args)),
    setup_context=moment_loss_autograd.setup_context)


def run(features, target_means, target_sigmas, weights, eps, unbiased) -> torch.Tensor:
    """Signature of :func:`fastgram.backends.reference.moment_loss`."""
    dtype = checks.stats_dtype(features[0].dtype)  # the features' own on the CPU kernels
    target_means = [t.to(dtype).contiguous() for t in target_means]
    target_sigmas = [t.to(dtype).contiguous() for t in target_sigmas]
    return torch.ops.fastgram.ext_moment_loss(
        list(features), target_means, target_sigmas, [float(w) for w in weights], eps, unbiased
    )[0]


def supports(features, target_means, target_sigmas, weights, eps, unbiased) -> Optional[str]:
    return support.device_reason(features[0], "ext_moment_loss")
