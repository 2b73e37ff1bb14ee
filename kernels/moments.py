"""Per-channel moments and their gradient (the moment loss): Triton kernels
and launchers built from the instance-norm and AdaIN pieces.

``mean = sum(x) / N`` and ``sigma = sqrt(M2 / D + eps)`` per (sample,
channel) row, D = N or N - 1 (unbiased). Forward: the split reduction of
the norms (``instance_norm._stats_partial_kernel``: mean and M2 per chunk,
several programs per row) and ``_finish_kernel``, which merges each row's
chunks with Chan's formula. Backward, for upstream gradients g_mean and
g_sigma per row: ``dx = g_mean / N + g_sigma * (x - mean) / (sigma * D)``,
AdaIN's style-gradient sweep (``adain._style_bwd_kernel``, one content row
per style row). One read of x forward, one read and one write backward.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from fastgram.backends.checks import stats_dtype

from . import adain, common, instance_norm, norm_common
from .norm_common import merge_partials


@triton.jit
def _finish_kernel(pmean_ptr, pm2_ptr, mean_ptr, sigma_ptr, ROWS, N, VAR_DIV, CHUNK, SPLIT,
                   eps, SPLIT_P2: tl.constexpr, BLOCK_R: tl.constexpr):
    """Grid (row blocks,): mean and sigma of BLOCK_R rows from their chunks."""
    ACC: tl.constexpr = mean_ptr.dtype.element_ty
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    mask = rows < ROWS
    mean, var = merge_partials(pmean_ptr, pm2_ptr, rows, mask, N, VAR_DIV, CHUNK, SPLIT, ACC,
                               SPLIT_P2)
    tl.store(mean_ptr + rows, mean, mask=mask)
    tl.store(sigma_ptr + rows, tl.sqrt(var + eps), mask=mask)


def _var_div(n: int, unbiased: bool) -> int:
    return n - 1 if unbiased else n


def moments(x: torch.Tensor, eps: float, unbiased: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, sigma)`` of ``x`` (B, C, ...), each (B, C) in the statistics
    dtype (float32, float64 for float64 input)."""
    B, C = x.shape[0], x.shape[1]
    sdt = stats_dtype(x.dtype)
    sweep = adain._chunked(norm_common.as_4d(x), B, x.device)
    plan = sweep.plan
    pmean, pm2 = plan.partials(x, sdt)
    common.launch(
        instance_norm._stats_partial_kernel, plan.grid,
        x, pmean, pm2, C, sweep.n, sweep.W, *sweep.strides, plan.chunk, plan.split,
        SPATIAL_2D=sweep.spatial_2d, **plan.meta,
    )
    mean = common.new_output(x, (B, C), sdt)
    sigma = common.new_output(x, (B, C), sdt)
    block_r = min(triton.next_power_of_2(B * C), 256)
    common.launch(
        _finish_kernel, (triton.cdiv(B * C, block_r),),
        pmean, pm2, mean, sigma, B * C, sweep.n, _var_div(sweep.n, unbiased), plan.chunk,
        plan.split, eps, SPLIT_P2=plan.split_p2, BLOCK_R=block_r,
    )
    return mean, sigma


def moments_backward(x: torch.Tensor, mean: torch.Tensor, sigma: torch.Tensor,
                     g_mean: torch.Tensor, g_sigma: torch.Tensor, unbiased: bool) -> torch.Tensor:
    """dx (laid out like ``x``) from the (B, C) gradients of mean and sigma."""
    B, C = x.shape[0], x.shape[1]
    grad = common.new_output(x)
    sweep = adain._chunked(norm_common.as_4d(x), B, x.device)
    sd_b, sd_c, sd_h, sd_w, d_flat = norm_common.strides4(norm_common.as_4d(grad))
    common.launch(
        adain._style_bwd_kernel, sweep.plan.grid,
        x, grad, mean, sigma, g_mean.contiguous(), g_sigma.contiguous(),
        C, 1, sweep.n, _var_div(sweep.n, unbiased), sweep.W, *sweep.strides,
        sd_b, sd_c, sd_h, sd_w, sweep.plan.chunk, sweep.plan.split,
        SPATIAL_2D=sweep.spatial_2d or not d_flat,
        **sweep.plan.meta,
    )
    return grad
