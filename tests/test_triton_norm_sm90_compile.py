"""The norm kernels compile for a real GPU target, even on a machine without one.

The interpreter runs the kernels' Python, which accepts constructs the Triton
compiler rejects; so on machines without CUDA (where the numerical suite runs
interpreted) every kernel is also compiled ahead of time for sm_90 (H100)
through Triton's full pipeline, ptxas included, from the arguments the
launchers really pass. On CUDA machines the numerical suite compiles and
runs them for real, so this test is not needed there.

The compile runs in a subprocess: with TRITON_INTERPRET=1 set (as
tests/conftest.py does here) ``triton.jit`` builds interpreter objects that
cannot be compiled.
"""

import os
import subprocess
import sys

import pytest
import torch


@pytest.mark.skipif(torch.cuda.is_available(),
                    reason="with CUDA the numerical suite compiles and runs the kernels")
def test_kernels_compile_for_sm90():
    pytest.importorskip("triton", reason="the Triton kernels need triton installed")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, __file__], env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "compiled" in done.stdout


def _compile_all() -> int:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from fastgram.kernels import _norm_common as common
    from fastgram.kernels import adain, instance_norm

    captured = []
    common.launch = lambda kernel, grid, *args, **kwargs: captured.append((kernel, args, kwargs))
    pointer = {torch.float32: "*fp32", torch.float16: "*fp16", torch.bfloat16: "*bf16",
               torch.float64: "*fp64"}

    def run_launchers(dtype, shape, channels_last, **config):
        x = torch.randn(shape).to(dtype)
        if channels_last:
            x = x.to(memory_format=torch.channels_last)
        w = torch.randn(shape[:2]).to(dtype)
        b = torch.randn(shape[1]).to(dtype)
        style = torch.randn((1,) + tuple(shape[1:])).to(dtype)
        with common.override(**config):
            y, mean, rstd = instance_norm.forward(x, w, b, 1e-5, instance_norm.ACT_LEAKY_RELU, 0.1)
            _, s1, s2 = instance_norm.backward(y, x, w, b, mean, rstd,
                                               instance_norm.ACT_LEAKY_RELU, 0.1)
            instance_norm.param_grads(s1, s2, w, b)
            out, *stats = adain.forward(x, style, 1e-5, 0.5)
            adain.backward(out, x, style, *stats, 0.5, True, True)

    split = dict(fused_max_n=64, tile_elems=64, min_chunk=128)
    for dtype in (torch.float32, torch.bfloat16):
        run_launchers(dtype, (2, 8, 7, 5), False)
        run_launchers(dtype, (2, 8, 17, 15), True, **split)
    run_launchers(torch.float64, (2, 8, 7, 5), False)
    run_launchers(torch.float32, (2, 3, 1, 1), False)  # one-element rows
    sliced = torch.randn(2, 8, 9, 11)[..., 1:-1]  # needs the 2-D spatial index
    y, mean, rstd = instance_norm.forward(sliced, None, None, 1e-5, instance_norm.ACT_RELU, 0.0)
    instance_norm.backward(y, sliced, None, None, mean, rstd, instance_norm.ACT_RELU, 0.0)

    target = GPUTarget("cuda", 90, 32)
    seen = set()
    for kernel, args, kwargs in captured:
        kwargs = dict(kwargs)
        options = {k: kwargs.pop(k) for k in ("num_warps", "num_stages") if k in kwargs}
        signature, constexprs = {}, {}
        for name, arg in zip(kernel.arg_names, args):
            if isinstance(arg, torch.Tensor):
                signature[name] = pointer[arg.dtype]
            elif isinstance(arg, bool):
                signature[name] = "i1"
            elif isinstance(arg, int):
                signature[name] = "i32"
            else:
                signature[name] = "fp32"
        for name in kernel.arg_names[len(args):]:
            signature[name] = "constexpr"
            constexprs[name] = kwargs[name]
        key = (kernel.__name__, tuple(sorted(signature.items())), tuple(sorted(constexprs.items())))
        if key in seen:
            continue
        seen.add(key)
        triton.compile(ASTSource(kernel, signature, constexprs=constexprs), target=target,
                       options=options)
    return len(seen)


if __name__ == "__main__":
    print(f"compiled {_compile_all()} kernel variants for sm_90")
