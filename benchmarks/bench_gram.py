"""Gram matrix and 5-layer VGG19 style loss: fastgram's backends against eager
PyTorch (``torch.bmm`` + ``mse_loss``) and ``torch.compile`` of it.

Cases: VGG19 relu1_1..relu5_1 feature shapes for 256^2 and 512^2 inputs at
batch 1, 4 and 8 on CUDA (a 64^2 input at batch 1 and 4 on the CPU, where
only fp32 and the eager/reference/ext providers run); precisions bf16,
fp32 with TF32 allowed and fp32 IEEE (CUDA); forward, backward and both
(forward and both on the CPU).
``FASTGRAM_BENCH_FULL=1`` runs every combination on CUDA; the default runs
the subset :func:`_wanted` describes.

Figures per case (``extra_info``): the median, the ratio to eager at equal
precision, GB/s, *useful* TFLOP/s (a Gram is counted as C^2 N multiply-adds
per sample: the symmetric half it needs, not the 2 C^2 N a plain matmul
does) and ``fraction_of_roofline``: the time the bytes and useful flops need
at the copy bandwidth and matmul rate measured in this run, over the median.
Byte models: Gram forward reads F and writes G; backward reads F and dG and
writes dF; the style loss is held to the 3 |F| floor (read F forward, read F
and write dF backward).
"""

from __future__ import annotations

import contextlib
import functools
import os
import statistics

import pytest
import torch
import torch.nn.functional as F

import harness
from fastgram import ops

DEVICE = harness.devices()[0]
CUDA = harness.on_cuda(DEVICE)
FULL = os.environ.get("FASTGRAM_BENCH_FULL") == "1"

VGG_CHANNELS = (64, 128, 256, 512, 512)  # relu1_1 .. relu5_1
LAYER_NAMES = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
SIZES = (256, 512) if CUDA else (64,)
BATCHES = (1, 4, 8) if CUDA else (1, 4)
MODES = ("bf16", "fp32-tf32", "fp32-ieee") if CUDA else ("fp32-ieee",)
# backward alone is timed on CUDA only; on the CPU forward and both bound it
DIRECTIONS = ("forward", "backward", "both") if CUDA else ("forward", "both")


def vgg_shapes(batch: int, size: int) -> list:
    return [(batch, c, size >> i, size >> i) for i, c in enumerate(VGG_CHANNELS)]


def _dtype(mode: str) -> torch.dtype:
    return torch.bfloat16 if mode == "bf16" else torch.float32


@contextlib.contextmanager
def _precision(mode: str):
    """fp32 matmuls in TF32 only for the fp32-tf32 mode (eager and fastgram
    follow the same switch)."""
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = mode == "fp32-tf32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


@functools.lru_cache(maxsize=None)
def _matmul_peak(device: str, mode: str) -> float:
    """Dense matmul TFLOP/s measured here at the mode's precision (one
    multiply-add = 2 flops)."""
    n = 8192 if harness.on_cuda(device) else 512
    with _precision(mode):
        a = torch.randn(n, n, device=device, dtype=_dtype(mode))
        b = torch.randn(n, n, device=device, dtype=_dtype(mode))
        ms = statistics.median(harness.time_ms(lambda: a @ b, device))
    return 2 * n**3 / (ms * 1e-3) / 1e12


def _randn(shape, seed, dtype):
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return (torch.randn(shape, generator=gen) * 0.5 + 0.2).to(DEVICE, dtype)


def _wanted(op: str, provider: str, mode: str, size: int, batch: int, direction: str) -> bool:
    """The default CUDA selection, sized to run in a few minutes (every case
    with FASTGRAM_BENCH_FULL=1; the CPU runs all its few cases):

    * the fastgram provider(s) and eager everywhere forward; the reference
      (an upcasting eager variant) only with FULL;
    * Gram backward and forward+backward in bf16 at batch 4;
    * style loss forward and forward+backward everywhere, backward alone in
      bf16 at 512^2;
    * torch.compile (which compiles each shape anew) in bf16 at 512^2: Gram
      forward at batch 4, style loss forward+backward at every batch.
    """
    if FULL or not CUDA:
        return True
    if provider == "reference":
        return False
    if provider == "compile":
        if mode != "bf16" or size != 512:
            return False
        if op == "gram_matrix":
            return direction == "forward" and batch == 4
        return direction == "both"
    if op == "gram_matrix":
        return direction == "forward" or (mode == "bf16" and batch == 4)
    return direction != "backward" or (mode == "bf16" and size == 512)


_compiled: dict = {}


def _provider_fn(provider, key, eager, fastgram_op):
    if provider == "eager":
        return eager
    if provider == "compile":
        if key not in _compiled:
            _compiled[key] = torch.compile(eager, dynamic=False)
        return _compiled[key]
    return functools.partial(fastgram_op, backend=provider)


def _record(benchmark, fn, key, eager_fn, mode, bytes_moved, useful_flops, **extra):
    info = harness.run(
        benchmark, fn, device=DEVICE, baseline=(key, eager_fn),
        bytes_moved=bytes_moved, **extra,
    )
    if benchmark.disabled:
        return
    peak = _matmul_peak(DEVICE, mode)
    tflops = useful_flops / (info["median_ms"] * 1e-3) / 1e12
    floor_ms = max(
        bytes_moved / (harness.copy_bandwidth_gbps(DEVICE) * 1e9),
        useful_flops / (peak * 1e12),
    ) * 1e3
    info["useful_tflops"] = info["tflops"] = tflops  # "tflops": the summary's column
    info["fraction_of_matmul_peak"] = tflops / peak
    info["fraction_of_roofline"] = floor_ms / info["median_ms"]
    info["precision"] = mode


# --------------------------------------------------------------------------
# Gram matrix


def _eager_gram(x):
    f = x.flatten(2)
    return torch.bmm(f, f.transpose(1, 2)) * (1.0 / f[0].numel())


def _gram_cases():
    for provider in harness.providers("gram_matrix", DEVICE):
        for mode in MODES:
            for size in SIZES:
                for batch in BATCHES:
                    for layer in range(len(VGG_CHANNELS)):
                        for direction in DIRECTIONS:
                            if _wanted("gram_matrix", provider, mode, size, batch,
                                       direction):
                                yield pytest.param(
                                    provider, mode, size, batch, layer, direction,
                                    id=f"{provider}-{mode}-{size}px-b{batch}-"
                                    f"{LAYER_NAMES[layer]}-{direction}",
                                )


@pytest.mark.parametrize("provider, mode, size, batch, layer, direction", list(_gram_cases()))
def bench_gram(benchmark, provider, mode, size, batch, layer, direction):
    shape = vgg_shapes(batch, size)[layer]
    dtype = _dtype(mode)
    x = _randn(shape, 0, dtype).requires_grad_(direction != "forward")
    channels, n = shape[1], shape[2] * shape[3]
    key = ("gram", mode, shape, direction)
    with _precision(mode):
        fwd = _provider_fn(provider, key, _eager_gram, ops.gram_matrix)
        fn = harness.timed(fwd, (x,), direction)
        eager_fn = harness.timed(_eager_gram, (x,), direction)
        f_bytes, g_bytes = harness.nbytes(x), batch * channels * channels * x.element_size()
        macs = batch * channels * channels * n  # useful: the symmetric half
        bytes_moved = {"forward": f_bytes + g_bytes, "backward": 2 * f_bytes + g_bytes,
                       "both": 3 * f_bytes + 2 * g_bytes}[direction]
        flops = {"forward": macs, "backward": 2 * macs, "both": 3 * macs}[direction]
        _record(benchmark, fn, key, eager_fn, mode, bytes_moved, flops, provider=provider,
                direction=direction, shape=list(shape))


# --------------------------------------------------------------------------
# 5-layer VGG19 style loss


def _eager_style_loss(targets, *feats):
    loss = 0.0
    for f, t in zip(feats, targets):
        g = _eager_gram(f)
        loss = loss + F.mse_loss(g.float(), t.float().expand_as(g))
    return loss


def _style_cases():
    for provider in harness.providers("style_loss", DEVICE):
        for mode in MODES:
            for size in SIZES:
                for batch in BATCHES:
                    for direction in DIRECTIONS:
                        if _wanted("style_loss", provider, mode, size, batch, direction):
                            yield pytest.param(
                                provider, mode, size, batch, direction,
                                id=f"{provider}-{mode}-{size}px-b{batch}-{direction}",
                            )


@pytest.mark.parametrize("provider, mode, size, batch, direction", list(_style_cases()))
def bench_style_loss(benchmark, provider, mode, size, batch, direction):
    dtype = _dtype(mode)
    shapes = vgg_shapes(batch, size)
    feats = tuple(_randn(s, i, dtype).requires_grad_(direction != "forward")
                  for i, s in enumerate(shapes))
    with torch.no_grad():
        targets = [_eager_gram(_randn((1,) + s[1:], 10 + i, dtype))[0].float()
                   for i, s in enumerate(shapes)]
    key = ("style_loss", mode, size, batch, direction)
    eager = functools.partial(_eager_style_loss, targets)

    def fastgram_loss(*fs, backend):
        return ops.style_loss(list(fs), targets, backend=backend)

    with _precision(mode):
        fwd = _provider_fn(provider, key, eager, fastgram_loss)
        fn = harness.timed(fwd, feats, direction)
        eager_fn = harness.timed(eager, feats, direction)
        f_bytes = harness.nbytes(*feats)
        macs = sum(s[0] * s[1] ** 2 * s[2] * s[3] for s in shapes)
        bytes_moved = {"forward": f_bytes, "backward": 2 * f_bytes, "both": 3 * f_bytes}[direction]
        flops = {"forward": macs, "backward": 2 * macs, "both": 3 * macs}[direction]
        _record(benchmark, fn, key, eager_fn, mode, bytes_moved, flops, provider=provider,
                direction=direction, size=size, batch=batch)
