"""AdaIN: Triton kernels and their launchers.

``out = alpha * (sigma_s * (c - mu_c) / sigma_c + mu_s) + (1 - alpha) * c``
with per-(sample, channel) statistics, variances M2 / D with D = N
(biased) or N - 1 (``unbiased``), and ``sigma = sqrt(var + eps)``; ``style`` has the batch of ``content`` or 1
(broadcast), and its own spatial size and layout.

Forward, two launches whatever the sizes:

1. ``_stats_kernel``: chunked statistics (mean and M2 per chunk) of the style
   rows and, when content rows are too long to hold on chip, of the content
   rows too, both in the same launch.
2. ``_fwd_kernel``: merges the style chunks into mu_s and sigma_s, gets the
   content statistics (from registers when the row fits: content is then read
   once, else from the merged chunks) and writes the blended output.

Bytes moved: 2|c| + |s| when content rows fit, 3|c| + |s| otherwise.

Backward: the content gradient is the instance-norm backward with weight
sigma_s and the alpha blend (:func:`.instance_norm.backward`), whose per-row
sums ``S1 = alpha * sum(g)`` and ``S2 = alpha * sum(g * xhat_c)`` are the
gradients of mu_s and sigma_s. Then ``_style_bwd_kernel`` writes
``ds = S1 / N_s + S2 * (s - mu_s) / (sigma_s * D_s)``, summing S1/S2 over the
batch for a broadcast style.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from fastgram.backends.checks import stats_dtype

from . import common, instance_norm, norm_common
from .norm_common import (
    chunk_bounds,
    load_tile,
    merge_partials,
    row_block,
    row_moments,
    row_tile,
    second_pass_block,
    store_chunk_stats,
    store_tile,
)


@triton.jit
def _sweep_affine(
    src_ptr, dst_ptr, b, c, c_mask, lo, hi, W,
    ss_b, ss_c, ss_h, ss_w, sd_b, sd_c, sd_h, sd_w,
    center, scale, shift,
    ACC: tl.constexpr, SPATIAL_2D: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """dst = scale * (src - center) + shift over positions [lo, hi) of the
    rows (b, c), with per-row center, scale and shift."""
    for start in range(lo, hi, BLOCK_N):
        n, mask = row_tile(start, hi, c_mask, BLOCK_N)
        x = load_tile(src_ptr, b, c, n, mask, W, ss_b, ss_c, ss_h, ss_w, ACC, SPATIAL_2D)
        y = scale[:, None] * (x - center[:, None]) + shift[:, None]
        store_tile(dst_ptr, y, b, c, n, mask, W, sd_b, sd_c, sd_h, sd_w, SPATIAL_2D)


@triton.jit
def _stats_kernel(
    c_ptr, c_pmean_ptr, c_pm2_ptr, s_ptr, s_pmean_ptr, s_pm2_ptr,
    C, PROGS_C,
    Nc, Wc, sc_b, sc_c, sc_h, sc_w, CHUNK_C, SPLIT_C,
    Ns, Ws, ss_b, ss_c, ss_h, ss_w, CHUNK_S, SPLIT_S,
    C_SPATIAL_2D: tl.constexpr, C_BLOCK_C: tl.constexpr, C_BLOCK_N: tl.constexpr,
    S_SPATIAL_2D: tl.constexpr, S_BLOCK_C: tl.constexpr, S_BLOCK_N: tl.constexpr,
):
    """1-D grid: the first PROGS_C programs reduce content chunks, the rest
    style chunks (PROGS_C = 0 when content rows fit on chip)."""
    pid = tl.program_id(0)
    if pid < PROGS_C:
        store_chunk_stats(c_ptr, c_pmean_ptr, c_pm2_ptr, pid // SPLIT_C, pid % SPLIT_C,
                          C, Nc, Wc, sc_b, sc_c, sc_h, sc_w, CHUNK_C, SPLIT_C,
                          C_SPATIAL_2D, C_BLOCK_C, C_BLOCK_N)
    else:
        prog = pid - PROGS_C
        store_chunk_stats(s_ptr, s_pmean_ptr, s_pm2_ptr, prog // SPLIT_S, prog % SPLIT_S,
                          C, Ns, Ws, ss_b, ss_c, ss_h, ss_w, CHUNK_S, SPLIT_S,
                          S_SPATIAL_2D, S_BLOCK_C, S_BLOCK_N)


@triton.jit
def _fwd_kernel(
    c_ptr, out_ptr, c_pmean_ptr, c_pm2_ptr, s_pmean_ptr, s_pm2_ptr,
    c_mean_ptr, c_rstd_ptr, s_mean_ptr, s_sigma_ptr,
    C, STYLE_B, Nc, Wc, Ns, VAR_DIV_C, VAR_DIV_S,
    sc_b, sc_c, sc_h, sc_w, so_b, so_c, so_h, so_w,
    eps, alpha, CHUNK_C, SPLIT_C, CHUNK_S, SPLIT_S,
    FUSED: tl.constexpr, SPATIAL_2D: tl.constexpr,
    SPLIT_C_P2: tl.constexpr, SPLIT_S_P2: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Grid (B * C-blocks, SPLIT_C): normalise, restyle and blend content."""
    ACC: tl.constexpr = s_pmean_ptr.dtype.element_ty
    b, c, c_mask, rows, s = second_pass_block(C, BLOCK_C)

    # one style for all samples when STYLE_B == 1
    style_rows = (b % STYLE_B) * C + c
    mu_s, var_s = merge_partials(s_pmean_ptr, s_pm2_ptr, style_rows, c_mask, Ns, VAR_DIV_S,
                                 CHUNK_S, SPLIT_S, ACC, SPLIT_S_P2)
    sigma_s = tl.sqrt(var_s + eps)

    if FUSED:
        n, mask = row_tile(0, Nc, c_mask, BLOCK_N)
        x = load_tile(c_ptr, b, c, n, mask, Wc, sc_b, sc_c, sc_h, sc_w, ACC, SPATIAL_2D)
        mu_c, d, rstd_c = row_moments(x, mask, Nc, VAR_DIV_C, eps)
        # x = d + mu_c, so the blend is an affine map of d alone: x need not
        # stay live in registers next to d
        scale = alpha * sigma_s * rstd_c + (1.0 - alpha)
        shift = alpha * mu_s + (1.0 - alpha) * mu_c
        out = scale[:, None] * d + shift[:, None]
        store_tile(out_ptr, out, b, c, n, mask, Wc, so_b, so_c, so_h, so_w, SPATIAL_2D)
    else:
        mu_c, var_c = merge_partials(c_pmean_ptr, c_pm2_ptr, rows, c_mask, Nc, VAR_DIV_C,
                                     CHUNK_C, SPLIT_C, ACC, SPLIT_C_P2)
        rstd_c = 1.0 / tl.sqrt(var_c + eps)
        scale = alpha * sigma_s * rstd_c + (1.0 - alpha)
        shift = alpha * mu_s + (1.0 - alpha) * mu_c
        lo, hi = chunk_bounds(s, CHUNK_C, Nc)
        _sweep_affine(c_ptr, out_ptr, b, c, c_mask, lo, hi, Wc,
                      sc_b, sc_c, sc_h, sc_w, so_b, so_c, so_h, so_w,
                      mu_c, scale, shift, ACC, SPATIAL_2D, BLOCK_N)

    if s == 0:
        tl.store(c_mean_ptr + rows, mu_c, mask=c_mask)
        tl.store(c_rstd_ptr + rows, rstd_c, mask=c_mask)
        if b < STYLE_B:
            tl.store(s_mean_ptr + style_rows, mu_s, mask=c_mask)
            tl.store(s_sigma_ptr + style_rows, sigma_s, mask=c_mask)


@triton.jit
def _style_bwd_kernel(
    s_ptr, ds_ptr, s_mean_ptr, s_sigma_ptr, s1_ptr, s2_ptr,
    C, REDUCE, Ns, VAR_DIV, Ws,
    ss_b, ss_c, ss_h, ss_w, sd_b, sd_c, sd_h, sd_w, CHUNK, SPLIT,
    SPATIAL_2D: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Grid (STYLE_B * C-blocks, SPLIT): ds for one chunk of style rows.

    REDUCE content samples feed each style row: the whole batch for a
    broadcast style (REDUCE = B), else one (REDUCE = 1, row b feeds row b).
    """
    ACC: tl.constexpr = s_mean_ptr.dtype.element_ty
    pid = tl.program_id(0)
    s = tl.program_id(1)
    b, c, c_mask = row_block(pid, C, BLOCK_C)
    rows = b * C + c
    g_mean = tl.zeros([BLOCK_C], dtype=ACC)
    g_sigma = tl.zeros([BLOCK_C], dtype=ACC)
    for i in range(0, REDUCE):
        content_rows = (b + i) * C + c
        g_mean += tl.load(s1_ptr + content_rows, mask=c_mask, other=0.0)
        g_sigma += tl.load(s2_ptr + content_rows, mask=c_mask, other=0.0)
    mu_s = tl.load(s_mean_ptr + rows, mask=c_mask, other=0.0)
    sigma_s = tl.load(s_sigma_ptr + rows, mask=c_mask, other=1.0)
    coef = g_sigma / (sigma_s * VAR_DIV)
    base = g_mean / Ns
    lo, hi = chunk_bounds(s, CHUNK, Ns)
    # ds = base + coef * (s - mu_s)
    _sweep_affine(s_ptr, ds_ptr, b, c, c_mask, lo, hi, Ws,
                  ss_b, ss_c, ss_h, ss_w, sd_b, sd_c, sd_h, sd_w,
                  mu_s, coef, base, ACC, SPATIAL_2D, BLOCK_N)


# --------------------------------------------------------------------------
# launchers


class _Swept(NamedTuple):
    """A tensor swept in chunks: row length, width, (s_b, s_c, s_h, s_w),
    whether it needs the 2-D spatial index, and its launch plan."""

    n: int
    W: int
    strides: tuple[int, int, int, int]
    spatial_2d: bool
    plan: norm_common.RowPlan


def _chunked(t4: torch.Tensor, samples: int, device) -> _Swept:
    """Layout and chunk plan of a tensor reduced or swept in chunks."""
    _, C, H, W = t4.shape
    n = H * W
    s_b, s_c, s_h, s_w, flat = norm_common.strides4(t4)
    plan = norm_common.split_rows(n, samples, C, s_c == 1 and n > 1, device)
    return _Swept(n, W, (s_b, s_c, s_h, s_w), not flat, plan)


def _var_div(n: int, unbiased: bool) -> int:
    """The divisor of a row's sum of squared deviations."""
    return n - 1 if unbiased else n


def forward(content: torch.Tensor, style: torch.Tensor, eps: float, alpha: float,
            unbiased: bool = False):
    """Returns ``(out, c_mean, c_rstd, s_mean, s_sigma)``: the output like
    ``content`` and the (B, C) / (STYLE_B, C) statistics backward needs."""
    c4, s4 = norm_common.as_4d(content), norm_common.as_4d(style)
    B, C, Hc, Wc = c4.shape
    Bs = s4.shape[0]
    Nc = Hc * Wc
    sdt = stats_dtype(content.dtype)
    out = common.new_output(content)
    o4 = norm_common.as_4d(out)
    c_mean = common.new_output(content, (B, C), sdt)
    c_rstd = common.new_output(content, (B, C), sdt)
    s_mean = common.new_output(content, (Bs, C), sdt)
    s_sigma = common.new_output(content, (Bs, C), sdt)

    sp = _chunked(s4, Bs, style.device)
    s_pmean, s_pm2 = sp.plan.partials(content, sdt)

    sc_b, sc_c, sc_h, sc_w, c_flat = norm_common.strides4(c4)
    so_b, so_c, so_h, so_w, o_flat = norm_common.strides4(o4)
    spatial_2d = not (c_flat and o_flat)
    channels_last = sc_c == 1 and Nc > 1
    plan = norm_common.fused_plan(Nc, B, C, channels_last)
    fused = plan is not None
    if fused:
        c_progs = 0
        c_pmean = c_pm2 = s_pmean  # not read on the fused path
        stats_block_c, stats_block_n = 1, 16
    else:
        plan = norm_common.split_rows(Nc, B, C, channels_last, content.device)
        c_progs = plan.row_blocks * plan.split
        c_pmean, c_pm2 = plan.partials(content, sdt)
        stats_block_c, stats_block_n = plan.block_c, plan.block_n

    s_plan = sp.plan
    s_progs = s_plan.row_blocks * s_plan.split
    common.launch(
        _stats_kernel, (c_progs + s_progs,),
        content, c_pmean, c_pm2, style, s_pmean, s_pm2, C, c_progs,
        Nc, Wc, sc_b, sc_c, sc_h, sc_w, plan.chunk, plan.split,
        sp.n, sp.W, *sp.strides, s_plan.chunk, s_plan.split,
        C_SPATIAL_2D=spatial_2d, C_BLOCK_C=stats_block_c, C_BLOCK_N=stats_block_n,
        S_SPATIAL_2D=sp.spatial_2d, S_BLOCK_C=s_plan.block_c, S_BLOCK_N=s_plan.block_n,
        num_warps=norm_common.num_warps_for(max(s_plan.block_c * s_plan.block_n,
                                           stats_block_c * stats_block_n)),
    )
    # a 2-D grid on both paths (SPLIT_C = 1 when fused)
    common.launch(
        _fwd_kernel, (plan.row_blocks, plan.split),
        content, out, c_pmean, c_pm2, s_pmean, s_pm2, c_mean, c_rstd, s_mean, s_sigma,
        C, Bs, Nc, Wc, sp.n, _var_div(Nc, unbiased), _var_div(sp.n, unbiased), sc_b, sc_c, sc_h, sc_w, so_b, so_c, so_h, so_w,
        eps, alpha, plan.chunk, plan.split, s_plan.chunk, s_plan.split,
        FUSED=fused, SPATIAL_2D=spatial_2d,
        SPLIT_C_P2=plan.split_p2, SPLIT_S_P2=s_plan.split_p2,
        **plan.meta,
    )
    return out, c_mean, c_rstd, s_mean, s_sigma


def backward(
    grad_out: torch.Tensor,
    content: torch.Tensor,
    style: torch.Tensor,
    c_mean: torch.Tensor,
    c_rstd: torch.Tensor,
    s_mean: torch.Tensor,
    s_sigma: torch.Tensor,
    alpha: float,
    need_style: bool,
    unbiased: bool = False,
):
    """Returns ``(grad_content, grad_style)``; grad_style is None when not
    needed (the content gradient is a by-product of the style's sums, so it
    is always computed)."""
    B, C = content.shape[0], content.shape[1]
    Bs = style.shape[0]
    # (1, C) style statistics broadcast over the batch as a (C,) weight
    weight = s_sigma[0] if Bs == 1 else s_sigma
    grad_c, s1, s2 = instance_norm.backward(
        grad_out, content, weight, None, c_mean, c_rstd,
        instance_norm.ACT_NONE, 0.0, alpha=alpha, unbiased=unbiased,
    )
    if not need_style:
        return grad_c, None

    s4 = norm_common.as_4d(style)
    grad_s = common.new_output(style)
    sp = _chunked(s4, Bs, style.device)
    sd_b, sd_c, sd_h, sd_w, d_flat = norm_common.strides4(norm_common.as_4d(grad_s))
    common.launch(
        _style_bwd_kernel, sp.plan.grid,
        style, grad_s, s_mean, s_sigma, s1, s2,
        C, B if Bs == 1 else 1, sp.n, _var_div(sp.n, unbiased), sp.W, *sp.strides,
        sd_b, sd_c, sd_h, sd_w, sp.plan.chunk, sp.plan.split,
        SPATIAL_2D=sp.spatial_2d or not d_flat,
        **sp.plan.meta,
    )
    return grad_c, grad_s
