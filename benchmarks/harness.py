"""Helpers shared by the benchmark suites.

A suite parametrizes its cases over shapes and *providers* (eager PyTorch,
fastgram's backends, ``torch.compile``) and calls :func:`run` inside a
pytest-benchmark test. :func:`run` times the provider with pytest-benchmark,
times the eager baseline of the same case once per session, and records in
``benchmark.extra_info``:

* ``median_ms``: the provider's median, from CUDA events on a GPU and
  ``time.perf_counter`` on the CPU (synchronised either way);
* ``eager_ms`` and ``speedup_vs_eager`` (eager median / provider median,
  both measured in this run);
* ``gbps`` and ``fraction_of_copy_bw`` when the case gives a bytes model;
* ``tflops`` and ``fraction_of_matmul_peak`` when it gives a flops model.

The roofline figures (copy bandwidth, matmul rate) are measured once per
session on the device at hand, so every fraction compares numbers from the
same run.
"""

from __future__ import annotations

import functools
import statistics
import time
from typing import Callable, Optional

import torch

import fastgram

# How long each timing loop runs; the CPU suites use small shapes, so a short
# budget still gives tens of repetitions.
WARMUP = 2
MIN_REPS = 5
TARGET_SECONDS = 0.2


def on_cuda(device) -> bool:
    return torch.device(device).type == "cuda"


def synchronize(device) -> None:
    if on_cuda(device):
        torch.cuda.synchronize(device)


def time_ms(fn: Callable[[], object], device, reps: Optional[int] = None) -> list:
    """Wall times of ``fn()`` in milliseconds, one per repetition, after a
    warm-up; each sample is synchronised with the device."""
    for _ in range(WARMUP):
        fn()
    synchronize(device)
    if reps is None:
        start = time.perf_counter()
        fn()
        synchronize(device)
        once = max(time.perf_counter() - start, 1e-6)
        reps = max(MIN_REPS, min(200, int(TARGET_SECONDS / once)))
    samples = []
    if on_cuda(device):
        for _ in range(reps):
            begin = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            begin.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(begin.elapsed_time(end))
    else:
        for _ in range(reps):
            start = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start) * 1e3)
    return samples


_baseline_cache: dict = {}


def baseline_ms(key, fn: Callable[[], object], device) -> float:
    """Median of the eager baseline for case ``key``, measured once a session."""
    if key not in _baseline_cache:
        _baseline_cache[key] = statistics.median(time_ms(fn, device))
    return _baseline_cache[key]


@functools.lru_cache(maxsize=None)
def copy_bandwidth_gbps(device: str) -> float:
    """Measured device-to-device copy rate, counting read + write bytes."""
    numel = (256 << 20) // 4 if on_cuda(device) else (64 << 20) // 4
    src = torch.empty(numel, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    ms = statistics.median(time_ms(lambda: dst.copy_(src), device))
    return 2 * src.numel() * 4 / (ms * 1e-3) / 1e9


@functools.lru_cache(maxsize=None)
def matmul_tflops(device: str, dtype: torch.dtype) -> float:
    """Measured dense matmul rate for ``dtype`` on ``device``."""
    n = 8192 if on_cuda(device) else 512
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    ms = statistics.median(time_ms(lambda: a @ b, device))
    return 2 * n**3 / (ms * 1e-3) / 1e12


def run(
    benchmark,
    fn: Callable[[], object],
    *,
    device,
    baseline: Optional[tuple] = None,
    bytes_moved: Optional[float] = None,
    flops: Optional[float] = None,
    flops_dtype: torch.dtype = torch.bfloat16,
    **extra,
) -> dict:
    """Benchmark ``fn`` and fill ``benchmark.extra_info`` (see module doc).

    ``baseline`` is ``(key, eager_fn)``: the eager PyTorch formulation of the
    same case; its median is measured once per session per ``key``.
    Returns the extra_info dict.
    """
    device = str(torch.device(device))

    def synced():
        out = fn()
        synchronize(device)
        return out

    benchmark.pedantic(synced, warmup_rounds=WARMUP, rounds=MIN_REPS, iterations=1)
    info = benchmark.extra_info
    info.update(extra)
    info["device"] = device_name(device)
    info["backend_in_force"] = fastgram.get_backend()
    if benchmark.disabled:
        return info  # a smoke run (--benchmark-disable): the case ran once, untimed
    median = statistics.median(time_ms(fn, device))
    info["median_ms"] = median
    if baseline is not None:
        key, eager_fn = baseline
        eager = baseline_ms(key, eager_fn, device)
        info["eager_ms"] = eager
        info["speedup_vs_eager"] = eager / median
    if bytes_moved is not None:
        gbps = bytes_moved / (median * 1e-3) / 1e9
        info["gbps"] = gbps
        info["fraction_of_copy_bw"] = gbps / copy_bandwidth_gbps(device)
    if flops is not None:
        tflops = flops / (median * 1e-3) / 1e12
        info["tflops"] = tflops
        info["fraction_of_matmul_peak"] = tflops / matmul_tflops(device, flops_dtype)
    return info


def interleaved_speedup(provider_fn: Callable[[], object], eager_fn: Callable[[], object],
                        device, rounds: int = 5) -> float:
    """eager median / provider median over alternating runs: on a shared,
    busy machine load drifts between separate measurements, and alternating
    exposes both sides to the same drift."""
    eager, provider = [], []
    for _ in range(rounds):
        eager.append(time_ms(eager_fn, device, reps=1)[0])
        provider.append(time_ms(provider_fn, device, reps=1)[0])
    return statistics.median(eager) / statistics.median(provider)


def nbytes(*tensors: torch.Tensor) -> int:
    """Bytes the tensors hold (the unit of the suites' byte models)."""
    return sum(t.numel() * t.element_size() for t in tensors)


def timed(forward: Callable, inputs: tuple, direction: str,
          grad_like: Callable[[torch.Tensor], torch.Tensor] = torch.ones_like) -> Callable[[], object]:
    """The callable to time for ``direction``:

    * ``"forward"``: ``forward(*inputs)``;
    * ``"backward"``: the backward of one recorded forward (graph retained),
      with output gradient ``grad_like(out)``;
    * ``"both"``: forward and backward, output gradient ones.
    """
    if direction == "forward":
        return lambda: forward(*inputs)
    if direction == "backward":
        out = forward(*inputs)
        grad = grad_like(out)
        return lambda: torch.autograd.grad(out, inputs, grad, retain_graph=True)

    def both():
        out = forward(*inputs)
        return torch.autograd.grad(out, inputs, torch.ones_like(out))

    return both


def device_name(device) -> str:
    if on_cuda(device):
        return torch.cuda.get_device_name(torch.device(device))
    return "cpu"


def devices() -> list:
    """Devices the suites run on: CUDA when present, else the CPU."""
    return ["cuda"] if torch.cuda.is_available() else ["cpu"]


def backend_available(name: str) -> bool:
    return fastgram.backends()[name].available


def providers(op: str, device: str) -> list:
    """Provider names worth timing for ``op`` on ``device``.

    ``eager`` (the plain PyTorch formulation written in the suite) and
    ``reference`` always; each compiled backend that provides ``op`` and can
    run here, except Triton on the CPU (the interpreter is a testing aid, not
    a competitor); ``compile`` (torch.compile of the eager formulation) on
    CUDA only, where it is a meaningful baseline and compiles in seconds.
    """
    names = ["eager", "reference"]
    for backend in ("triton", "ext"):
        if backend == "triton" and not on_cuda(device):
            continue
        status = fastgram.backends()[backend]
        if status.available and op in status.ops:
            names.append(backend)
    if on_cuda(device):
        names.append("compile")
    return names
