"""Triton kernels and launchers of the Gram matrix, also run by the fused
Gram style loss (:mod:`fastgram.kernels.style_loss`); their block sizes and
split-K come from :mod:`fastgram.kernels.gram_plan`.

Shapes: features F are (B, C, N), N = H*W, read through their strides (a 4-D
(B, C, H, W) input is viewed as (B, C, H*W) without a copy whenever its H and
W dimensions flatten, which covers contiguous and channels_last layouts).

Forward, ``G[b] = scale * F[b] F[b]^T``:

* Only the tiles on and above the diagonal are computed; each one is stored
  twice (at (i, j) and mirrored at (j, i)) from the same registers, so the
  result is bitwise symmetric and the arithmetic is halved.
* Style-transfer Grams are small (C <= 512) over long reductions (N up to
  2^18), so N is split over several programs when the tiles alone would not
  fill the GPU (split-K). The partial tiles go to an fp32 workspace (sized to
  stay in L2) that a second kernel sums in a fixed order, on finer tiles so
  that many programs share the read; results are deterministic.
* The fused style loss runs the same kernels with a loss epilogue: the tile of
  ``G - T`` is squared and summed where the tile is finished, one partial sum
  per program, so the loss never reads G back from memory.

Backward, one kernel for both ops: ``dF = coef * M F`` with M read or formed
tile by tile in registers, never materialised beyond one C x C per layer:

* Gram:        M = dG + dG^T (from the upstream dG),  coef = scale
* style loss:  M = 2 G - T - T^T,  coef = g * 2 * scale * w / (B C^2)

The style-loss form is ``s (D + D^T) F`` with ``D = dL/dG = 2 w g (G - T) /
(B C^2)`` and G symmetric; for a symmetric target it is ``k (G - T) F`` with
``k = 4 s w g / (B C^2)``. The forward epilogue, which has G and T in
registers anyway, stores M itself (in the features' dtype: the operand the
backward's tensor-core product reads directly) instead of G, so the backward
reads one C x C matrix per tile row and never touches T. Only when a target
needs a gradient (``dT = -2 w g (G - T) / (B C^2)``) is G kept instead.

Precision: accumulation is fp32 (fp64 for fp64 inputs, on a broadcast-and-sum
path because tensor cores have no fp64 tile shape in Triton). fp32 inputs use
full IEEE fp32 products unless PyTorch itself allows TF32 for matmuls
(``torch.backends.cuda.matmul.allow_tf32``, which
``torch.set_float32_matmul_precision("high")`` also sets), exactly like
``torch.bmm``. The Gram is returned in the input dtype, like ``torch.bmm`` and
the reference op: halving the bytes written matters for the memory-bound
layers, and a bf16 Gram fed on to PyTorch code is what users of bmm expect.
Inside the fused style loss nothing is rounded before the loss: G - T is
formed in fp32 in registers, and the loss is float32 for half inputs. The
backward's tensor-core product takes M in the features' dtype; for fp16 M is
first scaled into fp16's range by a power of two (and dF unscaled after), so
the M of an unnormalised Gram, far beyond 65504, neither overflows nor, when
tiny, drops into the subnormals.

The launchers allocate outputs and launch through
:func:`fastgram.kernels.common.launch`; they know nothing of autograd (see
:mod:`fastgram.backends.triton.gram_matrix`) and do not check their
arguments (the registered operators do, with :mod:`fastgram.backends.checks`).
"""

from __future__ import annotations

import struct
from typing import Optional

import torch
import triton
import triton.language as tl

from fastgram.backends import checks, layout

from . import common, gram_plan


# --------------------------------------------------------------------------
# kernels


@triton.jit
def _pair_to_tiles(pair):
    """Upper-triangle tile pair number -> (ti, tj), ti <= tj, enumerated column
    by column (pair = tj (tj + 1) / 2 + ti) so neighbouring programs share the
    column operand in L2."""
    tj = ((tl.sqrt(8.0 * pair.to(tl.float32) + 1.0) - 1.0) * 0.5).to(tl.int32)
    # fp32 sqrt may land one off near perfect squares; correct both ways
    tj = tl.where(tj * (tj + 1) // 2 > pair, tj - 1, tj)
    tj = tl.where((tj + 1) * (tj + 2) // 2 <= pair, tj + 1, tj)
    ti = pair - tj * (tj + 1) // 2
    return ti, tj


@triton.jit
def _two_part(hi, lo, FP64: tl.constexpr):
    """A Python float passed as fp32 hi + lo parts (Triton scalars are fp32):
    fp64 kernels recombine them to ~48 bits, the others use hi alone."""
    if FP64:
        return tl.cast(hi, tl.float64) + tl.cast(lo, tl.float64)
    else:
        return hi


@triton.jit
def _tile_product(
    f_ptr, b, ti, tj, k_begin, k_end, C,
    stride_fb, stride_fc, stride_fn,
    BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
    USE_DOT: tl.constexpr, UPCAST: tl.constexpr, FP64: tl.constexpr,
    SINGLE_TILE: tl.constexpr,
):
    """sum over k in [k_begin, k_end) of F[ti-block, k] F[tj-block, k]^T.
    SINGLE_TILE (C <= BLOCK_C, so ti == tj == 0): both operands are one load."""
    rows = ti * BLOCK_C + tl.arange(0, BLOCK_C)
    cols = tj * BLOCK_C + tl.arange(0, BLOCK_C)
    ks = tl.arange(0, BLOCK_K)
    base = f_ptr + b.to(tl.int64) * stride_fb
    k_first = (k_begin + ks).to(tl.int64)[None, :] * stride_fn
    a_ptrs = base + rows.to(tl.int64)[:, None] * stride_fc + k_first
    b_ptrs = base + cols.to(tl.int64)[:, None] * stride_fc + k_first
    row_ok = rows[:, None] < C
    col_ok = cols[:, None] < C
    if FP64:
        acc = tl.zeros((BLOCK_C, BLOCK_C), dtype=tl.float64)
    else:
        acc = tl.zeros((BLOCK_C, BLOCK_C), dtype=tl.float32)
    for k in range(k_begin, k_end, BLOCK_K):
        k_ok = (k + ks)[None, :] < k_end
        a = tl.load(a_ptrs, mask=row_ok & k_ok, other=0.0)
        if SINGLE_TILE:
            bt = a
        else:
            bt = tl.load(b_ptrs, mask=col_ok & k_ok, other=0.0)
        a_ptrs += BLOCK_K * stride_fn
        b_ptrs += BLOCK_K * stride_fn
        if USE_DOT:
            if UPCAST:
                a = a.to(tl.float32)
                bt = bt.to(tl.float32)
            acc = tl.dot(a, tl.trans(bt), acc, input_precision=PRECISION)
        else:
            acc += tl.sum(a[:, None, :].to(acc.dtype) * bt[None, :, :].to(acc.dtype), axis=2)
    return acc


@triton.jit
def _gram_epilogue(
    g, b, pair, ti, tj, C,
    out_ptr, stride_ob, stride_oi, stride_oj,
    t_ptr, stride_tb, stride_ti, stride_tj,
    loss_ptr, loss_offset, coef,
    BLOCK_C: tl.constexpr, FUSE_LOSS: tl.constexpr, STORE_DIRECTION: tl.constexpr,
):
    """Store a finished (scaled) tile and its mirror; with FUSE_LOSS also one
    partial sum of coef * (G - T)^2 over the entries this tile owns, and with
    STORE_DIRECTION the stored value is 2 G - T - T^T (what the style-loss
    backward multiplies F by) instead of G."""
    rows = ti * BLOCK_C + tl.arange(0, BLOCK_C)
    cols = tj * BLOCK_C + tl.arange(0, BLOCK_C)
    r = rows.to(tl.int64)[:, None]
    c = cols.to(tl.int64)[None, :]
    inside = (rows[:, None] < C) & (cols[None, :] < C)
    # Only entries with row <= col are stored, each at (row, col) and at (col,
    # row), both from the same value: off-diagonal tiles are wholly upper, and
    # in a diagonal tile this keeps the two triangles bitwise equal.
    upper = inside & (rows[:, None] <= cols[None, :])
    value = g
    if FUSE_LOSS:
        strict = inside & (rows[:, None] < cols[None, :])
        tgt = t_ptr + b.to(tl.int64) * stride_tb
        t = tl.load(tgt + r * stride_ti + c * stride_tj, mask=upper, other=0.0).to(g.dtype)
        t_mirror = tl.load(tgt + r * stride_tj + c * stride_ti, mask=upper, other=0.0)
        t_mirror = t_mirror.to(g.dtype)
        # the entry (r, c) and, off the diagonal, its mirror (c, r)
        d = tl.where(upper, g - t, 0.0)
        d_mirror = tl.where(strict, g - t_mirror, 0.0)
        part = tl.sum(tl.sum(d * d + d_mirror * d_mirror, axis=1), axis=0) * coef
        slot = loss_offset + b * tl.num_programs(0) + pair
        tl.store(loss_ptr + slot, part.to(loss_ptr.dtype.element_ty))
        if STORE_DIRECTION:
            value = (g + g) - t - t_mirror
    value = value.to(out_ptr.dtype.element_ty)
    out = out_ptr + b.to(tl.int64) * stride_ob
    tl.store(out + r * stride_oi + c * stride_oj, value, mask=upper)
    tl.store(out + r * stride_oj + c * stride_oi, value, mask=upper)


@triton.jit
def _gram_forward_kernel(
    f_ptr, stride_fb, stride_fc, stride_fn,
    out_ptr, stride_os, stride_ob, stride_oi, stride_oj,
    t_ptr, stride_tb, stride_ti, stride_tj,
    loss_ptr, loss_offset,
    C, N, chunk, scale_hi, scale_lo, coef_hi, coef_lo,
    WRITE_PARTIAL: tl.constexpr, FUSE_LOSS: tl.constexpr, STORE_DIRECTION: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
    USE_DOT: tl.constexpr, UPCAST: tl.constexpr, FP64: tl.constexpr,
    SINGLE_TILE: tl.constexpr,
):
    """Grid (tile pairs, splits, B). With WRITE_PARTIAL each program writes its
    unscaled partial tile to workspace slice ``program_id(1)``; otherwise it
    owns the whole reduction and finishes the tile itself."""
    pair = tl.program_id(0)
    split = tl.program_id(1)
    b = tl.program_id(2)
    ti, tj = _pair_to_tiles(pair)
    k_begin = split * chunk
    k_end = tl.minimum(N, k_begin + chunk)
    acc = _tile_product(
        f_ptr, b, ti, tj, k_begin, k_end, C, stride_fb, stride_fc, stride_fn,
        BLOCK_C, BLOCK_K, PRECISION, USE_DOT, UPCAST, FP64, SINGLE_TILE,
    )
    if WRITE_PARTIAL:
        rows = ti * BLOCK_C + tl.arange(0, BLOCK_C)
        cols = tj * BLOCK_C + tl.arange(0, BLOCK_C)
        inside = (rows[:, None] < C) & (cols[None, :] < C)
        ws = out_ptr + split.to(tl.int64) * stride_os + b.to(tl.int64) * stride_ob
        tl.store(
            ws + rows.to(tl.int64)[:, None] * stride_oi + cols[None, :] * stride_oj,
            acc, mask=inside,
        )
    else:
        g = acc * _two_part(scale_hi, scale_lo, FP64)
        _gram_epilogue(
            g, b, pair, ti, tj, C, out_ptr, stride_ob, stride_oi, stride_oj,
            t_ptr, stride_tb, stride_ti, stride_tj, loss_ptr, loss_offset,
            _two_part(coef_hi, coef_lo, FP64), BLOCK_C, FUSE_LOSS, STORE_DIRECTION,
        )


@triton.jit
def _gram_split_reduce_kernel(
    ws_ptr, stride_ws, stride_wb, stride_wi, stride_wj, n_split,
    out_ptr, stride_ob, stride_oi, stride_oj,
    t_ptr, stride_tb, stride_ti, stride_tj,
    loss_ptr, loss_offset,
    C, scale_hi, scale_lo, coef_hi, coef_lo,
    FUSE_LOSS: tl.constexpr, STORE_DIRECTION: tl.constexpr, BLOCK_C: tl.constexpr,
    FP64: tl.constexpr,
):
    """Grid (tile pairs, B): sum the split partials in order, then finish."""
    pair = tl.program_id(0)
    b = tl.program_id(1)
    ti, tj = _pair_to_tiles(pair)
    rows = ti * BLOCK_C + tl.arange(0, BLOCK_C)
    cols = tj * BLOCK_C + tl.arange(0, BLOCK_C)
    inside = (rows[:, None] < C) & (cols[None, :] < C)
    ptrs = (
        ws_ptr + b.to(tl.int64) * stride_wb
        + rows.to(tl.int64)[:, None] * stride_wi + cols[None, :] * stride_wj
    )
    acc = tl.load(ptrs, mask=inside, other=0.0)
    for _ in range(1, n_split):
        ptrs += stride_ws
        acc += tl.load(ptrs, mask=inside, other=0.0)
    g = acc * _two_part(scale_hi, scale_lo, FP64)
    _gram_epilogue(
        g, b, pair, ti, tj, C, out_ptr, stride_ob, stride_oi, stride_oj,
        t_ptr, stride_tb, stride_ti, stride_tj, loss_ptr, loss_offset,
        _two_part(coef_hi, coef_lo, FP64), BLOCK_C, FUSE_LOSS, STORE_DIRECTION,
    )


@triton.jit
def _fp16_range_scale(bound):
    """(2**k, 2**-k) with 2**k * bound < 2**15: M * 2**k rounds to a finite
    fp16 (max 65504) with a factor 2 to spare, and entries down to 2**-28
    of the largest stay normal. Built from fp32 exponent bits (exact, no
    transcendental); k is clamped to fp32's normal range: a zero bound gives
    the largest k (M is 0 anyway), an inf/NaN one the smallest (the result
    is inf/NaN, as M is)."""
    bits = bound.to(tl.float32).to(tl.int32, bitcast=True)
    exponent = ((bits >> 23) & 0xFF) - 127
    k = tl.minimum(tl.maximum(14 - exponent, -126), 126)
    up = ((k + 127) << 23).to(tl.float32, bitcast=True)
    down = ((127 - k) << 23).to(tl.float32, bitcast=True)
    return up, down


# What the backward kernel multiplies F by, built per tile from its input A.
A_SUM_TRANSPOSE = 0  # M = A + A^T: A is the Gram's upstream gradient dG
A_AS_IS = 1  # M = A: A is the style loss's stored 2 G - T - T^T
A_GRAM_MINUS_TARGET = 2  # M = 2 A - T - T^T: A is a stored (symmetric) G


@triton.jit
def _gram_backward_kernel(
    a_ptr, stride_ab, stride_ai, stride_aj,
    t_ptr, stride_tb, stride_ti, stride_tj,
    f_ptr, stride_fb, stride_fc, stride_fn,
    df_ptr, stride_db, stride_dc, stride_dn,
    g_ptr, bound_ptr, C, N, coef_hi, coef_lo,
    A_MODE: tl.constexpr, HAS_GRAD_SCALE: tl.constexpr, SCALE_M: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_J: tl.constexpr,
    PRECISION: tl.constexpr, USE_DOT: tl.constexpr, UPCAST: tl.constexpr,
    FP64: tl.constexpr,
):
    """Grid (row blocks, position blocks, B): dF = coef * M F, M from A per
    A_MODE, coef times the scalar at g_ptr when HAS_GRAD_SCALE. Row blocks
    vary fastest so programs sharing a block of F run together.

    SCALE_M (fp16 features): M is scaled by a power of two before it is
    rounded to fp16 for the tensor-core product, and dF unscaled after, so
    that an unnormalised Gram's M (far beyond fp16's 65504) stays finite and
    a tiny one stays out of the subnormals; ``bound_ptr`` holds a bound of
    max |M|. Powers of two scale exactly, so nothing else changes."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    b = tl.program_id(2)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    ns = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    js = tl.arange(0, BLOCK_J)
    r = rows.to(tl.int64)[:, None]
    row_ok = rows[:, None] < C
    n_ok = ns[None, :] < N
    a_base = a_ptr + b.to(tl.int64) * stride_ab
    t_base = t_ptr + b.to(tl.int64) * stride_tb
    f_base = f_ptr + b.to(tl.int64) * stride_fb + ns.to(tl.int64)[None, :] * stride_fn
    if FP64:
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float64)
    else:
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    if SCALE_M:
        m_up, m_down = _fp16_range_scale(tl.load(bound_ptr))
    for j0 in range(0, C, BLOCK_J):
        j = (j0 + js).to(tl.int64)
        m_ok = row_ok & ((j0 + js)[None, :] < C)
        m = tl.load(a_base + r * stride_ai + j[None, :] * stride_aj, mask=m_ok, other=0.0)
        if A_MODE == 0:
            m_t = tl.load(a_base + r * stride_aj + j[None, :] * stride_ai, mask=m_ok, other=0.0)
            m = m.to(acc.dtype) + m_t.to(acc.dtype)
        elif A_MODE == 2:
            t = tl.load(t_base + r * stride_ti + j[None, :] * stride_tj, mask=m_ok, other=0.0)
            t_t = tl.load(t_base + r * stride_tj + j[None, :] * stride_ti, mask=m_ok, other=0.0)
            m = m.to(acc.dtype)
            m = (m + m) - t.to(acc.dtype) - t_t.to(acc.dtype)
        f = tl.load(
            f_base + j[:, None] * stride_fc,
            mask=((j0 + js)[:, None] < C) & n_ok, other=0.0,
        )
        if USE_DOT:
            if UPCAST:
                acc = tl.dot(m.to(tl.float32), f.to(tl.float32), acc, input_precision=PRECISION)
            else:
                # half inputs: M is rounded to F's dtype so the product runs
                # on tensor cores (fp16 within its range, see SCALE_M); fp32
                # inputs keep M in fp32
                if SCALE_M:
                    m = m.to(tl.float32) * m_up
                acc = tl.dot(m.to(f.dtype), f, acc, input_precision=PRECISION)
        else:
            acc += tl.sum(m.to(acc.dtype)[:, :, None] * f.to(acc.dtype)[None, :, :], axis=1)
    coef = _two_part(coef_hi, coef_lo, FP64)
    if HAS_GRAD_SCALE:
        coef = coef * tl.load(g_ptr).to(acc.dtype)
    if SCALE_M:
        acc = acc * m_down  # exact: the products were summed in fp32
    acc = acc * coef
    tl.store(
        df_ptr + b.to(tl.int64) * stride_db + r * stride_dc
        + ns.to(tl.int64)[None, :] * stride_dn,
        acc.to(df_ptr.dtype.element_ty), mask=row_ok & n_ok,
    )


# --------------------------------------------------------------------------
# argument layout


def _flattens(x: torch.Tensor) -> bool:
    """Whether (B, C, H, W) ``x`` views as (B, C, H*W) with one stride over H*W."""
    _, _, h, w = x.shape
    return h == 1 or w == 1 or x.stride(2) == w * x.stride(3)


def as_bcn(x: torch.Tensor) -> tuple:
    """(tensor, strides (sb, sc, sn)) reading ``x`` as (B, C, N); copies only
    layouts whose H and W do not flatten into one stride."""
    if x.dim() == 3:
        return x, x.stride()
    if not _flattens(x):
        x = x.contiguous()
    _, _, h, w = x.shape
    stride_n = x.stride(2) if w == 1 else x.stride(3)
    return x, (x.stride(0), x.stride(1), stride_n)


def layer_sizes(f: torch.Tensor) -> tuple:
    """(B, C, N) of features ``f``."""
    batch, channels = f.shape[0], f.shape[1]
    return batch, channels, f.numel() // (batch * channels)


def _target_strides(t: Optional[torch.Tensor]) -> tuple:
    if t is None:
        return 0, 0, 0
    if t.dim() == 2:
        return 0, t.stride(0), t.stride(1)  # broadcast over the batch
    return t.stride()


def _split_float(value: float, name: str) -> tuple:
    """(hi, lo): hi is ``value`` rounded to fp32, lo the fp32 remainder (pure
    Python: no tensors, so it also runs while torch.compile traces)."""
    try:
        hi = struct.unpack("f", struct.pack("f", value))[0]
        lo = struct.unpack("f", struct.pack("f", value - hi))[0]
    except OverflowError:
        raise ValueError(f"{name}: {value} is outside the float32 range") from None
    return hi, lo


# --------------------------------------------------------------------------
# launchers


def launch_forward(f, strides, batch, channels, n, scale, out, target=None,
                   loss_parts=None, loss_offset=0, coef=0.0, store_direction=False) -> None:
    """One layer: G (B, C, C) into ``out``; with ``target`` also its loss
    partials into ``loss_parts[loss_offset : loss_offset + B * pairs]``, and
    with ``store_direction`` 2 G - T - T^T into ``out`` instead of G."""
    plan = gram_plan.plan_forward(batch, channels, n, f.dtype, f.device)
    dot = gram_plan.dot_config(f.dtype)
    fuse = target is not None
    scalars = (*_split_float(scale, "scale"), *_split_float(coef, "weight"))
    # absent target and loss buffers: any pointer, never read (FUSE_LOSS off)
    t_arg, l_arg = (target, loss_parts) if fuse else (out, out)
    t_strides = _target_strides(target)
    product = dict(BLOCK_C=plan.block_c, BLOCK_K=plan.block_k, SINGLE_TILE=plan.tiles == 1,
                   **dot.meta, num_warps=plan.num_warps, num_stages=plan.num_stages)
    finish = dict(FUSE_LOSS=fuse, STORE_DIRECTION=fuse and store_direction)
    if plan.split == 1:
        common.launch(
            _gram_forward_kernel, (plan.pairs, 1, batch),
            f, *strides, out, 0, *out.stride(), t_arg, *t_strides, l_arg, loss_offset,
            channels, n, plan.chunk, *scalars,
            WRITE_PARTIAL=False, **finish, **product,
        )
        return
    ws = common.new_output(f, (plan.split, batch, channels, channels),
                           checks.stats_dtype(f.dtype))
    common.launch(
        _gram_forward_kernel, (plan.pairs, plan.split, batch),
        f, *strides, ws, *ws.stride(), ws, 0, 0, 0, ws, 0, channels, n, plan.chunk, *scalars,
        WRITE_PARTIAL=True, FUSE_LOSS=False, STORE_DIRECTION=False, **product,
    )
    # Finer tiles than the product's: every one lies inside an upper product
    # tile (finish_block divides block_c), so it reads only written partials.
    common.launch(
        _gram_split_reduce_kernel, (plan.finish_pairs, batch),
        ws, *ws.stride(), plan.split, out, *out.stride(), t_arg, *t_strides,
        l_arg, loss_offset, channels, *scalars,
        BLOCK_C=plan.finish_block, FP64=dot.fp64,
        num_warps=4 if plan.finish_block <= 32 else plan.num_warps, **finish,
    )


def _m_bound(a, a_mode, target) -> torch.Tensor:
    """A 0-d fp32 bound of max |M| (see :data:`A_SUM_TRANSPOSE` and the
    other modes), computed on the device: no host sync."""
    a_max = torch.linalg.vector_norm(a, float("inf"), dtype=torch.float32)
    if a_mode == A_SUM_TRANSPOSE:
        return 2.0 * a_max
    if a_mode == A_GRAM_MINUS_TARGET:
        t_max = torch.linalg.vector_norm(target, float("inf"), dtype=torch.float32)
        return 2.0 * (a_max + t_max)
    return a_max


def launch_backward(a, a_mode, target, f, strides, df, coef, grad_scale=None) -> None:
    """``df = coef * M F`` with M from ``a`` (and ``target``) per ``a_mode``,
    times the 0-d ``grad_scale`` when given."""
    batch, channels, n = layer_sizes(f)
    plan = gram_plan.plan_backward(channels, n, f.dtype, f.device,
                                   reads_target=a_mode == A_GRAM_MINUS_TARGET)
    dot = gram_plan.dot_config(f.dtype)
    _, d_strides = as_bcn(df)
    grid = (triton.cdiv(channels, plan.block_m), triton.cdiv(n, plan.block_n), batch)
    # fp16 (not bf16, which has fp32's range) rounds M to fp16 for the
    # tensor cores; an unnormalised Gram's M overflows there. Rather than
    # fp32 operands (no fp16 tensor cores, several times slower), M is scaled
    # into range by a power of two: the cost is one B*C*C max-reduction per
    # layer (small beside the B*C*N read of F) and a multiply per M element.
    scale_m = dot.use_dot and not dot.upcast and f.dtype == torch.float16
    bound = _m_bound(a, a_mode, target) if scale_m else a
    common.launch(
        _gram_backward_kernel, grid,
        a, *a.stride(), target if target is not None else a, *_target_strides(target),
        f, *strides, df, *d_strides, grad_scale if grad_scale is not None else a, bound,
        channels, n, *_split_float(coef, "scale"),
        A_MODE=a_mode, HAS_GRAD_SCALE=grad_scale is not None, SCALE_M=scale_m,
        BLOCK_M=plan.block_m,
        BLOCK_N=plan.block_n, BLOCK_J=plan.block_j, **dot.meta,
        num_warps=plan.num_warps, num_stages=plan.num_stages,
    )


def new_grad(f: torch.Tensor) -> torch.Tensor:
    """An uninitialised gradient for features ``f``, in a layout :func:`as_bcn`
    reads without a copy (:func:`fastgram.backends.layout.grad_format`)."""
    return common.new_output(f, memory_format=layout.grad_format(f))


def gram_forward(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale * F F^T`` per sample, (B, C, C) in the dtype of ``x``."""
    f, strides = as_bcn(x)
    batch, channels, n = layer_sizes(f)
    out = common.new_output(x, (batch, channels, channels))
    launch_forward(f, strides, batch, channels, n, float(scale), out)
    return out


def gram_backward(grad: torch.Tensor, x: torch.Tensor, scale: float) -> torch.Tensor:
    """dL/dx = scale * (dG + dG^T) F for dL/dG = ``grad`` (B, C, C), any strides."""
    f, strides = as_bcn(x)
    df = new_grad(f)
    launch_backward(grad, A_SUM_TRANSPOSE, None, f, strides, df, float(scale))
    return df
