"""Launch planning of the Gram kernels (:mod:`fastgram.kernels.gram`): how
tiles are multiplied for each dtype, block sizes, split-K and pipeline
depths. Pure host code: it reads only shapes, dtypes and the device."""

from __future__ import annotations

import dataclasses
from typing import Optional

import torch
import triton

from . import common


@dataclasses.dataclass
class GramTuning:
    """Block sizes and split-K policy. Tests lower the thresholds (with
    :func:`fastgram.kernels.common.override`) to reach the split path on
    small shapes; ``None`` means "pick for the device and dtype"."""

    block_c: Optional[int] = None  # edge of a square Gram tile (channels)
    block_k: Optional[int] = None  # reduction chunk over N per loop step
    split_min_n: int = 4096  # never split reductions shorter than this
    min_chunks_per_split: int = 8  # each split runs >= this many block_k steps
    target_programs: Optional[int] = None  # programs to aim for; None: 2 per SM
    # The split workspace is written once and read back at once, so it mostly
    # stays in L2 (50 MB on an H100) as long as it is well below that size.
    max_workspace_bytes: int = 16 << 20
    finish_block: Optional[int] = None  # tile edge of the split-K reduce kernel
    bwd_block_m: Optional[int] = None  # rows of dF per program
    bwd_block_n: Optional[int] = None  # columns (positions) of dF per program
    bwd_block_j: Optional[int] = None  # reduction chunk over channels


tuning = GramTuning()


def fp32_matmul_precision() -> str:
    """``"tf32"`` when PyTorch allows TF32 for fp32 matmuls, else ``"ieee"``."""
    if torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    try:
        if torch.get_float32_matmul_precision() != "highest":
            return "tf32"
    except RuntimeError:  # legacy and new precision APIs mixed; allow_tf32 rules
        pass
    return "ieee"


@dataclasses.dataclass(frozen=True)
class DotConfig:
    """How a kernel multiplies tiles for one input dtype."""

    use_dot: bool  # tl.dot (tensor cores) vs broadcast-and-sum (fp64)
    upcast: bool  # feed fp32 to tl.dot (interpreter bf16 workaround)
    precision: str  # "ieee" or "tf32", used by tl.dot for fp32 operands
    fp64: bool

    @property
    def meta(self) -> dict:
        """The kernels' constexprs of this configuration."""
        return dict(PRECISION=self.precision, USE_DOT=self.use_dot, UPCAST=self.upcast,
                    FP64=self.fp64)


def dot_config(dtype: torch.dtype) -> DotConfig:
    fp64 = dtype == torch.float64
    # Triton 3.8's interpreter multiplies bf16 tl.dot operands as raw bits;
    # fp32 operands are exact there, so the interpreter upcasts bf16 tiles.
    upcast = common.INTERPRETED and dtype == torch.bfloat16
    # input_precision only matters for fp32 operands; half ones keep Triton's default
    precision = fp32_matmul_precision() if dtype == torch.float32 else "tf32"
    return DotConfig(not fp64, upcast, precision, fp64)


def _pow2_tile(channels: int, most: int) -> int:
    """The power of two covering ``channels``, between 16 and ``most``."""
    return min(most, max(16, triton.next_power_of_2(channels)))


@dataclasses.dataclass(frozen=True)
class ForwardPlan:
    block_c: int
    block_k: int
    tiles: int  # tile rows (and columns) covering C
    pairs: int  # tiles on and above the diagonal
    split: int  # programs sharing one tile's reduction
    chunk: int  # positions per split (a multiple of block_k)
    num_warps: int
    num_stages: int
    # Tiles of the programs that finish G (store it, reduce the loss): the
    # product tiles without split-K; finer ones for the split-K reduce kernel,
    # which must spread the workspace read over many programs.
    finish_block: int
    finish_pairs: int


def _split_count(batch: int, channels: int, n: int, pairs: int, block_k: int,
                 sms: Optional[int]) -> int:
    """Programs sharing one tile's reduction: enough to fill the device, each
    running at least ``min_chunks_per_split`` steps, within the workspace cap."""
    cfg = tuning
    if n < cfg.split_min_n:
        return 1
    target = cfg.target_programs or 2 * (sms or 1)
    by_workspace = cfg.max_workspace_bytes // (4 * batch * channels * channels)
    split = min(
        triton.cdiv(target, pairs * batch),
        max(1, triton.cdiv(n, block_k) // cfg.min_chunks_per_split),
        max(1, by_workspace),
    )
    return max(1, split)


def plan_forward(batch: int, channels: int, n: int, dtype: torch.dtype,
                 device: torch.device) -> ForwardPlan:
    """Tile sizes and split-K for one (B, C, N) Gram."""
    cfg = tuning
    fp64 = dtype == torch.float64
    sms = common.sm_count(device)
    if sms is None:
        # the interpreter pays per program and per step, not per element
        block_c = _pow2_tile(channels, 64)
        block_k = 32 if fp64 else 256
    elif fp64:
        block_c, block_k = 16, 16  # broadcast path: registers hold c*c*k values
    else:
        block_c = 128 if channels > 64 else _pow2_tile(channels, 64)
        block_k = 32 if dtype == torch.float32 else 64
    block_c = cfg.block_c or block_c
    block_k = cfg.block_k or block_k
    tiles = triton.cdiv(channels, block_c)
    pairs = tiles * (tiles + 1) // 2
    split = _split_count(batch, channels, n, pairs, block_k, sms)
    chunk = triton.cdiv(triton.cdiv(n, block_k), split) * block_k
    split = triton.cdiv(n, chunk)
    num_warps = 8 if block_c >= 128 else 4
    num_stages = 1 if fp64 else (3 if block_c >= 128 else 4)
    finish_block = block_c
    if split > 1:
        if cfg.finish_block:
            finish_block = cfg.finish_block
        elif sms is not None:
            finish_block = min(block_c, 16 if channels <= 128 else 32)
        if block_c % finish_block:
            raise ValueError(f"finish_block: {finish_block} must divide block_c {block_c}")
    finish_tiles = triton.cdiv(channels, finish_block)
    return ForwardPlan(block_c, block_k, tiles, pairs, split, chunk, num_warps, num_stages,
                       finish_block, finish_tiles * (finish_tiles + 1) // 2)


@dataclasses.dataclass(frozen=True)
class BackwardPlan:
    block_m: int
    block_n: int
    block_j: int
    num_warps: int
    num_stages: int


def plan_backward(channels: int, n: int, dtype: torch.dtype, device: torch.device,
                  reads_target: bool = False) -> BackwardPlan:
    """Tiles of ``dF = coef * M F`` for (C, N) features; ``reads_target``
    when M is formed from G and both target tiles, which stage three tiles
    per step and would fill shared memory at 3 stages (target gradients,
    rare), so they get 2."""
    cfg = tuning
    if common.sm_count(device) is None:
        block_m = block_j = _pow2_tile(channels, 64)
        block_n = 32 if dtype == torch.float64 else 256
    elif dtype == torch.float64:
        block_m = block_n = block_j = 16
    else:
        block_m = _pow2_tile(channels, 128)
        block_j = 32 if dtype == torch.float32 else 64
        block_n = 64 if dtype == torch.float32 else 128
    block_m = cfg.bwd_block_m or block_m
    block_n = cfg.bwd_block_n or block_n
    block_j = cfg.bwd_block_j or block_j
    num_warps = 8 if block_m * block_n >= 128 * 128 else 4
    num_stages = 1 if dtype == torch.float64 else (2 if reads_target else 3)
    return BackwardPlan(block_m, block_n, block_j, num_warps, num_stages)
