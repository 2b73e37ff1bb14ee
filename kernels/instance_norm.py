"""Instance normalisation: Triton kernels and their launchers.

Forward: ``y = act(w * (x - mu) * rstd + b)`` per (sample, channel) row,
with ``rstd = 1 / sqrt(var + eps)``, biased variance, statistics in float32
(float64 for float64 inputs), optional affine parameters of shape (C,) or
per sample (B, C), optional fused relu / leaky_relu.

Two schemes, chosen by row length N = H*W (see :mod:`._norm_common`):

* fused (N <= ``config.fused_max_n``; for channels-last inputs also short
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

Tuning (``config.fused_max_n`` = 16384, 4096-element tiles, 16 warps at
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

from . import _norm_common as common
from ._norm_common import chunk_stats, merge_partials, reversed_program, row_param, tile_ptrs

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
    pid = tl.program_id(0)
    c_blocks = tl.cdiv(C, BLOCK_C)
    b = pid // c_blocks
    c = (pid % c_blocks) * BLOCK_C + tl.arange(0, BLOCK_C)
    n = tl.arange(0, BLOCK_N)
    c_mask = c < C
    mask = c_mask[:, None] & (n < N)[None, :]

    x = tl.load(tile_ptrs(x_ptr, b, c, n, W, sx_b, sx_c, sx_h, sx_w, SPATIAL_2D),
                mask=mask, other=0.0).to(ACC)
    mean = tl.sum(x, 1) / N
    d = tl.where(mask, x - mean[:, None], 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(d * d, 1) / N + eps)

    w = row_param(w_ptr, b, c, c_mask, sw_b, sw_c, ACC) if HAS_W else rstd
    bias = row_param(b_ptr, b, c, c_mask, sb_b, sb_c, ACC) if HAS_B else rstd
    y = _affine_act(d * rstd[:, None], w, bias, slope, HAS_W, HAS_B, HAS_ACT)
    tl.store(tile_ptrs(y_ptr, b, c, n, W, sy_b, sy_c, sy_h, sy_w, SPATIAL_2D),
             y.to(y_ptr.dtype.element_ty), mask=mask)
    tl.store(mean_ptr + b * C + c, mean, mask=c_mask)
    tl.store(rstd_ptr + b * C + c, rstd, mask=c_mask)


@triton.jit
def _stats_partial_kernel(
    x_ptr, pmean_ptr, pm2_ptr,
    C, N, W, sx_b, sx_c, sx_h, sx_w, CHUNK, SPLIT,
    SPATIAL_2D: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Grid (B * C-blocks, SPLIT): mean and M2 of one chunk of rows."""
    ACC: tl.constexpr = pmean_ptr.dtype.element_ty
    pid = tl.program_id(0)
    s = tl.program_id(1)
    c_blocks = tl.cdiv(C, BLOCK_C)
    b = pid // c_blocks
    c = (pid % c_blocks) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    lo = s * CHUNK
    hi = tl.minimum(lo + CHUNK, N)
    mean, m2 = chunk_stats(x_ptr, b, c, c_mask, lo, hi, W, sx_b, sx_c, sx_h, sx_w,
                           ACC, SPATIAL_2D, BLOCK_C, BLOCK_N)
    rows = b * C + c
    tl.store(pmean_ptr + rows * SPLIT + s, mean, mask=c_mask)
    tl.store(pm2_ptr + rows * SPLIT + s, m2, mask=c_mask)


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
    pid, s = reversed_program()
    c_blocks = tl.cdiv(C, BLOCK_C)
    b = pid // c_blocks
    c = (pid % c_blocks) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    rows = b * C + c
    mean, var = merge_partials(pmean_ptr, pm2_ptr, rows, c_mask, N, CHUNK, SPLIT, ACC, SPLIT_P2)
    rstd = 1.0 / tl.sqrt(var + eps)
    if s == 0:
        tl.store(mean_ptr + rows, mean, mask=c_mask)
        tl.store(rstd_ptr + rows, rstd, mask=c_mask)

    w = row_param(w_ptr, b, c, c_mask, sw_b, sw_c, ACC) if HAS_W else rstd
    bias = row_param(b_ptr, b, c, c_mask, sb_b, sb_c, ACC) if HAS_B else rstd
    lo = s * CHUNK
    hi = tl.minimum(lo + CHUNK, N)
    for start in range(lo, hi, BLOCK_N):
        n = start + tl.arange(0, BLOCK_N)
        mask = c_mask[:, None] & (n < hi)[None, :]
        x = tl.load(tile_ptrs(x_ptr, b, c, n, W, sx_b, sx_c, sx_h, sx_w, SPATIAL_2D),
                    mask=mask, other=0.0).to(ACC)
        xhat = (x - mean[:, None]) * rstd[:, None]
        y = _affine_act(xhat, w, bias, slope, HAS_W, HAS_B, HAS_ACT)
        tl.store(tile_ptrs(y_ptr, b, c, n, W, sy_b, sy_c, sy_h, sy_w, SPATIAL_2D),
                 y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _grad_pre_affine(x, dy, mean, rstd, w, bias, slope, alpha,
                     HAS_W: tl.constexpr, HAS_B: tl.constexpr, HAS_ACT: tl.constexpr,
                     BLEND: tl.constexpr):
    """(xhat, g): g is the gradient at the affine output z, through the
    activation and the blend."""
    xhat = (x - mean[:, None]) * rstd[:, None]
    g = dy
    if BLEND:
        g = g * alpha
    if HAS_ACT:
        z = _affine_act(xhat, w, bias, slope, HAS_W, HAS_B, False)
        g = tl.where(z > 0, g, g * slope)
    return xhat, g


@triton.jit
def _bwd_fused_kernel(
    x_ptr, dy_ptr, dx_ptr, w_ptr, b_ptr, mean_ptr, rstd_ptr, s1_ptr, s2_ptr,
    C, N, W,
    sx_b, sx_c, sx_h, sx_w, sg_b, sg_c, sg_h, sg_w, sd_b, sd_c, sd_h, sd_w,
    sw_b, sw_c, sb_b, sb_c,
    slope, alpha,
    HAS_W: tl.constexpr, HAS_B: tl.constexpr, HAS_ACT: tl.constexpr, BLEND: tl.constexpr,
    SPATIAL_2D: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_N: tl.constexpr,
):
    ACC: tl.constexpr = mean_ptr.dtype.element_ty
    pid = tl.program_id(0)
    c_blocks = tl.cdiv(C, BLOCK_C)
    b = pid // c_blocks
    c = (pid % c_blocks) * BLOCK_C + tl.arange(0, BLOCK_C)
    n = tl.arange(0, BLOCK_N)
    c_mask = c < C
    mask = c_mask[:, None] & (n < N)[None, :]
    rows = b * C + c

    mean = tl.load(mean_ptr + rows, mask=c_mask, other=0.0)
    rstd = tl.load(rstd_ptr + rows, mask=c_mask, other=0.0)
    w = row_param(w_ptr, b, c, c_mask, sw_b, sw_c, ACC) if HAS_W else rstd
    bias = row_param(b_ptr, b, c, c_mask, sb_b, sb_c, ACC) if HAS_B else rstd
    x = tl.load(tile_ptrs(x_ptr, b, c, n, W, sx_b, sx_c, sx_h, sx_w, SPATIAL_2D),
                mask=mask, other=0.0).to(ACC)
    dy = tl.load(tile_ptrs(dy_ptr, b, c, n, W, sg_b, sg_c, sg_h, sg_w, SPATIAL_2D),
                 mask=mask, other=0.0).to(ACC)
    xhat, g = _grad_pre_affine(x, dy, mean, rstd, w, bias, slope, alpha,
                               HAS_W, HAS_B, HAS_ACT, BLEND)
    s1 = tl.sum(g, 1)
    s2 = tl.sum(g * xhat, 1)
    scale = rstd * w if HAS_W else rstd
    dx = scale[:, None] * (g - (s1[:, None] + xhat * s2[:, None]) / N)
    if BLEND:
        dx = dx + (1.0 - alpha) * dy
    tl.store(tile_ptrs(dx_ptr, b, c, n, W, sd_b, sd_c, sd_h, sd_w, SPATIAL_2D),
             dx.to(dx_ptr.dtype.element_ty), mask=mask)
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
    c_blocks = tl.cdiv(C, BLOCK_C)
    b = pid // c_blocks
    c = (pid % c_blocks) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    rows = b * C + c
    mean = tl.load(mean_ptr + rows, mask=c_mask, other=0.0)
    rstd = tl.load(rstd_ptr + rows, mask=c_mask, other=0.0)
    w = row_param(w_ptr, b, c, c_mask, sw_b, sw_c, ACC) if HAS_W else rstd
    bias = row_param(b_ptr, b, c, c_mask, sb_b, sb_c, ACC) if HAS_B else rstd
    s1 = tl.zeros([BLOCK_C], dtype=ACC)
    s2 = tl.zeros([BLOCK_C], dtype=ACC)
    lo = s * CHUNK
    hi = tl.minimum(lo + CHUNK, N)
    for start in range(lo, hi, BLOCK_N):
        n = start + tl.arange(0, BLOCK_N)
        mask = c_mask[:, None] & (n < hi)[None, :]
        x = tl.load(tile_ptrs(x_ptr, b, c, n, W, sx_b, sx_c, sx_h, sx_w, SPATIAL_2D),
                    mask=mask, other=0.0).to(ACC)
        dy = tl.load(tile_ptrs(dy_ptr, b, c, n, W, sg_b, sg_c, sg_h, sg_w, SPATIAL_2D),
                     mask=mask, other=0.0).to(ACC)
        xhat, g = _grad_pre_affine(x, dy, mean, rstd, w, bias, slope, alpha,
                                   HAS_W, HAS_B, HAS_ACT, BLEND)
        s1 += tl.sum(g, 1)
        s2 += tl.sum(g * xhat, 1)
    tl.store(ps1_ptr + rows * SPLIT + s, s1, mask=c_mask)
    tl.store(ps2_ptr + rows * SPLIT + s, s2, mask=c_mask)


@triton.jit
def _bwd_apply_kernel(
    x_ptr, dy_ptr, dx_ptr, w_ptr, b_ptr, mean_ptr, rstd_ptr, ps1_ptr, ps2_ptr,
    s1_ptr, s2_ptr,
    C, N, W,
    sx_b, sx_c, sx_h, sx_w, sg_b, sg_c, sg_h, sg_w, sd_b, sd_c, sd_h, sd_w,
    sw_b, sw_c, sb_b, sb_c,
    slope, alpha, CHUNK, SPLIT,
    HAS_W: tl.constexpr, HAS_B: tl.constexpr, HAS_ACT: tl.constexpr, BLEND: tl.constexpr,
    SPATIAL_2D: tl.constexpr, SPLIT_P2: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Grid (B * C-blocks, SPLIT): sum the chunk S1/S2, write dx for one chunk."""
    ACC: tl.constexpr = mean_ptr.dtype.element_ty
    pid, s = reversed_program()
    c_blocks = tl.cdiv(C, BLOCK_C)
    b = pid // c_blocks
    c = (pid % c_blocks) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    rows = b * C + c
    parts = tl.arange(0, SPLIT_P2)
    pmask = c_mask[:, None] & (parts < SPLIT)[None, :]
    poffs = rows[:, None] * SPLIT + parts[None, :]
    s1 = tl.sum(tl.load(ps1_ptr + poffs, mask=pmask, other=0.0), 1)
    s2 = tl.sum(tl.load(ps2_ptr + poffs, mask=pmask, other=0.0), 1)
    if s == 0:
        tl.store(s1_ptr + rows, s1, mask=c_mask)
        tl.store(s2_ptr + rows, s2, mask=c_mask)

    mean = tl.load(mean_ptr + rows, mask=c_mask, other=0.0)
    rstd = tl.load(rstd_ptr + rows, mask=c_mask, other=0.0)
    w = row_param(w_ptr, b, c, c_mask, sw_b, sw_c, ACC) if HAS_W else rstd
    bias = row_param(b_ptr, b, c, c_mask, sb_b, sb_c, ACC) if HAS_B else rstd
    scale = rstd * w if HAS_W else rstd
    lo = s * CHUNK
    hi = tl.minimum(lo + CHUNK, N)
    for start in range(lo, hi, BLOCK_N):
        n = start + tl.arange(0, BLOCK_N)
        mask = c_mask[:, None] & (n < hi)[None, :]
        x = tl.load(tile_ptrs(x_ptr, b, c, n, W, sx_b, sx_c, sx_h, sx_w, SPATIAL_2D),
                    mask=mask, other=0.0).to(ACC)
        dy = tl.load(tile_ptrs(dy_ptr, b, c, n, W, sg_b, sg_c, sg_h, sg_w, SPATIAL_2D),
                     mask=mask, other=0.0).to(ACC)
        xhat, g = _grad_pre_affine(x, dy, mean, rstd, w, bias, slope, alpha,
                                   HAS_W, HAS_B, HAS_ACT, BLEND)
        dx = scale[:, None] * (g - (s1[:, None] + xhat * s2[:, None]) / N)
        if BLEND:
            dx = dx + (1.0 - alpha) * dy
        tl.store(tile_ptrs(dx_ptr, b, c, n, W, sd_b, sd_c, sd_h, sd_w, SPATIAL_2D),
                 dx.to(dx_ptr.dtype.element_ty), mask=mask)


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
        if W_PER_SAMPLE:
            g = tl.load(s2_ptr + b * C + c, mask=c_mask, other=0.0)
            tl.store(dw_ptr + b * C + c, g.to(dw_ptr.dtype.element_ty), mask=c_mask)
        elif b == 0:
            g = tl.load(s2_ptr + c, mask=c_mask, other=0.0)
            for i in range(1, B):
                g += tl.load(s2_ptr + i * C + c, mask=c_mask, other=0.0)
            tl.store(dw_ptr + c, g.to(dw_ptr.dtype.element_ty), mask=c_mask)
    if HAS_B:
        if B_PER_SAMPLE:
            g = tl.load(s1_ptr + b * C + c, mask=c_mask, other=0.0)
            tl.store(db_ptr + b * C + c, g.to(db_ptr.dtype.element_ty), mask=c_mask)
        elif b == 0:
            g = tl.load(s1_ptr + c, mask=c_mask, other=0.0)
            for i in range(1, B):
                g += tl.load(s1_ptr + i * C + c, mask=c_mask, other=0.0)
            tl.store(db_ptr + c, g.to(db_ptr.dtype.element_ty), mask=c_mask)


# --------------------------------------------------------------------------
# launchers


def _param_strides(p: Optional[torch.Tensor]) -> tuple[int, int]:
    """(s_b, s_c) of a (C,) or (B, C) parameter; (C,) broadcasts with s_b = 0."""
    if p is None:
        return 0, 0
    if p.dim() == 1:
        return 0, p.stride(0)
    return p.stride(0), p.stride(1)


def _slope(activation: int, negative_slope: float) -> float:
    return 0.0 if activation == ACT_RELU else float(negative_slope)


def _layout(x4: torch.Tensor, *others: torch.Tensor):
    """Strides of x and of each same-shaped tensor in ``others``, and whether
    any of them needs the 2-D spatial index."""
    all_strides = [common.strides4(t) for t in (x4,) + others]
    spatial_2d = not all(s[4] for s in all_strides)
    flat = [s[:4] for s in all_strides]
    channels_last = x4.stride(1) == 1 and x4.shape[2] * x4.shape[3] > 1
    return flat, spatial_2d, channels_last


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
    x4 = common.as_4d(x)
    B, C, H, W = x4.shape
    N = H * W
    y = common.new_output(x)
    y4 = common.as_4d(y)
    sdt = common.stats_dtype(x.dtype)
    mean = common.new_output(x, (B, C), sdt)
    rstd = common.new_output(x, (B, C), sdt)
    (sx, sy), spatial_2d, channels_last = _layout(x4, y4)
    sw, sb = _param_strides(weight), _param_strides(bias)
    flags = dict(
        HAS_W=weight is not None, HAS_B=bias is not None,
        HAS_ACT=activation != ACT_NONE, SPATIAL_2D=spatial_2d,
    )
    w_arg = weight if weight is not None else mean  # never read when absent
    b_arg = bias if bias is not None else mean
    slope = _slope(activation, negative_slope)

    tile = common.fused_tile(N, C, channels_last)
    if tile is not None:
        block_c, block_n = tile
        grid = (B * triton.cdiv(C, block_c),)
        common.launch(
            _fwd_fused_kernel, grid,
            x, y, w_arg, b_arg, mean, rstd, C, N, W, *sx, *sy, *sw, *sb, eps, slope,
            **flags, BLOCK_C=block_c, BLOCK_N=block_n,
            num_warps=common.num_warps_for(block_c * block_n),
        )
        return y, mean, rstd

    block_c, block_n = common.loop_tile(N, C, channels_last)
    row_blocks = B * triton.cdiv(C, block_c)
    chunk, split = common.split_plan(N, row_blocks, block_n, x.device)
    pmean = common.new_output(x, (B * C, split), sdt)
    pm2 = common.new_output(x, (B * C, split), sdt)
    warps = common.num_warps_for(block_c * block_n)
    common.launch(
        _stats_partial_kernel, (row_blocks, split),
        x, pmean, pm2, C, N, W, *sx, chunk, split,
        SPATIAL_2D=spatial_2d, BLOCK_C=block_c, BLOCK_N=block_n, num_warps=warps,
    )
    common.launch(
        _fwd_apply_kernel, (row_blocks, split),
        x, y, w_arg, b_arg, mean, rstd, pmean, pm2, C, N, W, *sx, *sy, *sw, *sb,
        eps, slope, chunk, split,
        **flags, SPLIT_P2=triton.next_power_of_2(split),
        BLOCK_C=block_c, BLOCK_N=block_n, num_warps=warps,
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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of :func:`forward` (``alpha`` given: of the blended output
    ``alpha * y + (1 - alpha) * x``, as AdaIN uses).

    Returns ``(grad_x, s1, s2)``: grad_x like ``x``; s1 = sum(g) and
    s2 = sum(g * xhat) per row, (B, C) in the statistics dtype, which are the
    per-sample gradients of bias and weight.
    """
    x4 = common.as_4d(x)
    B, C, H, W = x4.shape
    N = H * W
    dx = common.new_output(x)
    dx4 = common.as_4d(dx)
    sdt = mean.dtype
    s1 = common.new_output(x, (B, C), sdt)
    s2 = common.new_output(x, (B, C), sdt)
    (sx, sg, sd), spatial_2d, channels_last = _layout(x4, common.as_4d(grad_out), dx4)
    sw, sb = _param_strides(weight), _param_strides(bias)
    flags = dict(
        HAS_W=weight is not None, HAS_B=bias is not None,
        HAS_ACT=activation != ACT_NONE, BLEND=alpha is not None, SPATIAL_2D=spatial_2d,
    )
    w_arg = weight if weight is not None else mean
    b_arg = bias if bias is not None else mean
    slope = _slope(activation, negative_slope)
    alpha_arg = 1.0 if alpha is None else float(alpha)

    tile = common.fused_tile(N, C, channels_last)
    if tile is not None:
        block_c, block_n = tile
        grid = (B * triton.cdiv(C, block_c),)
        common.launch(
            _bwd_fused_kernel, grid,
            x, grad_out, dx, w_arg, b_arg, mean, rstd, s1, s2, C, N, W,
            *sx, *sg, *sd, *sw, *sb, slope, alpha_arg,
            **flags, BLOCK_C=block_c, BLOCK_N=block_n,
            num_warps=common.num_warps_for(block_c * block_n),
        )
        return dx, s1, s2

    block_c, block_n = common.loop_tile(N, C, channels_last)
    row_blocks = B * triton.cdiv(C, block_c)
    chunk, split = common.split_plan(N, row_blocks, block_n, x.device)
    ps1 = common.new_output(x, (B * C, split), sdt)
    ps2 = common.new_output(x, (B * C, split), sdt)
    warps = common.num_warps_for(block_c * block_n)
    common.launch(
        _bwd_partial_kernel, (row_blocks, split),
        x, grad_out, w_arg, b_arg, mean, rstd, ps1, ps2, C, N, W,
        *sx, *sg, *sw, *sb, slope, alpha_arg, chunk, split,
        **flags, BLOCK_C=block_c, BLOCK_N=block_n, num_warps=warps,
    )
    common.launch(
        _bwd_apply_kernel, (row_blocks, split),
        x, grad_out, dx, w_arg, b_arg, mean, rstd, ps1, ps2, s1, s2, C, N, W,
        *sx, *sg, *sd, *sw, *sb, slope, alpha_arg, chunk, split,
        **flags, SPLIT_P2=triton.next_power_of_2(split),
        BLOCK_C=block_c, BLOCK_N=block_n, num_warps=warps,
    )
    return dx, s1, s2


def param_grads(
    s1: torch.Tensor,
    s2: torch.Tensor,
    weight: Optional[torch.Tensor],
    bias: Optional[torch.Tensor],
) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
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
