"""The instance-norm and AdaIN kernels compile for sm_90 (H100), even on a
machine without a GPU, as the launchers really launch them: on the fused and
split paths, in float32, bfloat16 and float64, contiguous, channels-last and
strided (see tests/sm90_compile.py). On CUDA machines the numerical suite
compiles and runs them for real, so this test is not needed there."""

import pytest
import torch

import sm90_compile


@pytest.mark.skipif(torch.cuda.is_available(),
                    reason="with CUDA the numerical suite compiles and runs the kernels")
def test_norm_kernels_compile_for_sm90():
    pytest.importorskip("triton", reason="the Triton kernels need triton installed")
    sm90_compile.run_script(__file__, timeout=600)


def _run_launchers() -> None:
    from fastgram.kernels import adain, common, instance_norm, norm_common

    leaky = instance_norm.ACT_LEAKY_RELU

    def both_ops(dtype, shape, channels_last, **tuning):
        x = torch.randn(shape).to(dtype)
        if channels_last:
            x = x.to(memory_format=torch.channels_last)
        w = torch.randn(shape[:2]).to(dtype)
        b = torch.randn(shape[1]).to(dtype)
        style = torch.randn((1,) + tuple(shape[1:])).to(dtype)
        with common.override(norm_common.tuning, **tuning):
            y, mean, rstd = instance_norm.forward(x, w, b, 1e-5, leaky, 0.1)
            _, s1, s2 = instance_norm.backward(y, x, w, b, mean, rstd, leaky, 0.1)
            instance_norm.param_grads(s1, s2, w, b)
            out, *stats = adain.forward(x, style, 1e-5, 0.5)
            adain.backward(out, x, style, *stats, 0.5, True)

    split = dict(fused_max_n=64, tile_elems=64, min_chunk=128)
    for dtype in (torch.float32, torch.bfloat16):
        both_ops(dtype, (2, 8, 7, 5), False)
        both_ops(dtype, (2, 8, 17, 15), True, **split)
    both_ops(torch.float64, (2, 8, 7, 5), False)
    both_ops(torch.float32, (2, 3, 1, 1), False)  # one-element rows
    sliced = torch.randn(2, 8, 9, 11)[..., 1:-1]  # needs the 2-D spatial index
    y, mean, rstd = instance_norm.forward(sliced, None, None, 1e-5, instance_norm.ACT_RELU, 0.0)
    instance_norm.backward(y, sliced, None, None, mean, rstd, instance_norm.ACT_RELU, 0.0)


if __name__ == "__main__":
    raise SystemExit(sm90_compile.compile_launches(_run_launchers))
