"""The extension's CUDA kernels against the float64 reference (CUDA only).

float32 runs on CUDA cores (IEEE fp32, relative error <= 1e-5); float16 and
bfloat16 on tensor cores with fp32 accumulation (<= 1e-2, the numerical policy of ENGINEERING.md).
Also: a non-default stream, no host synchronisation, opcheck, and layouts.
"""

import os

import pytest
import torch

from fastgram.ops import reference
from helpers import RTOL, assert_close, randn, reference_style_loss_and_grads

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module", autouse=True)
def ext_with_cuda():
    from fastgram.backends.ext import load as ext_load, support as ext_support

    from fastgram.backends.ext import build as ext_build

    reason = ext_load.load_error()
    required = os.environ.get("FASTGRAM_REQUIRE_EXT") == "1"
    if reason is None and "cuda" not in ext_support.devices_built():
        toolkit_missing = ext_build.cuda_build_possible()
        reason = f"the extension was built without its CUDA kernels ({toolkit_missing or 'see FASTGRAM_EXT_CUDA'})"
        # Without a CUDA toolkit there is nothing to require.
        required = required and toolkit_missing is None
    if reason is not None:
        if required:
            pytest.fail(f"extension required but unavailable on CUDA: {reason}")
        pytest.skip(reason)


DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def ops():
    return torch.ops.fastgram


def layers(dtype, gen, per_sample, channels=(3, 64, 65, 130), hw=((7, 9), (16, 16), (5, 5), (3, 1))):
    features, targets, scales = [], [], []
    for c, (h, w) in zip(channels, hw):
        features.append(randn(2, c, h, w, gen=gen, dtype=dtype, device="cuda"))
        shape = (2, c, c) if per_sample else (c, c)
        targets.append(randn(*shape, gen=gen, device="cuda") * 0.05)
        scales.append(1.0 / (c * h * w))
    weights = [0.5 + i for i in range(len(features))]
    return features, targets, weights, scales


reference_results = reference_style_loss_and_grads


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels", [1, 3, 64, 65, 200])
@pytest.mark.parametrize("n", [1, 7, 1000, 4096])
def test_gram_matches_reference(dtype, channels, n, gen):
    x = randn(2, channels, n, gen=gen, dtype=dtype, device="cuda", requires_grad=True)
    scale = 1.0 / (channels * n)
    out = ops().ext_gram_matrix(x, scale)
    assert out.dtype == dtype
    assert_close(out, reference.gram_matrix(x.detach().double(), scale), RTOL[dtype], "gram")
    upstream = randn(2, channels, channels, gen=gen, device="cuda")
    (grad,) = torch.autograd.grad(out, x, upstream.to(dtype))
    xr = x.detach().double().requires_grad_()
    (ref,) = torch.autograd.grad(reference.gram_matrix(xr, scale), xr, upstream.to(dtype).double())
    assert_close(grad, ref, RTOL[dtype], "gram grad")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("per_sample", [False, True])
def test_style_loss_matches_reference(dtype, per_sample, gen):
    features, targets, weights, scales = layers(dtype, gen, per_sample)
    fs = [f.clone().requires_grad_() for f in features]
    ts = [t.clone().requires_grad_() for t in targets]
    loss, _ = ops().ext_style_loss(fs, ts, weights, scales)
    assert loss.dtype == torch.float32
    ref_loss, ref_f, ref_t = reference_results(features, targets, weights, scales)
    assert_close(loss, ref_loss, RTOL[dtype], "loss")
    loss.backward()
    for i in range(len(fs)):
        assert_close(fs[i].grad, ref_f[i], RTOL[dtype], f"grad features[{i}]")
        assert_close(ts[i].grad, ref_t[i], RTOL[dtype], f"grad targets[{i}]")


def test_long_rows_and_channels_last(gen):
    f = randn(1, 4, 256, 300, gen=gen, device="cuda").contiguous(memory_format=torch.channels_last)
    f.requires_grad_()
    t = randn(4, 4, gen=gen, device="cuda")
    s = 1.0 / (4 * 256 * 300)
    loss = ops().ext_style_loss([f], [t], [1.0], [s])[0]
    ref_loss, ref_f, _ = reference_results([f], [t], [1.0], [s])
    assert_close(loss, ref_loss, RTOL[torch.float32])
    loss.backward()
    assert_close(f.grad, ref_f[0], RTOL[torch.float32])
    assert f.grad.is_contiguous(memory_format=torch.channels_last)


def test_non_default_stream_and_no_host_sync(gen):
    features, targets, weights, scales = layers(torch.float32, gen, per_sample=False)
    ref_loss, ref_f, _ = reference_results(features, targets, weights, scales)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    fs = [f.clone().requires_grad_() for f in features]
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.cuda.stream(stream):
            loss, _ = ops().ext_style_loss(fs, targets, weights, scales)
            loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    assert_close(loss, ref_loss, RTOL[torch.float32], "loss on a side stream")
    for f, r in zip(fs, ref_f):
        assert_close(f.grad, r, RTOL[torch.float32], "grad on a side stream")


def test_opcheck_on_cuda(gen):
    features, targets, weights, scales = layers(torch.float32, gen, per_sample=True)
    features = [f.requires_grad_() for f in features]
    torch.library.opcheck(ops().ext_style_loss.default, (features, targets, weights, scales))
    x = randn(2, 5, 3, 4, gen=gen, device="cuda", requires_grad=True)
    torch.library.opcheck(ops().ext_gram_matrix.default, (x, 0.25))


def test_float64_on_cuda_routes_to_reference(gen):
    import fastgram

    x = randn(2, 3, 4, 4, gen=gen, dtype=torch.float64, device="cuda")
    with pytest.warns(fastgram.FastgramFallbackWarning, match="float64"):
        out = fastgram.ops.gram_matrix(x, backend="ext")
    assert_close(out, reference.gram_matrix(x, 1.0 / 48), RTOL[torch.float64])
