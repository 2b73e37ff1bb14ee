"""Instance norm and AdaIN: fastgram's backends against eager PyTorch and
``torch.compile`` of the reference formulation.

Cases: the shapes of the GPU targets (ENGINEERING.md, section 6) on CUDA (instance norm (4,32,256,256),
(4,64,128,128), (4,128,64,64), (1,64,512,512), (8,64,256,256),
(32,256,56,56), plus (4,64,128,128) channels-last; AdaIN (8,512,32,32),
(1,512,64,64), (1,256,64,64) with the style batch broadcast from 1) in fp32
and bf16; small shapes in fp32 on the CPU, where the Triton interpreter is
not timed (eager, reference and any compiled extension only).
Directions: forward, backward (of one recorded forward) and both; on the CPU
forward and both. ``FASTGRAM_BENCH_FULL=1`` times torch.compile for the
backward-only cases too (by default it is timed forward and both).

Byte models (what the op must move at least):
instance norm forward 2|x| (read x, write y), backward 3|x| (read x and dy,
write dx), both 5|x|; AdaIN forward 2|c| + |s|, backward 3|c| + 2|s| (read
c, dy, s; write dc, ds), both the sum. Figures per case in ``extra_info``:
median, ratio to eager (``speedup_vs_eager``) and, on CUDA, to torch.compile
(``speedup_vs_compile``), GB/s and the fraction of the copy bandwidth
measured in the same run.
"""

from __future__ import annotations

import functools
import os

import pytest
import torch
import torch._dynamo
import torch.nn.functional as F

import harness
from fastgram import ops
from fastgram.ops import reference

DEVICE = harness.devices()[0]
CUDA = harness.on_cuda(DEVICE)
FULL = os.environ.get("FASTGRAM_BENCH_FULL") == "1"
EPS = 1e-5

if CUDA:
    IN_SHAPES = [(4, 32, 256, 256), (4, 64, 128, 128), (4, 128, 64, 64), (1, 64, 512, 512),
                 (8, 64, 256, 256), (32, 256, 56, 56)]
    IN_CHANNELS_LAST = [(4, 64, 128, 128)]
    ADAIN_SHAPES = [(8, 512, 32, 32), (1, 512, 64, 64), (1, 256, 64, 64)]
    DTYPES = (torch.float32, torch.bfloat16)
    DIRECTIONS = ("forward", "backward", "both")
else:
    # (1, 16, 256, 256): few long rows, the split path's case
    IN_SHAPES = [(2, 32, 64, 64), (1, 16, 256, 256), (8, 64, 16, 16)]
    IN_CHANNELS_LAST = []
    ADAIN_SHAPES = [(2, 128, 32, 32), (1, 64, 64, 64)]
    DTYPES = (torch.float32,)
    DIRECTIONS = ("forward", "both")


def _randn(shape, seed, dtype, channels_last=False):
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = (torch.randn(shape, generator=gen) * 1.3 + 0.2).to(DEVICE, dtype)
    return x.to(memory_format=torch.channels_last) if channels_last else x


def _timed(forward, inputs, direction):
    """:func:`harness.timed` with a random output gradient for the backward
    alone (a normalisation's gradient of a constant output is zero)."""
    return harness.timed(forward, inputs, direction, grad_like=torch.randn_like)


# Every case compiles the same reference function for another shape, dtype
# or layout; past Dynamo's recompile limit (8 by default) it would silently
# run eagerly and the "compile" figures would be eager ones.
for _limit in ("recompile_limit", "cache_size_limit"):
    if hasattr(torch._dynamo.config, _limit):
        setattr(torch._dynamo.config, _limit, max(getattr(torch._dynamo.config, _limit), 256))

_compiled: dict = {}


def _compiled_reference(name, fn):
    if name not in _compiled:
        _compiled[name] = torch.compile(fn, dynamic=False)
    return _compiled[name]


def _provider_fn(provider, name, eager, reference_fn, fastgram_fn):
    if provider == "eager":
        return eager
    if provider == "compile":
        return _compiled_reference(name, reference_fn)
    return functools.partial(fastgram_fn, backend=provider)


def _wanted(provider, direction):
    return FULL or provider != "compile" or direction != "backward"


def _record(benchmark, fn, key, eager_fn, compile_fn, bytes_moved, **extra):
    info = harness.run(benchmark, fn, device=DEVICE, baseline=(key, eager_fn),
                       bytes_moved=bytes_moved, **extra)
    if CUDA and compile_fn is not None and not benchmark.disabled:
        compile_ms = harness.baseline_ms(("compile",) + key, compile_fn, DEVICE)
        info["compile_ms"] = compile_ms
        info["speedup_vs_compile"] = compile_ms / info["median_ms"]


def _dtype_id(dtype):
    return str(dtype).replace("torch.", "")


# --------------------------------------------------------------------------
# instance norm (affine (C,), no activation: the torch.nn.InstanceNorm2d case)


def _eager_instance_norm(x, w, b):
    return F.instance_norm(x, weight=w, bias=b, eps=EPS)


def _reference_instance_norm(x, w, b):
    return reference.instance_norm(x, w, b, EPS, None, 0.0)


def _fastgram_instance_norm(x, w, b, backend):
    return ops.instance_norm(x, w, b, EPS, backend=backend)


def _in_cases():
    for provider in harness.providers("instance_norm", DEVICE):
        for dtype in DTYPES:
            for layout, shapes in (("nchw", IN_SHAPES), ("channels_last", IN_CHANNELS_LAST)):
                for shape in shapes:
                    for direction in DIRECTIONS:
                        if _wanted(provider, direction):
                            yield pytest.param(
                                provider, dtype, shape, layout, direction,
                                id=f"{provider}-{_dtype_id(dtype)}-{'x'.join(map(str, shape))}"
                                f"-{layout}-{direction}",
                            )


@pytest.mark.parametrize("provider, dtype, shape, layout, direction", list(_in_cases()))
def bench_instance_norm(benchmark, provider, dtype, shape, layout, direction):
    grad = direction != "forward"
    x = _randn(shape, 0, dtype, layout == "channels_last").requires_grad_(grad)
    w = _randn(shape[1:2], 1, dtype).requires_grad_(grad)
    b = _randn(shape[1:2], 2, dtype).requires_grad_(grad)
    inputs = (x, w, b)
    key = ("instance_norm", _dtype_id(dtype), shape, layout, direction)
    fwd = _provider_fn(provider, "instance_norm", _eager_instance_norm,
                       _reference_instance_norm, _fastgram_instance_norm)
    compile_fn = None
    if CUDA:
        compile_fn = _timed(_compiled_reference("instance_norm", _reference_instance_norm),
                            inputs, direction)
    x_bytes = harness.nbytes(x)
    bytes_moved = {"forward": 2 * x_bytes, "backward": 3 * x_bytes,
                   "both": 5 * x_bytes}[direction]
    _record(benchmark, _timed(fwd, inputs, direction), key,
            _timed(_eager_instance_norm, inputs, direction), compile_fn, bytes_moved,
            provider=provider, direction=direction, shape=list(shape), layout=layout,
            dtype=_dtype_id(dtype))


# --------------------------------------------------------------------------
# AdaIN (alpha = 1, one style image for the batch)


def _eager_adain(c, s):
    s_var, s_mean = torch.var_mean(s, dim=(2, 3), keepdim=True, correction=0)
    c_var, c_mean = torch.var_mean(c, dim=(2, 3), keepdim=True, correction=0)
    return (c - c_mean) * torch.rsqrt(c_var + EPS) * torch.sqrt(s_var + EPS) + s_mean


def _reference_adain(c, s):
    return reference.adain(c, s, EPS, 1.0)


def _fastgram_adain(c, s, backend):
    return ops.adain(c, s, EPS, 1.0, backend=backend)


def _adain_cases():
    for provider in harness.providers("adain", DEVICE):
        for dtype in DTYPES:
            for shape in ADAIN_SHAPES:
                for direction in DIRECTIONS:
                    if _wanted(provider, direction):
                        yield pytest.param(
                            provider, dtype, shape, direction,
                            id=f"{provider}-{_dtype_id(dtype)}-{'x'.join(map(str, shape))}"
                            f"-{direction}",
                        )


@pytest.mark.parametrize("provider, dtype, shape, direction", list(_adain_cases()))
def bench_adain(benchmark, provider, dtype, shape, direction):
    grad = direction != "forward"
    c = _randn(shape, 0, dtype).requires_grad_(grad)
    s = _randn((1,) + tuple(shape[1:]), 1, dtype).requires_grad_(grad)
    inputs = (c, s)
    key = ("adain", _dtype_id(dtype), shape, direction)
    fwd = _provider_fn(provider, "adain", _eager_adain, _reference_adain, _fastgram_adain)
    compile_fn = None
    if CUDA:
        compile_fn = _timed(_compiled_reference("adain", _reference_adain), inputs, direction)
    c_bytes, s_bytes = harness.nbytes(c), harness.nbytes(s)
    bytes_moved = {"forward": 2 * c_bytes + s_bytes, "backward": 3 * c_bytes + 2 * s_bytes,
                   "both": 5 * c_bytes + 3 * s_bytes}[direction]
    _record(benchmark, _timed(fwd, inputs, direction), key,
            _timed(_eager_adain, inputs, direction), compile_fn, bytes_moved,
            provider=provider, direction=direction, shape=list(shape), dtype=_dtype_id(dtype))
