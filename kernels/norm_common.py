"""Shared pieces of the instance-norm and AdaIN kernels.

Layout convention: every tensor is seen as (B, C, H, W) with its own four
strides (3-D (B, C, N) inputs get H = 1). A program owns one sample ``b``, a
block of ``BLOCK_C`` channels and a range of spatial positions ``n``; the
address of element (b, c, n) is ``b*s_b + c*s_c + spatial(n)``, where
``spatial(n)`` is ``n*s_w`` when the spatial dims collapse to one stride
(contiguous, channels-last, channel slices, ...) and ``(n // W)*s_h +
(n % W)*s_w`` otherwise (for example a slice along W). So channels-last and
strided inputs are read in place, never copied. Triton specialises integer
arguments equal to 1, so a unit stride (NCHW: s_w, channels-last: s_c) is a
compile-time constant and loads along it are vectorised.

Statistics are accumulated in the dtype of the statistics buffers (float32,
or float64 for float64 inputs). Long rows are reduced in chunks: each chunk
yields its mean and M2 (sum of squared deviations), and chunks are merged
with Chan et al.'s pairwise formula, which avoids the cancellation of the
sum-of-squares formula.

Launch parameters live in :data:`tuning`.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import torch
import triton
import triton.language as tl

from . import common


@dataclasses.dataclass
class NormTuning:
    """Launch parameters of the normalisation kernels; tests lower the
    thresholds with :func:`fastgram.kernels.common.override` to reach the
    split path with interpreter-sized inputs.

    fused_max_n: longest row (H*W) kept whole on chip; a longer row takes the
        two-pass split path (partial statistics, then a normalising pass).
    tile_elems: elements per program-iteration on the split path.
    min_chunk: fewest spatial positions one split program reduces.
    max_split: most chunks a row is cut into (bounds the merge vector).
    target_programs: programs to aim for so the GPU is full (None: 4 per SM,
        or 8 on the CPU interpreter).
    """

    fused_max_n: int = 16384
    tile_elems: int = 4096
    min_chunk: int = 4096
    max_split: int = 256
    target_programs: Optional[int] = None


tuning = NormTuning()


# --------------------------------------------------------------------------
# host-side helpers


def as_4d(t: torch.Tensor) -> torch.Tensor:
    """(B, C, N) -> (B, C, 1, N) view; 4-D tensors unchanged."""
    return t.unsqueeze(2) if t.dim() == 3 else t


def spatial_strides(t4: torch.Tensor) -> tuple[int, int, bool]:
    """(s_h, s_w, flat) of a 4-D view; ``flat`` when ``n*s_w`` addresses
    position n. Flat tensors get s_h = W*s_w, so the 2-D index is right for
    them too when another tensor of the same launch needs it."""
    _, _, h, w = t4.shape
    s_h, s_w = t4.stride(2), t4.stride(3)
    if w == 1:
        s_w = s_h  # a column: position n is row n
    if h == 1 or w == 1 or s_h == w * s_w:
        return w * s_w, s_w, True
    return s_h, s_w, False


def strides4(t4: torch.Tensor) -> tuple[int, int, int, int, bool]:
    s_h, s_w, flat = spatial_strides(t4)
    return t4.stride(0), t4.stride(1), s_h, s_w, flat


def target_programs(device: torch.device) -> int:
    if tuning.target_programs is not None:
        return tuning.target_programs
    sms = common.sm_count(device)
    return 8 if sms is None else 4 * sms


def num_warps_for(tile: int) -> int:
    return max(1, min(16, tile // 256))


# Channels-last programs must span this many channels (or all of them) for
# their loads to be coalesced: a row of one channel is strided by C.
_MIN_CHANNELS_LAST_BLOCK = 16


def fused_tile(n: int, channels: int, channels_last: bool) -> Optional[tuple[int, int]]:
    """(BLOCK_C, BLOCK_N) for a program holding whole rows of length n, or
    None when rows should take the split path instead: rows longer than
    ``tuning.fused_max_n``, and channels-last rows too long for a program to
    hold enough channels side by side (then the split path's 2-D tiles read
    along the contiguous channel dim, at the price of a second read of x)."""
    if n > tuning.fused_max_n:
        return None
    block_n = triton.next_power_of_2(n)
    budget = max(tuning.tile_elems, block_n)
    block_c = max(1, min(triton.next_power_of_2(channels), budget // block_n))
    if channels_last:
        if block_c < min(channels, _MIN_CHANNELS_LAST_BLOCK):
            return None
    else:
        # contiguous rows: several channels per program only for short rows
        block_c = max(1, min(block_c, max(1, 1024 // block_n)))
    return block_c, block_n


def loop_tile(n: int, channels: int, channels_last: bool) -> tuple[int, int]:
    """(BLOCK_C, BLOCK_N) for a program looping over a chunk of a row."""
    if channels_last:
        block_c = min(triton.next_power_of_2(channels), 2 * _MIN_CHANNELS_LAST_BLOCK)
    else:
        block_c = 1
    block_n = min(triton.next_power_of_2(n), max(16, tuning.tile_elems // block_c))
    return block_c, block_n


def split_plan(n: int, row_blocks: int, block_n: int, device) -> tuple[int, int]:
    """(chunk, split): cut rows of length n into ``split`` chunks of ``chunk``
    positions (a multiple of block_n) so that row_blocks*split programs fill
    the device."""
    want = max(1, triton.cdiv(target_programs(device), row_blocks))
    most = max(1, min(tuning.max_split, n // max(1, tuning.min_chunk)))
    split = min(want, most)
    chunk = triton.cdiv(triton.cdiv(n, split), block_n) * block_n
    return chunk, triton.cdiv(n, chunk)


@dataclasses.dataclass(frozen=True)
class RowPlan:
    """How a launch spreads the (sample, channel) rows over programs: blocks
    of ``block_c`` rows, each row cut into ``split`` chunks of ``chunk``
    positions, one program per (row block, chunk). A fused plan holds whole
    rows (``split`` = 1) on a 1-D grid."""

    rows: int
    block_c: int
    block_n: int
    row_blocks: int
    chunk: int
    split: int
    fused: bool

    @property
    def grid(self) -> tuple[int, ...]:
        return (self.row_blocks,) if self.fused else (self.row_blocks, self.split)

    @property
    def split_p2(self) -> int:
        """``split`` rounded up to a power of two (the merge vector's length)."""
        return triton.next_power_of_2(self.split)

    @property
    def meta(self) -> dict:
        """Block sizes and warp count of a launch over this plan."""
        return dict(BLOCK_C=self.block_c, BLOCK_N=self.block_n,
                    num_warps=num_warps_for(self.block_c * self.block_n))

    def partials(self, like: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Two (rows, split) buffers for per-chunk partial results."""
        shape = (self.rows, self.split)
        return common.new_output(like, shape, dtype), common.new_output(like, shape, dtype)


def fused_plan(n: int, samples: int, channels: int, channels_last: bool) -> Optional[RowPlan]:
    """The plan holding whole rows of length n on chip, or None when rows
    take the split path (see :func:`fused_tile`)."""
    tile = fused_tile(n, channels, channels_last)
    if tile is None:
        return None
    block_c, block_n = tile
    return RowPlan(samples * channels, block_c, block_n, samples * triton.cdiv(channels, block_c),
                   n, 1, True)


def split_rows(n: int, samples: int, channels: int, channels_last: bool, device) -> RowPlan:
    """The plan sweeping rows of length n in chunks, several programs per
    row when that fills the device (see :func:`split_plan`)."""
    block_c, block_n = loop_tile(n, channels, channels_last)
    row_blocks = samples * triton.cdiv(channels, block_c)
    chunk, split = split_plan(n, row_blocks, block_n, device)
    return RowPlan(samples * channels, block_c, block_n, row_blocks, chunk, split, False)


# --------------------------------------------------------------------------
# device-side helpers


@triton.jit
def spatial_offsets(n, W, s_h, s_w, SPATIAL_2D: tl.constexpr):
    """Element offsets of spatial positions ``n`` (see the module docstring)."""
    if SPATIAL_2D:
        offs = (n // W) * s_h + (n % W) * s_w
    else:
        offs = n * s_w
    return offs


@triton.jit
def tile_ptrs(ptr, b, c, n, W, s_b, s_c, s_h, s_w, SPATIAL_2D: tl.constexpr):
    """[BLOCK_C, BLOCK_N] pointers to (b, c[:, None], n[None, :]). The sample
    offset is added to the scalar base in 64 bits (tensors past 2**31
    elements address correctly); offsets within a sample stay 32-bit."""
    base = ptr + b.to(tl.int64) * s_b
    return base + (c[:, None] * s_c + spatial_offsets(n, W, s_h, s_w, SPATIAL_2D)[None, :])


@triton.jit
def load_tile(ptr, b, c, n, mask, W, s_b, s_c, s_h, s_w, ACC: tl.constexpr,
              SPATIAL_2D: tl.constexpr):
    """The [BLOCK_C, BLOCK_N] tile (b, c, n) in dtype ACC, zeros outside ``mask``."""
    return tl.load(tile_ptrs(ptr, b, c, n, W, s_b, s_c, s_h, s_w, SPATIAL_2D),
                   mask=mask, other=0.0).to(ACC)


@triton.jit
def store_tile(ptr, value, b, c, n, mask, W, s_b, s_c, s_h, s_w, SPATIAL_2D: tl.constexpr):
    """Writes ``value`` to the tile (b, c, n), cast to the buffer's dtype."""
    tl.store(tile_ptrs(ptr, b, c, n, W, s_b, s_c, s_h, s_w, SPATIAL_2D),
             value.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def row_tile(start, end, c_mask, BLOCK_N: tl.constexpr):
    """(n, mask): positions [start, start + BLOCK_N) of a block of rows, and
    which of them lie below ``end`` in an existing channel."""
    n = start + tl.arange(0, BLOCK_N)
    return n, c_mask[:, None] & (n < end)[None, :]


@triton.jit
def row_moments(x, mask, N, VAR_DIV, eps):
    """(mean, d, rstd) of whole rows held in the tile x: d = x - mean (zero
    outside ``mask``), rstd = 1 / sqrt(sum(d^2) / VAR_DIV + eps), VAR_DIV
    being N (biased variance) or N - 1 (unbiased)."""
    mean = tl.sum(x, 1) / N
    d = tl.where(mask, x - mean[:, None], 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(d * d, 1) / VAR_DIV + eps)
    return mean, d, rstd


@triton.jit
def row_block(pid, C, BLOCK_C: tl.constexpr):
    """(b, c, c_mask) of row block ``pid``: sample b, its channels c (a
    block of BLOCK_C), and which of them exist."""
    c_blocks = tl.cdiv(C, BLOCK_C)
    b = pid // c_blocks
    c = (pid % c_blocks) * BLOCK_C + tl.arange(0, BLOCK_C)
    return b, c, c < C


@triton.jit
def chunk_bounds(s, CHUNK, N):
    """[lo, hi): the positions of chunk s of a row of length N."""
    lo = s * CHUNK
    return lo, tl.minimum(lo + CHUNK, N)


@triton.jit
def second_pass_block(C, BLOCK_C: tl.constexpr):
    """(b, c, c_mask, rows, s) of a program of a split path's second pass:
    its row block (as :func:`row_block`), the flat row indices ``b * C + c``
    and its chunk s.

    The second pass re-reads what the first pass read. Blocks start roughly
    in grid order, so the second grid is walked backwards: it re-reads the
    most recently read chunks first, while they are likeliest still in L2."""
    pid = tl.num_programs(0) - 1 - tl.program_id(0)
    s = tl.num_programs(1) - 1 - tl.program_id(1)
    b, c, c_mask = row_block(pid, C, BLOCK_C)
    return b, c, c_mask, b * C + c, s


@triton.jit
def chunk_stats(
    x_ptr, b, c, c_mask, lo, hi, W, s_b, s_c, s_h, s_w,
    ACC: tl.constexpr, SPATIAL_2D: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Mean and M2 over positions [lo, hi) of channels ``c`` of sample b.

    Each tile's mean and M2 are exact two-pass values in registers; tiles
    are merged into the running result with Chan's formula.
    """
    count = tl.zeros([BLOCK_C], dtype=ACC)
    mean = tl.zeros([BLOCK_C], dtype=ACC)
    m2 = tl.zeros([BLOCK_C], dtype=ACC)
    for start in range(lo, hi, BLOCK_N):
        n, mask = row_tile(start, hi, c_mask, BLOCK_N)
        x = load_tile(x_ptr, b, c, n, mask, W, s_b, s_c, s_h, s_w, ACC, SPATIAL_2D)
        k = tl.sum(mask.to(ACC), 1)
        k_safe = tl.maximum(k, 1.0)
        t_mean = tl.sum(x, 1) / k_safe
        d = tl.where(mask, x - t_mean[:, None], 0.0)
        t_m2 = tl.sum(d * d, 1)
        total = count + k
        total_safe = tl.maximum(total, 1.0)
        delta = t_mean - mean
        mean = mean + delta * (k / total_safe)
        m2 = m2 + t_m2 + delta * delta * (count * k / total_safe)
        count = total
    return mean, m2


@triton.jit
def store_chunk_stats(
    x_ptr, pmean_ptr, pm2_ptr, pid, s, C, N, W, s_b, s_c, s_h, s_w, CHUNK, SPLIT,
    SPATIAL_2D: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Mean and M2 of chunk s of the rows of row block ``pid``, stored at
    column s of the (rows, SPLIT) partial buffers (in their dtype)."""
    ACC: tl.constexpr = pmean_ptr.dtype.element_ty
    b, c, c_mask = row_block(pid, C, BLOCK_C)
    lo, hi = chunk_bounds(s, CHUNK, N)
    mean, m2 = chunk_stats(x_ptr, b, c, c_mask, lo, hi, W, s_b, s_c, s_h, s_w,
                           ACC, SPATIAL_2D, BLOCK_C, BLOCK_N)
    rows = b * C + c
    tl.store(pmean_ptr + rows * SPLIT + s, mean, mask=c_mask)
    tl.store(pm2_ptr + rows * SPLIT + s, m2, mask=c_mask)


@triton.jit
def merge_partials(
    pmean_ptr, pm2_ptr, rows, row_mask, N, VAR_DIV, CHUNK, SPLIT,
    ACC: tl.constexpr, SPLIT_P2: tl.constexpr,
):
    """Merge the SPLIT chunk results of each row into its mean and variance
    M2 / VAR_DIV (N: biased, N - 1: unbiased; chunk s holds
    min(CHUNK, N - s*CHUNK) positions)."""
    s = tl.arange(0, SPLIT_P2)
    mask = row_mask[:, None] & (s < SPLIT)[None, :]
    offs = rows[:, None] * SPLIT + s[None, :]
    pmean = tl.load(pmean_ptr + offs, mask=mask, other=0.0).to(ACC)
    pm2 = tl.load(pm2_ptr + offs, mask=mask, other=0.0).to(ACC)
    cnt = tl.minimum(CHUNK, N - s * CHUNK).to(ACC)
    cnt = tl.where(mask, cnt[None, :], 0.0)
    mean = tl.sum(cnt * pmean, 1) / N
    dev = tl.where(mask, pmean - mean[:, None], 0.0)
    m2 = tl.sum(pm2 + cnt * dev * dev, 1)
    return mean, m2 / VAR_DIV


@triton.jit
def row_param(p_ptr, b, c, c_mask, s_b, s_c, ACC: tl.constexpr):
    """Per-channel parameter of sample b: (C,) tensors have s_b = 0."""
    return tl.load(p_ptr + b * s_b + c * s_c, mask=c_mask, other=0.0).to(ACC)
