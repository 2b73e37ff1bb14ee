"""Instance normalisation: Triton kernels and their launchers.

Forward: ``y = act(w * (x - mu) * rstd + b)`` per (sample, channel) row,
with ``rstd = 1 / sqrt(var + eps)``, biased variance, statistics in float32
(float64 for float64 inputs), optional affine parameters of shape (C,) or
per sample (B, C), optional fused relu / leaky_relu.

Two schemes, chosen by row length N = H*W (see :mod:`.norm_common`):

* fused (N <= ``tuning.fused_max_n``; for channels-last inputs also short
  enough that a program holds 16 channels side by side): a program holds
  whole rows in registers: one read of x, one write of y.
* split (longer rows): ``_stats_partial_kernel`` reduces chunks of each row
  (several programs per row, so few long rows still fill the GPU), then
  ``_fwd_apply_kernel`` merges the chunk results and normalises its chunk:
  two reads of x, one write of y, two launches.

Only the per-row mean and rstd are saved for backward. Backward mirrors the
forward: with ``g = dy * act'(z)`` (z the pre-activation, recomputed from x),
``S1 = sum(g)`` and ``S2 = sum(g * xhat)`` per row,
``dx = w * rstd * (g - (S1 + xhat * S2) / N)``; ``S1`` and ``S2`` are also the
per-row gradients of bias and weight (``_param_grad_kernel`` sums them over
the batch for (C,) parameters, in a fixed order). The fused backward reads x
and dy once and writes dx; the split one reduces S1/S2 per chunk first, then
reads x and dy again to write dx.

Tuning (``tuning.fused_max_n`` = 16384, 4096-element tiles, 16 warps at
most) was chosen from register counts of the sm_90 build (no spills at the
largest fused float32 or bfloat16 row), not from GPU timings: none could
be measured yet.

The backward kernels also serve AdaIN (:mod:`.adain`): there the output is
blended, ``y = alpha * z + (1 - alpha) * x`` (``BLEND``), which adds
``(1 - alpha) * dy`` to dx and scales g by alpha.
"""

from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from fastgram.backends.checks import stats_dtype

from . import common, norm_common
from .norm_common import (
    chunk_bounds,
    load_tile,
    merge_partials,
    row_block,
    row_moments,
    row_param,
    row_tile,
    second_pass_block,
    store_chunk_stats,
    store_tile,
)

# Activation codes of the registered op (the schema carries an int).
ACT_NONE, ACT_RELU, ACT_LEAKY_RELU = 0, 1, 2
ACTIVATION_CODES = {None: ACT_NONE, "relu": ACT_RELU, "leaky_relu": ACT_LEAKY_RELU}


# --------------------------------------------------------------------------
# kernels


@triton.jit
def _affine_act(xhat, w, bias, slope, HAS_W: tl.constexpr, HAS_B: tl.constexpr,
                HAS_ACT: tl.constexpr):
    z = xhat
    if HAS_W:
        z = z * w[:, None]
    if HAS_B:
        z = z + bias[:, None]
    if HAS_ACT:  # relu is leaky_relu with slope 0
        z = tl.where(z > 0, z, z * slope)
    return z


@triton.jit
def _row_affine(w_ptr, b_ptr, b, c, c_mask, sw_b, sw_c, sb_b, sb_c, absent,
                ACC: tl.constexpr, HAS_W: tl.constexpr, HAS_B: tl.constexpr):
    """(w, bias) of the rows (b, c); ``absent`` stands in for a missing one
    (never read: the HAS_* flags skip it)."""
    w = row_param(w_ptr, b, c, c_mask, sw_b, sw_c, ACC) if HAS_W else absent
    bias = row_param(b_ptr, b, c, c_mask, sb_b, sb_c, ACC) if HAS_B else absent
    return w, bias


@triton.jit
def _fwd_fused_kernel(
    x_ptr, y_ptr, w_ptr, b_ptr, mean_ptr, rstd_ptr,
    C, N, W,
    sx_b, sx_c, sx_h, sx_w, sy_b, sy_c, sy_h, sy_w,
    sw_b, sw_c, sb_b, sb_c,
    eps, slope,
    HAS_W: tl.constexpr, HAS_B: tl.constexpr, HAS_ACT: tl.constexpr,
    SPATIAL_2D: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_N: tl.constexpr,
):
    ACC: tl.constexpr = mean_ptr.dtype.element_ty
    b, c, c_mask = row_block(tl.program_id(0), C, BLOCK_C)
    n, mask = row_tile(0, N, c_mask, BLOCK_N)

    x = load_tile(x_ptr, b, c, n, mask, W, sx_b, sx_c, sx_h, sx_w, ACC, SPATIAL_2D)
    mean, d, rstd = row_moments(x, mask, N, N, eps)

    w, bias = _row_affine(w_ptr, b_ptr, b, c, c_mask, sw_b, sw_c, sb_b, sb_c, rstd,
                          ACC, HAS_W, HAS_B)
    y = _affine_act(d * rstd[:, None], w, bias, slope, HAS_W, HAS_B, HAS_ACT)
    store_tile(y_ptr, y, b, c, n, mask, W, sy_b, sy_c, sy_h, sy_w, SPATIAL_2D)
    tl.store(mean_ptr + b * C + c, mean, mask=c_mask)
    tl.store(rstd_ptr + b * C + c, rstd, mask=c_mask)


@triton.jit
def _stats_partial_kernel(
    x_ptr, pmean_ptr, pm2_ptr,
    C, N, W, sx_b, sx_c, sx_h, sx_w, CHUNK, SPLIT,
    SPATIAL_2D: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Grid (B * C-blocks, SPLIT): mean and M2 of one chunk of rows."""
    store_chunk_stats(x_ptr, pmean_ptr, pm2_ptr, tl.program_id(0), tl.program_id(1),
                      C, N, W, sx_b, sx_c, sx_h, sx_w, CHUNK, SPLIT,
                      SPATIAL_2D, BLOCK_C, BLOCK_N)


@triton.jit
def _fwd_apply_kernel(
    x_ptr, y_ptr, w_ptr, b_ptr, mean_ptr, rstd_ptr, pmean_ptr, pm2_ptr,
    C, N, W,
    sx_b, sx_c, sx_h, sx_w, sy_b, sy_c, sy_h, sy_w,
    sw_b, sw_c, sb_b, sb_c,
    eps, slope, CHUNK, SPLIT,
    HAS_W: tl.constexpr, HAS_B: tl.constexpr, HAS_ACT: tl.constexpr,
    SPATIAL_2D: tl.constexpr, SPLIT_P2: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Grid (B * C-blocks, SPLIT): merge the row statistics, normalise one chunk."""
    ACC: tl.constexpr = mean_ptr.dtype.element_ty
    b, c, c_mask, rows, s = second_pass_block(C, BLOCK_C)
    mean, var = merge_partials(pmean_ptr, pm2_ptr, rows, c_mask, N, N, CHUNK, SPLIT, ACC,
                               SPLIT_P2)
    rstd = 1.0 / tl.sqrt(var + eps)
    if s == 0:
        tl.store(mean_ptr + rows, mean, mask=c_mask)
        tl.store(rstd_ptr + rows, rstd, mask=c_mask)

    w, bias = _row_affine(w_ptr, b_ptr, b, c, c_mask, sw_b, sw_c, sb_b, sb_c, rstd,
                          ACC, HAS_W, HAS_B)
    lo, hi = chunk_bounds(s, CHUNK, N)
    for start in range(lo, hi, BLOCK_N):
        n, mask = row_tile(start, hi, c_mask, BLOCK_N)
        x = load_tile(x_ptr, b, c, n, mask, W, sx_b, sx_c, sx_h, sx_w, ACC, SPATIAL_2D)
        xhat = (x - mean[:, None]) * rstd[:, None]
        y = _affine_act(xhat, w, bias, slope, HAS_W, HAS_B, HAS_ACT)
        store_tile(y_ptr, y, b, c, n, mask, W, sy_b, sy_c, sy_h, sy_w, SPATIAL_2D)


@triton.jit
def _saved_row_params(mean_ptr, rstd_ptr, w_ptr, b_ptr, b, c, c_mask, rows,
                      sw_b, sw_c, sb_b, sb_c,
                      ACC: tl.constexpr, HAS_W: tl.constexpr, HAS_B: tl.constexpr):
    """(mean, rstd, w, bias) of the rows (b, c) (flat indices ``rows``): the
    statistics the forward saved and the affine parameters."""
    mean = tl.load(mean_ptr + rows, mask=c_mask, other=0.0)
    rstd = tl.load(rstd_ptr + rows, mask=c_mask, other=0.0)
    w, bias = _row_affine(w_ptr, b_ptr, b, c, c_mask, sw_b, sw_c, sb_b, sb_c, rstd,
                          ACC, HAS_W, HAS_B)
    return mean, rstd, w, bias


@triton.jit
def _grad_tile(x_ptr, dy_ptr, b, c, n, mask, W,
               sx_b, sx_c, sx_h, sx_w, sg_b, sg_c, sg_h, sg_w,
               mean, rstd, w, bias, slope, alpha, ACC: tl.constexpr,
               HAS_W: tl.constexpr, HAS_B: tl.constexpr, HAS_ACT: tl.constexpr,
               BLEND: tl.constexpr, SPATIAL_2D: tl.constexpr):
    """(xhat, g, dy) of the tile (b, c, n): g is the gradient at the affine
    output z, through the activation and the blend."""
    x = load_tile(x_ptr, b, c, n, mask, W, sx_b, sx_c, sx_h, sx_w, ACC, SPATIAL_2D)
    dy = load_tile(dy_ptr, b, c, n, mask, W, sg_b, sg_c, sg_h, sg_w, ACC, SPATIAL_2D)
    xhat = (x - mean[:, None]) * rstd[:, None]
    g = dy
    if BLEND:
        g = g * alpha
    if HAS_ACT:
        z = _affine_act(xhat, w, bias, slope, HAS_W, HAS_B, False)
        g = tl.where(z > 0, g, g * slope)
    return xhat, g, dy


@triton.jit
def _grad_x(xhat, g, dy, scale, s1, s2, N, VAR_DIV, alpha, BLEND: tl.constexpr):
    """dx from the tile's (xhat, g, dy) and its rows' S1, S2 and w * rstd;
    VAR_DIV is the variance's divisor (N, or N - 1 for AdaIN's unbiased
    option)."""
    dx = scale[:, None] * (g - s1[:, None] / N - xhat * s2[:, None] / VAR_DIV)
    if BLEND:
        dx = dx + (1.0 - alpha) * dy
    return dx


@triton.jit
def _bwd_fused_kernel(
    x_ptr, dy_ptr, dx_ptr, w_ptr, b_ptr, mean_ptr, rstd_ptr, s1_ptr, s2_ptr,
    C, N, VAR_DIV, W,
    sx_b, sx_c, sx_h, sx_w, sg_b, sg_c, sg_h, sg_w, sd_b, sd_c, sd_h, sd_w,
    sw_b, sw_c, sb_b, sb_c,
    slope, alpha,
    HAS_W: tl.constexpr, HAS_B: tl.constexpr, HAS_ACT: tl.constexpr, BLEND: tl.constexpr,
    SPATIAL_2D: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_N: tl.constexpr,
):
    ACC: tl.constexpr = mean_ptr.dtype.element_ty
    b, c, c_mask = row_block(tl.program_id(0), C, BLOCK_C)
    n, mask = row_tile(0, N, c_mask, BLOCK_N)
    rows = b * C + c

    mean, rstd, w, bias = _saved_row_params(mean_ptr, rstd_ptr, w_ptr, b_ptr, b, c, c_mask, rows,
                                            sw_b, sw_c, sb_b, sb_c, ACC, HAS_W, HAS_B)
    xhat, g, dy = _grad_tile(x_ptr, dy_ptr, b, c, n, mask, W,
                             sx_b, sx_c, sx_h, sx_w, sg_b, sg_c, sg_h, sg_w,
                             mean, rstd, w, bias, slope, alpha, ACC,
                             HAS_W, HAS_B, HAS_ACT, BLEND, SPATIAL_2D)
    s1 = tl.sum(g, 1)
    s2 = tl.sum(g * xhat, 1)
    scale = rstd * w if HAS_W else rstd
    dx = _grad_x(xhat, g, dy, scale, s1, s2, N, VAR_DIV, alpha, BLEND)
    store_tile(dx_ptr, dx, b, c, n, mask, W, sd_b, sd_c, sd_h, sd_w, SPATIAL_2D)
    tl.store(s1_ptr + rows, s1, mask=c_mask)
    tl.store(s2_ptr + rows, s2, mask=c_mask)


@triton.jit
def _bwd_partial_kernel(
    x_ptr, dy_ptr, w_ptr, b_ptr, mean_ptr, rstd_ptr, ps1_ptr, ps2_ptr,
    C, N, W,
    sx_b, sx_c, sx_h, sx_w, sg_b, sg_c, sg_h, sg_w,
    sw_b, sw_c, sb_b, sb_c,
    slope, alpha, CHUNK, SPLIT,
    HAS_W: tl.constexpr, HAS_B: tl.constexpr, HAS_ACT: tl.constexpr, BLEND: tl.constexpr,
    SPATIAL_2D: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Grid (B * C-blocks, SPLIT): S1 and S2 of one chunk of rows."""
    ACC: tl.constexpr = mean_ptr.dtype.element_ty
    pid = tl.program_id(0)
    s = tl.program_id(1)
    b, c, c_mask = row_block(pid, C, BLOCK_C)
    rows = b * C + c
    mean, rstd, w, bias = _saved_row_params(mean_ptr, rstd_ptr, w_ptr, b_ptr, b, c, c_mask, rows,
                                            sw_b, sw_c, sb_b, sb_c, ACC, HAS_W, HAS_B)
    s1 = tl.zeros([BLOCK_C], dtype=ACC)
    s2 = tl.zeros([BLOCK_C], dtype=ACC)
    lo, hi = chunk_bounds(s, CHUNK, N)
    for start in range(lo, hi, BLOCK_N):
        n, mask = row_tile(start, hi, c_mask, BLOCK_N)
        xhat, g, dy = _grad_tile(x_ptr, dy_ptr, b, c, n, mask, W,
                                 sx_b, sx_c, sx_h, sx_w, sg_b, sg_c, sg_h, sg_w,
                                 mean, rstd, w, bias, slope, alpha, ACC,
                                 HAS_W, HAS_B, HAS_ACT, BLEND, SPATIAL_2D)
        s1 += tl.sum(g, 1)
        s2 += tl.sum(g * xhat, 1)
    tl.store(ps1_ptr + rows * SPLIT + s, s1, mask=c_mask)
    tl.store(ps2_ptr + rows * SPLIT + s, s2, mask=c_mask)


@triton.jit
def _bwd_apply_kernel(
    x_ptr, dy_ptr, dx_ptr, w_ptr, b_ptr, mean_ptr, rstd_ptr, ps1_ptr, ps2_ptr,
    s1_ptr, s2_ptr,
    C, N, VAR_DIV, W,
    sx_b, sx_c, sx_h, sx_w, sg_b, sg_c, sg_h, sg_w, sd_b, sd_c, sd_h, sd_w,
    sw_b, sw_c, sb_b, sb_c,
    slope, alpha, CHUNK, SPLIT,
    HAS_W: tl.constexpr, HAS_B: tl.constexpr, HAS_ACT: tl.constexpr, BLEND: tl.constexpr,
    SPATIAL_2D: tl.constexpr, SPLIT_P2: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Grid (B * C-blocks, SPLIT): sum the chunk S1/S2, write dx for one chunk."""
    ACC: tl.constexpr = mean_ptr.dtype.element_ty
    b, c, c_mask, rows, s = second_pass_block(C, BLOCK_C)
    parts = tl.arange(0, SPLIT_P2)
    pmask = c_mask[:, None] & (parts < SPLIT)[None, :]
    poffs = rows[:, None] * SPLIT + parts[None, :]
    s1 = tl.sum(tl.load(ps1_ptr + poffs, mask=pmask, other=0.0), 1)
    s2 = tl.sum(tl.load(ps2_ptr + poffs, mask=pmask, other=0.0), 1)
    if s == 0:
        tl.store(s1_ptr + rows, s1, mask=c_mask)
        tl.store(s2_ptr + rows, s2, mask=c_mask)

    mean, rstd, w, bias = _saved_row_params(mean_ptr, rstd_ptr, w_ptr, b_ptr, b, c, c_mask, rows,
                                            sw_b, sw_c, sb_b, sb_c, ACC, HAS_W, HAS_B)
    scale = rstd * w if HAS_W else rstd
    lo, hi = chunk_bounds(s, CHUNK, N)
    for start in range(lo, hi, BLOCK_N):
        n, mask = row_tile(start, hi, c_mask, BLOCK_N)
        xhat, g, dy = _grad_tile(x_ptr, dy_ptr, b, c, n, mask, W,
                                 sx_b, sx_c, sx_h, sx_w, sg_b, sg_c, sg_h, sg_w,
                                 mean, rstd, w, bias, slope, alpha, ACC,
                                 HAS_W, HAS_B, HAS_ACT, BLEND, SPATIAL_2D)
        dx = _grad_x(xhat, g, dy, scale, s1, s2, N, VAR_DIV, alpha, BLEND)
        store_tile(dx_ptr, dx, b, c, n, mask, W, sd_b, sd_c, sd_h, sd_w, SPATIAL_2D)


@triton.jit
def _batch_grad(src_ptr, dst_ptr, b, c, c_mask, B, C, PER_SAMPLE: tl.constexpr):
    """One parameter's gradient from its per-row sums ``src`` (B, C): copied
    for a (B, C) parameter, else summed over the batch by program b == 0."""
    if PER_SAMPLE:
        g = tl.load(src_ptr + b * C + c, mask=c_mask, other=0.0)
        tl.store(dst_ptr + b * C + c, g.to(dst_ptr.dtype.element_ty), mask=c_mask)
    elif b == 0:
        g = tl.load(src_ptr + c, mask=c_mask, other=0.0)
        for i in range(1, B):
            g += tl.load(src_ptr + i * C + c, mask=c_mask, other=0.0)
        tl.store(dst_ptr + c, g.to(dst_ptr.dtype.element_ty), mask=c_mask)


@triton.jit
def _param_grad_kernel(
    s1_ptr, s2_ptr, dw_ptr, db_ptr, B, C,
    HAS_W: tl.constexpr, W_PER_SAMPLE: tl.constexpr,
    HAS_B: tl.constexpr, B_PER_SAMPLE: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """Grid (B or 1, C-blocks): weight gradient from S2 and bias gradient from
    S1, summed over the batch for (C,) parameters (in a fixed order, so the
    result is deterministic), cast to the parameters' dtype."""
    b = tl.program_id(0)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    if HAS_W:
        _batch_grad(s2_ptr, dw_ptr, b, c, c_mask, B, C, W_PER_SAMPLE)
    if HAS_B:
        _batch_grad(s1_ptr, db_ptr, b, c, c_mask, B, C, B_PER_SAMPLE)


# --------------------------------------------------------------------------
# launchers


def _param_strides(p: Optional[torch.Tensor]) -> tuple[int, int]:
    """(s_b, s_c) of a (C,) or (B, C) parameter; (C,) broadcasts with s_b = 0."""
    if p is None:
        return 0, 0
    if p.dim() == 1:
        return 0, p.stride(0)
    return p.stride(0), p.stride(1)


def _outputs(x: torch.Tensor, sdt: torch.dtype) -> tuple:
    """A tensor like ``x`` and two (B, C) per-row buffers in dtype ``sdt``."""
    rows = tuple(x.shape[:2])
    return common.new_output(x), common.new_output(x, rows, sdt), common.new_output(x, rows, sdt)


def _layout(x: torch.Tensor, *others: torch.Tensor):
    """((C, N, W), strides of x and of each tensor shaped like it in
    ``others``, whether any of them needs the 2-D spatial index, whether x is
    channels-last)."""
    x4 = norm_common.as_4d(x)
    _, C, H, W = x4.shape
    all_strides = [norm_common.strides4(norm_common.as_4d(t)) for t in (x,) + others]
    spatial_2d = not all(s[4] for s in all_strides)
    flat = [s[:4] for s in all_strides]
    channels_last = x4.stride(1) == 1 and H * W > 1
    return (C, H * W, W), flat, spatial_2d, channels_last


def _affine(weight, bias, stand_in, activation, negative_slope) -> tuple:
    """(weight, bias, their strides, slope, flags) as the kernels take them:
    ``stand_in`` for an absent parameter (never read: its HAS_* flag is off);
    relu is leaky_relu with slope 0."""
    flags = dict(HAS_W=weight is not None, HAS_B=bias is not None,
                 HAS_ACT=activation != ACT_NONE)
    slope = 0.0 if activation == ACT_RELU else float(negative_slope)
    strides = (*_param_strides(weight), *_param_strides(bias))
    return (weight if weight is not None else stand_in, bias if bias is not None else stand_in,
            strides, slope, flags)


def forward(
    x: torch.Tensor,
    weight: Optional[torch.Tensor],
    bias: Optional[torch.Tensor],
    eps: float,
    activation: int,
    negative_slope: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Instance norm of ``x`` (B, C, H, W) or (B, C, N).

    Returns ``(y, mean, rstd)``; mean and rstd are (B, C) in float32 (float64
    for float64 input). ``y`` has the layout of ``x`` (channels-last stays
    channels-last; other strided inputs give a contiguous ``y``).
    """
    B = x.shape[0]
    sdt = stats_dtype(x.dtype)
    y, mean, rstd = _outputs(x, sdt)
    (C, N, W), (sx, sy), spatial_2d, channels_last = _layout(x, y)
    w_arg, b_arg, swb, slope, flags = _affine(weight, bias, mean, activation, negative_slope)
    flags.update(SPATIAL_2D=spatial_2d)

    plan = norm_common.fused_plan(N, B, C, channels_last)
    if plan is not None:
        common.launch(
            _fwd_fused_kernel, plan.grid,
            x, y, w_arg, b_arg, mean, rstd, C, N, W, *sx, *sy, *swb, eps, slope,
            **flags, **plan.meta,
        )
        return y, mean, rstd

    plan = norm_common.split_rows(N, B, C, channels_last, x.device)
    pmean, pm2 = plan.partials(x, sdt)
    common.launch(
        _stats_partial_kernel, plan.grid,
        x, pmean, pm2, C, N, W, *sx, plan.chunk, plan.split,
        SPATIAL_2D=spatial_2d, **plan.meta,
    )
    common.launch(
        _fwd_apply_kernel, plan.grid,
        x, y, w_arg, b_arg, mean, rstd, pmean, pm2, C, N, W, *sx, *sy, *swb,
        eps, slope, plan.chunk, plan.split,
        **flags, SPLIT_P2=plan.split_p2, **plan.meta,
    )
    return y, mean, rstd


def backward(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    weight: Optional[torch.Tensor],
    bias: Optional[torch.Tensor],
    mean: torch.Tensor,
    rstd: torch.Tensor,
    activation: int,
    negative_slope: float,
    alpha: Optional[float] = None,
    unbiased: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of :func:`forward` (``alpha`` given: of the blended output
    ``alpha * y + (1 - alpha) * x``, as AdaIN uses; ``unbiased``: of a
    normalisation whose variance was divided by N - 1, AdaIN's option).

    Returns ``(grad_x, s1, s2)``: grad_x like ``x``; s1 = sum(g) and
    s2 = sum(g * xhat) per row, (B, C) in the statistics dtype, which are the
    per-sample gradients of bias and weight.
    """
    B = x.shape[0]
    dx, s1, s2 = _outputs(x, mean.dtype)
    (C, N, W), (sx, sg, sd), spatial_2d, channels_last = _layout(x, grad_out, dx)
    w_arg, b_arg, swb, slope, flags = _affine(weight, bias, mean, activation, negative_slope)
    flags.update(BLEND=alpha is not None, SPATIAL_2D=spatial_2d)
    alpha_arg = 1.0 if alpha is None else float(alpha)
    var_div = N - 1 if unbiased else N

    plan = norm_common.fused_plan(N, B, C, channels_last)
    if plan is not None:
        common.launch(
            _bwd_fused_kernel, plan.grid,
            x, grad_out, dx, w_arg, b_arg, mean, rstd, s1, s2, C, N, var_div, W,
            *sx, *sg, *sd, *swb, slope, alpha_arg,
            **flags, **plan.meta,
        )
        return dx, s1, s2

    plan = norm_common.split_rows(N, B, C, channels_last, x.device)
    ps1, ps2 = plan.partials(x, mean.dtype)
    common.launch(
        _bwd_partial_kernel, plan.grid,
        x, grad_out, w_arg, b_arg, mean, rstd, ps1, ps2, C, N, W,
        *sx, *sg, *swb, slope, alpha_arg, plan.chunk, plan.split,
        **flags, **plan.meta,
    )
    common.launch(
        _bwd_apply_kernel, plan.grid,
        x, grad_out, dx, w_arg, b_arg, mean, rstd, ps1, ps2, s1, s2, C, N, var_div, W,
        *sx, *sg, *sd, *swb, slope, alpha_arg, plan.chunk, plan.split,
        **flags, SPLIT_P2=plan.split_p2, **plan.meta,
    )
    return dx, s1, s2


def param_grads(s1: torch.Tensor, s2: torch.Tensor, weight: Optional[torch.Tensor],
                bias: Optional[torch.Tensor]) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Weight and bias gradients (shapes and dtypes of the parameters; None
    for an absent one) from the per-row sums of :func:`backward`, in one
    launch."""
    if weight is None and bias is None:
        return None, None
    B, C = s1.shape
    grad_w = None if weight is None else common.new_output(s1, tuple(weight.shape), weight.dtype)
    grad_b = None if bias is None else common.new_output(s1, tuple(bias.shape), bias.dtype)
    w_per_sample = weight is not None and weight.dim() == 2
    b_per_sample = bias is not None and bias.dim() == 2
    block_c = min(triton.next_power_of_2(C), 1024)
    common.launch(
        _param_grad_kernel, (B if w_per_sample or b_per_sample else 1, triton.cdiv(C, block_c)),
        s1, s2, s1 if grad_w is None else grad_w, s1 if grad_b is None else grad_b, B, C,
        HAS_W=weight is not None, W_PER_SAMPLE=w_per_sample,
        HAS_B=bias is not None, B_PER_SAMPLE=b_per_sample,
        BLOCK_C=block_c, num_warps=4,
    )
    return grad_w, grad_b
