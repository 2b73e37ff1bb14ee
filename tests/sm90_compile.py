"""Compile the launches fastgram's launchers really make for sm_90 (H100), on
a machine without a GPU.

The interpreter runs the kernels' Python, which accepts constructs the Triton
compiler rejects (type errors, constexpr misuse, pipelines too deep for
shared memory); so where the numerical suite runs interpreted, every launch
configuration is also compiled through Triton's full pipeline, ptxas
included. The launches come from the real launchers, with
``fastgram.kernels.common.launch`` replaced by a recorder, and are turned
into compile jobs by Triton's own argument binder, as a launch on the GPU
would be: pointer dtypes, the specialisation of integers (equal to 1,
divisible by 16), constexprs and options (warps, stages). The plans see an
sm_90 device with 132 SMs (an H100 SXM).

A compile test runs its script in a subprocess (:func:`run_script`): with
TRITON_INTERPRET=1 set, as tests/conftest.py does on machines without CUDA,
``triton.jit`` builds interpreter objects that cannot be compiled.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import subprocess
import sys
from typing import Callable, Iterator, NamedTuple

SM90_SMS = 132
SM90_SHARED_BYTES = 232448  # 227 KiB: the per-block opt-in maximum on sm_90
DONE = "configurations compiled for sm_90, 0 failed"  # what a passing script prints


def run_script(path: str, timeout: int) -> str:
    """Runs ``python path`` without TRITON_INTERPRET and returns its output;
    fails unless every configuration compiled and fit."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, path], env=env, capture_output=True, text=True,
                          timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and DONE in done.stdout, output[-6000:]
    return done.stdout


class Launch(NamedTuple):
    kernel: object  # a triton.JITFunction
    grid: tuple
    args: tuple
    kwargs: dict


@contextlib.contextmanager
def captured_launches() -> Iterator[list]:
    """Within the block the launchers record their launches into the yielded
    list instead of launching, and plan for an sm_90 device."""
    from fastgram.kernels import common

    launches = []
    saved = common.launch, common.sm_count
    common.launch = lambda kernel, grid, *args, **kwargs: launches.append(
        Launch(kernel, grid, args, kwargs))
    common.sm_count = lambda device: SM90_SMS
    try:
        yield launches
    finally:
        common.launch, common.sm_count = saved


class _Job(NamedTuple):
    label: str
    source: object  # triton.compiler.ASTSource
    options: dict


def _job(launch: Launch, backend) -> tuple:
    """(key, job): what ``JITFunction.run`` would compile for this launch.
    The key is Triton's own specialisation of the arguments plus the options,
    so launches that would share a binary share a job."""
    from triton import knobs
    from triton.compiler import ASTSource
    from triton.runtime.jit import create_function_from_signature

    kernel = launch.kernel
    kwargs = dict(launch.kwargs, debug=False,
                  instrumentation_mode=knobs.compilation.instrumentation_mode)
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    bound, specialization, options = binder(*launch.args, **kwargs)
    options, signature, constexprs, attrs = kernel._pack_args(
        backend, kwargs, bound, specialization, options)
    key = (kernel.__name__, repr(specialization), repr(sorted(options.__dict__.items())))
    names = kernel.arg_names
    meta = " ".join(f"{names[i]}={v!r}" for (i,), v in constexprs.items() if names[i].isupper())
    label = f"{kernel.__name__} grid={launch.grid} {meta}"
    return key, _Job(label, ASTSource(kernel, signature, constexprs, attrs), options.__dict__)


_JOBS: list = []  # read by the forked compile workers


def _compile(index: int) -> str:
    """'' when job ``index`` compiles and fits, else why not."""
    import triton
    from triton.backends.compiler import GPUTarget

    job = _JOBS[index]
    try:
        compiled = triton.compile(job.source, target=GPUTarget("cuda", 90, 32),
                                  options=job.options)
    except Exception as exc:  # report every failing configuration, then fail
        return f"FAILED to compile {job.label}: {type(exc).__name__}: {exc}"[:3000]
    if compiled.metadata.shared > SM90_SHARED_BYTES:
        return f"{job.label}: {compiled.metadata.shared} bytes of shared memory"
    return ""


def compile_launches(run_launchers: Callable[[], None]) -> int:
    """Captures the launches ``run_launchers`` makes, compiles each distinct
    configuration for sm_90 (on all CPUs) and prints a summary; returns the
    number of failures."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend

    from fastgram.kernels import common

    assert not common.INTERPRETED, "run without TRITON_INTERPRET"
    with captured_launches() as launches:
        run_launchers()
    backend = make_backend(GPUTarget("cuda", 90, 32))
    jobs = {}
    for launch in launches:
        key, job = _job(launch, backend)
        jobs.setdefault(key, job)
    _JOBS[:] = jobs.values()
    with multiprocessing.get_context("fork").Pool(os.cpu_count()) as pool:
        problems = [p for p in pool.map(_compile, range(len(_JOBS)), chunksize=1) if p]
    for problem in problems:
        print(problem)
    print(f"{len(launches)} launches captured; "
          f"{len(_JOBS)} configurations compiled for sm_90, {len(problems)} failed")
    return len(problems)
