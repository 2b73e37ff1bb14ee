"""Launchers of the fused multi-layer Gram style loss: the Gram kernels of
:mod:`fastgram.kernels.gram` run with their loss epilogue (forward) and with
the stored ``2 G - T - T^T`` as the matrix of their backward product.
Arguments are checked by the registered operators
(:mod:`fastgram.backends.checks`), not here."""

from __future__ import annotations

from typing import Sequence

import torch

from fastgram.backends.checks import stats_dtype

from . import common
from .gram import (
    A_AS_IS,
    A_GRAM_MINUS_TARGET,
    as_bcn,
    launch_backward,
    launch_forward,
    layer_sizes,
    new_grad,
)
from .gram_plan import plan_forward


def saved_dtype(dtype: torch.dtype, keep_gram: bool) -> torch.dtype:
    """dtype of what the style loss keeps per layer for its backward pass.

    G itself (``keep_gram``, needed for target gradients) in the accumulation
    dtype; else 2 G - T - T^T in the dtype the backward's tensor-core product
    consumes, the features' own (fp32 for fp16, whose range is too narrow
    for an unnormalised Gram)."""
    if keep_gram or dtype == torch.float16:
        return stats_dtype(dtype)
    return dtype


def style_loss_forward(features: Sequence[torch.Tensor], targets: Sequence[torch.Tensor],
                       weights: Sequence[float], scales: Sequence[float],
                       keep_gram: bool) -> tuple:
    """``sum_l w_l mean((s_l F_l F_l^T - T_l)^2)`` and, per layer, what the
    backward pass needs (see :func:`saved_dtype`). One loss partial per tile
    program, all layers in one buffer, summed once in a fixed order."""
    first = features[0]
    layers = []
    slots = 0
    for x, t in zip(features, targets):
        f, strides = as_bcn(x)
        batch, channels, n = layer_sizes(f)
        plan = plan_forward(batch, channels, n, f.dtype, f.device)
        layers.append((f, strides, batch, channels, n, t, slots))
        slots += batch * plan.finish_pairs
    parts = common.new_output(first, (slots,), stats_dtype(first.dtype))
    saved = []
    for (f, strides, batch, channels, n, t, offset), w, s in zip(layers, weights, scales):
        out = common.new_output(f, (batch, channels, channels), saved_dtype(f.dtype, keep_gram))
        coef = float(w) / (batch * channels * channels)
        launch_forward(f, strides, batch, channels, n, float(s), out, t, parts, offset, coef,
                       store_direction=not keep_gram)
        saved.append(out)
    return parts.sum(), saved


def style_loss_backward(grad: torch.Tensor, features: Sequence[torch.Tensor],
                        targets: Sequence[torch.Tensor], saved: Sequence[torch.Tensor],
                        weights: Sequence[float], scales: Sequence[float],
                        keep_gram: bool) -> list:
    """dL/dF_l = g * 2 s_l w_l / (B C_l^2) * (2 G_l - T_l - T_l^T) F_l for the
    loss gradient g (a 0-d tensor, read on the device: no host sync), from
    what :func:`style_loss_forward` saved with the same ``keep_gram``."""
    mode = A_GRAM_MINUS_TARGET if keep_gram else A_AS_IS
    grads = []
    for x, t, m, w, s in zip(features, targets, saved, weights, scales):
        f, strides = as_bcn(x)
        batch, channels, _ = layer_sizes(f)
        df = new_grad(f)
        coef = 2.0 * float(s) * float(w) / (batch * channels * channels)
        launch_backward(m, mode, t, f, strides, df, coef, grad)
        grads.append(df)
    return grads
