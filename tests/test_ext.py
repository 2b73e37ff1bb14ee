"""The compiled extension's CPU operators against the float64 reference.

Covers the four operators (Gram forward/backward, multi-layer style loss
forward/backward) directly through ``torch.ops.fastgram.ext_*`` and through
the ``ext`` backend of :mod:`fastgram.ops`: values, gradients of features and
targets, gradcheck, opcheck, and a fullgraph ``torch.compile``.
"""

import warnings

import pytest
import torch

import fastgram
from fastgram import dispatch
from fastgram.ops import reference
from helpers import (RTOL, assert_close, assert_compiles_fullgraph, poisoned_memory, randn,
                     reference_style_loss_and_grads, require_extension)


@pytest.fixture(scope="module", autouse=True)
def ext_loaded():
    require_extension()


def ops():
    return torch.ops.fastgram


def ref_gram(x, scale):
    return reference.gram_matrix(x.detach().double(), scale)


ref_loss_and_grads = reference_style_loss_and_grads


def layout(x, kind):
    """The same values as ``x`` in another memory layout."""
    if kind == "contiguous":
        return x
    if kind == "channels_last":
        return x.contiguous(memory_format=torch.channels_last)
    if kind == "transposed":  # spatial dims swapped: neither inner stride is 1
        return x.transpose(2, 3).contiguous().transpose(2, 3)
    if kind == "sliced":  # every other channel of a bigger tensor
        wide = torch.empty(x.shape[0], 2 * x.shape[1], *x.shape[2:], dtype=x.dtype)
        wide[:, ::2] = x
        return wide[:, ::2]
    raise ValueError(kind)


# --------------------------------------------------------------------------
# Gram


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels", [1, 3, 64, 65, 200])
@pytest.mark.parametrize("hw", [(1, 1), (1, 7), (25, 40), (64, 64)])
def test_gram_forward_backward_match_reference(dtype, channels, hw, gen):
    x = randn(2, channels, *hw, dtype=dtype, gen=gen, requires_grad=True)
    scale = 1.0 / (channels * hw[0] * hw[1])
    out = ops().ext_gram_matrix(x, scale)
    assert out.dtype == dtype and out.shape == (2, channels, channels)
    assert_close(out, ref_gram(x, scale), RTOL[dtype], "gram")
    # The mirrored halves are bit-identical, not just close.
    assert torch.equal(out, out.transpose(1, 2))

    upstream = randn(2, channels, channels, dtype=dtype, gen=gen)
    (grad,) = torch.autograd.grad(out, x, upstream)
    xr = x.detach().double().requires_grad_()
    (ref,) = torch.autograd.grad(reference.gram_matrix(xr, scale), xr, upstream.double())
    assert_close(grad, ref, RTOL[dtype], "gram grad")


@pytest.mark.parametrize("kind", ["channels_last", "transposed", "sliced"])
def test_gram_any_layout(kind, gen):
    x = layout(randn(3, 70, 9, 11, gen=gen), kind).requires_grad_()
    out = ops().ext_gram_matrix(x, 0.5)
    assert_close(out, ref_gram(x, 0.5), RTOL[torch.float32], f"gram ({kind})")
    upstream = randn(3, 70, 70, gen=gen)
    (grad,) = torch.autograd.grad(out, x, upstream)
    xr = x.detach().double().requires_grad_()
    (ref,) = torch.autograd.grad(reference.gram_matrix(xr, 0.5), xr, upstream.double())
    assert_close(grad, ref, RTOL[torch.float32], f"gram grad ({kind})")
    if kind == "channels_last":
        assert grad.is_contiguous(memory_format=torch.channels_last)


def test_gram_three_dim_input(gen):
    x = randn(2, 5, 1000, gen=gen)
    assert_close(ops().ext_gram_matrix(x, 1.0), ref_gram(x, 1.0), RTOL[torch.float32])


def test_gram_gradcheck_and_gradgradcheck(gen):
    x = randn(2, 4, 3, 5, dtype=torch.float64, gen=gen, requires_grad=True)
    fn = lambda t: ops().ext_gram_matrix(t, 0.3)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


# --------------------------------------------------------------------------
# style loss

VGG_LIKE = [(3, 7, 9), (8, 5, 4), (64, 4, 4), (65, 3, 3), (130, 2, 1)]


def make_layers(n_layers, dtype, gen, per_sample, batch=2, symmetric_targets=False):
    features, targets = [], []
    for c, h, w in VGG_LIKE[:n_layers]:
        features.append(randn(batch, c, h, w, dtype=dtype, gen=gen))
        shape = (batch, c, c) if per_sample else (c, c)
        t = randn(*shape, dtype=dtype, gen=gen) * 0.05
        if symmetric_targets:
            t = t + t.transpose(-1, -2)
        targets.append(t)
    weights = [0.5 + 0.7 * i for i in range(n_layers)]
    scales = [1.0 / (f.shape[1] * f.shape[2] * f.shape[3]) for f in features]
    return features, targets, weights, scales


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n_layers", [1, 2, 5])
@pytest.mark.parametrize("per_sample", [False, True])
def test_style_loss_matches_reference(dtype, n_layers, per_sample, gen):
    features, targets, weights, scales = make_layers(n_layers, dtype, gen, per_sample)
    fs = [f.clone().requires_grad_() for f in features]
    ts = [t.clone().requires_grad_() for t in targets]
    loss, residuals = ops().ext_style_loss(fs, ts, weights, scales)
    assert loss.dtype == dtype and loss.dim() == 0
    ref_loss, ref_fgrads, ref_tgrads = ref_loss_and_grads(features, targets, weights, scales)
    assert_close(loss, ref_loss, RTOL[dtype], "loss")
    for f, t, r, s in zip(features, targets, residuals, scales):
        expected = reference.gram_matrix(f.double(), s) - t.double()
        assert_close(r, expected, RTOL[dtype], "residual")
    loss.backward()
    for i in range(n_layers):
        assert_close(fs[i].grad, ref_fgrads[i], RTOL[dtype], f"grad features[{i}]")
        assert_close(ts[i].grad, ref_tgrads[i], RTOL[dtype], f"grad targets[{i}]")
        assert ts[i].grad.shape == targets[i].shape


@pytest.mark.parametrize("channels,n", [(1, 4096), (3, 1), (64, 1000), (65, 7)])
def test_style_loss_odd_shapes(channels, n, gen):
    f = randn(2, channels, n, gen=gen, requires_grad=True)
    t = randn(channels, channels, gen=gen) * 0.1
    s = 1.0 / (channels * n)
    loss = ops().ext_style_loss([f], [t], [2.0], [s])[0]
    ref_loss, ref_f, _ = ref_loss_and_grads([f], [t], [2.0], [s])
    assert_close(loss, ref_loss, RTOL[torch.float32], "loss")
    loss.backward()
    assert_close(f.grad, ref_f[0], RTOL[torch.float32], "grad")


@pytest.mark.parametrize("kind", ["channels_last", "transposed", "sliced"])
def test_style_loss_any_layout(kind, gen):
    features, targets, weights, scales = make_layers(3, torch.float32, gen, per_sample=False)
    fs = [layout(f, kind).requires_grad_() for f in features]
    loss = ops().ext_style_loss(fs, targets, weights, scales)[0]
    ref_loss, ref_f, _ = ref_loss_and_grads(features, targets, weights, scales)
    assert_close(loss, ref_loss, RTOL[torch.float32], f"loss ({kind})")
    loss.backward()
    for f, r in zip(fs, ref_f):
        assert_close(f.grad, r, RTOL[torch.float32], f"grad ({kind})")


def test_style_loss_constant_channels_and_zero_weight(gen):
    f = torch.full((2, 6, 5, 5), 0.25, requires_grad=True)
    t = randn(6, 6, gen=gen)
    weights, scales = [0.0], [1.0 / 150]
    loss = ops().ext_style_loss([f], [t], weights, scales)[0]
    assert loss.item() == 0.0
    loss.backward()
    assert torch.count_nonzero(f.grad) == 0
    loss = ops().ext_style_loss([f], [t], [1.5], scales)[0]
    ref_loss, ref_f, _ = ref_loss_and_grads([f], [t], [1.5], scales)
    assert_close(loss, ref_loss, RTOL[torch.float32])


def test_style_loss_residuals_are_not_differentiable(gen):
    # The residuals are what the backward reads, as the Triton op's saved
    # tensors are: outputs for the backward, not for differentiating.
    features, targets, weights, scales = make_layers(2, torch.float64, gen, per_sample=False)
    fs = [f.clone().requires_grad_() for f in features]
    loss, residuals = ops().ext_style_loss(fs, targets, weights, scales)
    assert loss.requires_grad and not any(r.requires_grad for r in residuals)


def test_style_loss_gradcheck(gen):
    features, targets, weights, scales = make_layers(3, torch.float64, gen, per_sample=False)
    features = [f[:, :, :2, :2].contiguous().requires_grad_() for f in features]
    targets = [t.requires_grad_() for t in targets]
    n = len(features)

    def fn(*tensors):
        return ops().ext_style_loss(list(tensors[:n]), list(tensors[n:]), weights, scales)[0]

    assert torch.autograd.gradcheck(fn, (*features, *targets))


# --------------------------------------------------------------------------
# registration: opcheck, torch.compile


def test_opcheck_every_operator(gen):
    x = randn(2, 5, 3, 4, dtype=torch.float64, gen=gen, requires_grad=True)
    torch.library.opcheck(ops().ext_gram_matrix.default, (x, 0.25))
    x_cl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    torch.library.opcheck(ops().ext_gram_matrix.default, (x_cl, 0.25))
    # backward operators are not differentiated themselves (double backward
    # goes through the reference formula): opcheck them on plain inputs
    g = randn(2, 5, 5, dtype=torch.float64, gen=gen)
    torch.library.opcheck(ops().ext_gram_matrix_backward.default, (g, x.detach(), 0.25))
    torch.library.opcheck(ops().ext_gram_matrix_backward.default, (g, x_cl.detach(), 0.25))
    features, targets, weights, scales = make_layers(2, torch.float32, gen, per_sample=True)
    features = [f.requires_grad_() for f in features]
    torch.library.opcheck(
        ops().ext_style_loss.default, (features, targets, weights, scales)
    )
    _, residuals = ops().ext_style_loss(features, targets, weights, scales)
    grad = torch.tensor(0.7)
    plain = [f.detach() for f in features]
    torch.library.opcheck(
        ops().ext_style_loss_backward.default,
        (grad, plain, [r.detach() for r in residuals], weights, scales),
    )


def test_fullgraph_compile_has_no_graph_breaks(gen, monkeypatch):
    import torch._dynamo

    from fastgram.backends.ext import gram_matrix as ext_gram, style_loss as ext_style

    monkeypatch.setattr(ext_gram, "kernel_pays", lambda x: True)  # small shapes, real kernels

    features, targets, weights, scales = make_layers(3, torch.float32, gen, per_sample=False)

    def fn(fs):
        return ext_style.run(fs, targets, weights, scales) * 2.0 + ext_gram.run(
            fs[0], 0.5
        ).sum()

    assert_compiles_fullgraph(fn, features)


# --------------------------------------------------------------------------
# the ext backend of fastgram.ops


def test_public_ops_on_ext_backend_match_reference(gen):
    # shapes where the CPU kernels pay (N >= max(256, 2C)): the ext ops run
    features = [randn(2, 64, 16, 16, gen=gen), randn(2, 130, 32, 32, gen=gen),
                randn(2, 3, 16, 16, gen=gen)]
    targets = [randn(f.shape[1], f.shape[1], gen=gen) * 0.01 for f in features]
    features = [f.requires_grad_() for f in features]
    with fastgram.use_backend("ext"):
        loss = fastgram.ops.style_loss(features, targets, [1.0, 2.0, 3.0])
        gram = fastgram.ops.gram_matrix(features[1])
    assert "fastgram_ext_style_loss" in type(loss.grad_fn).__name__
    assert "fastgram_ext_gram" in type(gram.grad_fn).__name__
    with fastgram.use_backend("reference"):
        ref_loss = fastgram.ops.style_loss(
            [f.double() for f in features], [t.double() for t in targets], [1.0, 2.0, 3.0]
        )
        ref_gram = fastgram.ops.gram_matrix(features[1].double())
    assert_close(loss, ref_loss, RTOL[torch.float32])
    assert_close(gram, ref_gram, RTOL[torch.float32])


def test_auto_uses_ext_on_cpu_for_float32(gen):
    from fastgram.backends.ext import gram_matrix as ext_gram, style_loss as ext_style

    features, targets, weights, scales = make_layers(2, torch.float32, gen, per_sample=False)
    args = (features, targets, weights, scales)
    assert dispatch.select("style_loss", torch.device("cpu"), args, "auto") is ext_style.run
    x = features[0]
    assert dispatch.select("gram_matrix", x.device, (x, 1.0), "auto") is ext_gram.run


def test_half_on_cpu_routes_to_reference_with_one_warning(gen):
    x = randn(2, 4, 3, 3, dtype=torch.float16, gen=gen)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fastgram.ops.gram_matrix(x, backend="ext")
        fastgram.ops.gram_matrix(x, backend="ext")
    fallbacks = [w for w in caught if issubclass(w.category, fastgram.FastgramFallbackWarning)]
    assert len(fallbacks) == 1 and "float16" in str(fallbacks[0].message)
    assert_close(out, reference.gram_matrix(x.double(), 1.0 / 36), RTOL[torch.float16])


def test_info_reports_the_loaded_library():
    from fastgram.backends.ext import load as ext_load

    info = ext_load.info()
    assert info["loaded"] and info["error"] is None
    assert info["origin"] in ("aot", "jit-cache", "jit-build", "preloaded")
    assert "cpu" in info["devices"]


def test_results_do_not_depend_on_the_thread_count(gen):
    # The tiles run on ATen's pool; CI may run single-threaded, so force two.
    features, targets, weights, scales = make_layers(5, torch.float64, gen, per_sample=True)
    features = [f.repeat(2, 1, 8, 8) for f in features]  # big enough to go parallel
    targets = [t.repeat(2, 1, 1) for t in targets]
    scales = [1.0 / f[0].numel() for f in features]
    results = []
    saved = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            fs = [f.clone().requires_grad_() for f in features]
            loss = ops().ext_style_loss(fs, targets, weights, scales)[0]
            loss.backward()
            results.append((loss.detach(), [f.grad for f in fs]))
    finally:
        torch.set_num_threads(saved)
    ref_loss, ref_f, _ = ref_loss_and_grads(features, targets, weights, scales)
    for loss, grads in results:
        assert_close(loss, ref_loss, RTOL[torch.float64], "loss")
        for g, r in zip(grads, ref_f):
            assert_close(g, r, RTOL[torch.float64], "grad")
    # Per-tile partial sums are added in a fixed order, so a rerun with the
    # same thread count is bit-identical; across thread counts MKL's own GEMM
    # may split its reductions differently (last-bit differences, seen here).
    torch.set_num_threads(2)
    try:
        again = ops().ext_style_loss(features, targets, weights, scales)[0]
    finally:
        torch.set_num_threads(saved)
    assert torch.equal(again, results[1][0])
    assert_close(results[0][0], results[1][0], 1e-14, "loss across thread counts")


def test_cpu_calls_run_the_kernels_only_where_they_pay(gen):
    # Measured: the fused CPU Gram beats bmm only with a backward to fuse and
    # N >= max(256, 2C); elsewhere the ext backend runs plain PyTorch.
    from fastgram.backends.ext import gram_matrix as ext_gram, style_loss as ext_style

    def fused(out):
        return "fastgram_ext" in type(out.grad_fn).__name__

    short = randn(2, 64, 8, 8, gen=gen, requires_grad=True)  # N = 64 < 256
    long = randn(2, 64, 16, 16, gen=gen, requires_grad=True)  # N = 256 >= 2C
    wide = randn(2, 256, 16, 16, gen=gen, requires_grad=True)  # N = 256 < 2C
    assert not fused(ext_gram.run(short, 1.0)) and not fused(ext_gram.run(wide, 1.0))
    assert fused(ext_gram.run(long, 1.0))
    with torch.no_grad():  # forward alone: bmm is as fast or faster
        assert torch.equal(ext_gram.run(long, 0.5), reference.gram_matrix(long, 0.5))
    # the style loss splits its layers: fused ones in one call, the rest plain
    layers = [long, short, wide]
    targets = [randn(f.shape[1], f.shape[1], gen=gen) for f in layers]
    scales = [1.0 / f[0].numel() for f in layers]
    loss = ext_style.run(layers, targets, [1.0, 0.5, 2.0], scales)
    expected = reference.style_loss([f.double() for f in layers], [t.double() for t in targets],
                                    [1.0, 0.5, 2.0], scales)
    assert_close(loss, expected, RTOL[torch.float32])
    grads = torch.autograd.grad(loss, layers)
    ref_grads = torch.autograd.grad(expected, [f for f in layers])
    for g, r in zip(grads, ref_grads):
        assert_close(g, r, RTOL[torch.float32])


def test_long_rows_and_mixed_target_dtype(gen):
    # H*W >= 2^16 with B*C small, float64 targets for float32 features.
    f = randn(1, 2, 65536 + 3, gen=gen, requires_grad=True)
    t = randn(2, 2, dtype=torch.float64, gen=gen, requires_grad=True)
    s = 1.0 / (2 * (65536 + 3))
    loss = ops().ext_style_loss([f], [t], [1.0], [s])[0]
    ref_loss, ref_f, ref_t = ref_loss_and_grads([f], [t], [1.0], [s])
    assert loss.dtype == torch.float32
    assert_close(loss, ref_loss, RTOL[torch.float32], "loss")
    loss.backward()
    assert_close(f.grad, ref_f[0], RTOL[torch.float32], "grad features")
    assert t.grad.dtype == torch.float64
    assert_close(t.grad, ref_t[0], RTOL[torch.float32], "grad targets")


def test_nan_in_gives_nan_out(gen):
    f = randn(2, 100, 40, gen=gen)
    f[1, 7, 3] = float("nan")
    gram = ops().ext_gram_matrix(f, 1.0)
    assert torch.isnan(gram[1, 7]).all() and torch.isfinite(gram[0]).all()
    loss = ops().ext_style_loss([f], [torch.zeros(100, 100)], [1.0], [1.0])[0]
    assert torch.isnan(loss)


@pytest.fixture
def poisoned_allocations():
    with poisoned_memory():
        yield


@pytest.mark.parametrize("channels", [1, 65, 130, 300])
def test_every_output_element_is_written(channels, gen, poisoned_allocations):
    f = randn(2, channels, 6, 7, gen=gen)
    f_cl = f.contiguous(memory_format=torch.channels_last)
    t = randn(2, channels, channels, gen=gen) * 0.1
    s = 1.0 / f[0].numel()
    for x in (f, f_cl):
        assert_close(ops().ext_gram_matrix(x, s), ref_gram(x, s), RTOL[torch.float32], "gram")
        loss, (r,) = ops().ext_style_loss([x], [t], [1.0], [s])
        assert_close(r, reference.gram_matrix(f.double(), s) - t.double(), RTOL[torch.float32])
        (g,) = ops().ext_style_loss_backward(torch.tensor(1.0), [x], [r], [1.0], [s])
        _, ref_f, _ = ref_loss_and_grads([f], [t], [1.0], [s])
        assert_close(g, ref_f[0], RTOL[torch.float32], "grad")
        dg = ops().ext_gram_matrix_backward(r, x, s)
        assert torch.isfinite(dg).all()


def test_public_ops_on_ext_compile_without_graph_breaks(gen):
    import torch._dynamo

    f = randn(2, 64, 16, 16, gen=gen, requires_grad=True)
    t = randn(64, 64, gen=gen) * 1e-3

    def fn(x):
        loss = fastgram.ops.style_loss([x], [t], backend="ext")
        return loss + fastgram.ops.gram_matrix(x, backend="ext").sum()

    expected = fn(f)  # loads the backend outside of tracing
    torch._dynamo.reset()
    assert torch._dynamo.explain(fn)(f).graph_break_count == 0
    out = torch.compile(fn, fullgraph=True, backend="aot_eager")(f)
    assert_close(out, expected, 1e-6)
    (grad,) = torch.autograd.grad(out, f)
    (ref,) = torch.autograd.grad(expected, f)
    assert_close(grad, ref, 1e-6)
    torch._dynamo.reset()
