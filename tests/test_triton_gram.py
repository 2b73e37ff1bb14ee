"""Triton Gram-matrix and fused style-loss kernels (fastgram.kernels.gram,
gram_plan and style_loss).

On a machine without CUDA these run under ``TRITON_INTERPRET=1`` (set by
conftest.py) on CPU tensors; with a CUDA device the same cases run on it too.
Every result is compared with the float64 reference op on upcast inputs; all
outputs and workspaces are poisoned with NaN before each launch, so an element
a kernel does not write fails the comparison.
"""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch
from helpers import RTOL, assert_close, randn, rel_error

import fastgram
from fastgram import dispatch, ops
from fastgram.dispatch import FastgramFallbackWarning
from fastgram.ops import reference

gram = pytest.importorskip("fastgram.kernels.gram", reason="triton is not installed")
from fastgram.kernels import common as kernel_common, gram_plan  # noqa: E402
from fastgram.backends.triton import gram_matrix as triton_gram, style_loss as triton_style  # noqa: E402

CUDA = torch.cuda.is_available()
# CPU tensors reach the kernels only through the interpreter; on a CUDA
# machine without it they route to the reference (tested separately).
DEVICES = (["cpu"] if kernel_common.INTERPRETED else []) + (["cuda"] if CUDA else [])
HALF = (torch.float16, torch.bfloat16)


@pytest.fixture(autouse=True)
def _poisoned_default_tuning():
    # every test starts from the default tuning, and whatever it changes in
    # gram_plan.tuning is undone when it ends
    with kernel_common.override(kernel_common.debug, poison=True), \
            kernel_common.override(gram_plan.tuning, **vars(gram_plan.GramTuning())):
        yield


def _force_split(**extra):
    """Lower the split-K thresholds so that small shapes take the split path."""
    return kernel_common.override(
        gram_plan.tuning, split_min_n=1, min_chunks_per_split=1, target_programs=1 << 20,
        max_workspace_bytes=1 << 40, **extra,
    )


def _triton_gram_matrix(x, scale=None):
    """The triton backend's registered function, called as dispatch calls it
    (the public op in front of it is tested through dispatch separately, and
    would send float64 on CUDA to cuBLAS instead)."""
    return triton_gram.run(x, _scale(x) if scale is None else scale)


def _triton_style_loss(feats, targs, weights):
    weights = [1.0] * len(feats) if weights is None else list(weights)
    return triton_style.run(feats, targs, weights, [_scale(f) for f in feats])


def _ref_gram(x, scale):
    return reference.gram_matrix(x.detach().to(torch.float64), scale)


def _scale(x):
    return 1.0 / x[0].numel()


def _check_gram_forward(x, what="gram"):
    g = _triton_gram_matrix(x)
    assert g.dtype == x.dtype and g.shape == (x.shape[0], x.shape[1], x.shape[1])
    assert torch.isfinite(g).all(), f"{what}: unwritten (NaN-poisoned) or non-finite entries"
    assert torch.equal(g, g.transpose(1, 2)), f"{what}: not bitwise symmetric"
    assert_close(g, _ref_gram(x, _scale(x)), RTOL[x.dtype], what)
    return g


def _check_gram_backward(x, what="gram"):
    """Gradient for a random, non-symmetric upstream dG."""
    x = x.detach().requires_grad_(True)
    x64 = x.detach().to(torch.float64).requires_grad_(True)
    g = _triton_gram_matrix(x)
    dg = randn(*g.shape, dtype=torch.float64, device=x.device)
    g.backward(dg.to(x.dtype))
    reference.gram_matrix(x64, _scale(x)).backward(dg)
    assert x.grad.dtype == x.dtype and x.grad.shape == x.shape
    assert_close(x.grad, x64.grad, RTOL[x.dtype], f"{what}: dx")


# --------------------------------------------------------------------------
# Gram matrix


GRAM_SHAPES = [
    (1, 1, 1),
    (3, 1, 1000),
    (1, 3, 1),
    (3, 3, 7),
    (3, 64, 7),
    (1, 65, 1000),
    (3, 65, 1),
    (1, 64, 25, 40),
    (3, 3, 5, 7),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", GRAM_SHAPES, ids=str)
def test_triton_gram_forward_matches_reference(device, dtype, shape, gen):
    _check_gram_forward(randn(*shape, dtype=dtype, gen=gen, device=device))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", [(3, 3, 7), (1, 65, 1000), (3, 64, 5, 7), (2, 1, 1)], ids=str)
def test_triton_gram_backward_matches_reference(device, dtype, shape, gen):
    _check_gram_backward(randn(*shape, dtype=dtype, gen=gen, device=device))


@pytest.mark.parametrize("device", DEVICES)
def test_triton_gram_backward_of_expanded_upstream_gradient(device, gen):
    # g.sum().backward() hands the kernel a stride-0 (expanded) dG
    x = randn(2, 5, 9, gen=gen, device=device, requires_grad=True)
    _triton_gram_matrix(x).sum().backward()
    x64 = x.detach().double().requires_grad_(True)
    reference.gram_matrix(x64, _scale(x)).sum().backward()
    assert_close(x.grad, x64.grad, RTOL[torch.float32], "dx")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(2, 65, 1000), (1, 3, 1000), (1, 16, 20, 50)], ids=str)
@pytest.mark.parametrize("finish_block", [None, 16], ids=["finish_default", "finish16"])
def test_triton_gram_split_k(device, dtype, shape, finish_block, gen):
    # finish16: the reduce kernel runs on tiles finer than the product's
    x = randn(*shape, dtype=dtype, gen=gen, device=device)
    n = x[0, 0].numel()
    with _force_split(finish_block=finish_block):
        plan = gram_plan.plan_forward(x.shape[0], x.shape[1], n, dtype, x.device)
        assert plan.split > 1, plan  # the case must really take the split path
        _check_gram_forward(x, "split-K gram")
        _check_gram_backward(x, "split-K gram")


@pytest.mark.parametrize("device", DEVICES)
def test_triton_gram_default_split_k_policy(device):
    # B = 1 with one tile and a long reduction: split to fill the device,
    # but never past the workspace cap or below the minimum chunk count
    dev = torch.device(device)
    long = gram_plan.plan_forward(1, 64, 262144, torch.bfloat16, dev)
    short = gram_plan.plan_forward(1, 64, 1000, torch.bfloat16, dev)
    assert short.split == 1
    assert long.chunk % long.block_k == 0 and long.split * long.chunk >= 262144
    assert (long.split - 1) * long.chunk < 262144  # no empty split
    assert long.split * 64 * 64 * 4 <= gram_plan.tuning.max_workspace_bytes or long.split == 1
    assert long.finish_block <= long.block_c and long.block_c % long.finish_block == 0
    if dev.type == "cuda":
        assert long.split > 1


@pytest.mark.parametrize("device", DEVICES)
def test_triton_gram_long_rows_default_tuning(device, gen):
    # H*W >= 2^16 with B*C small, default thresholds (split-K wherever the
    # device is larger than the tile grid)
    x = randn(1, 3, 256, 256, gen=gen, device=device)
    _check_gram_forward(x, "long rows")
    _check_gram_backward(x, "long rows")
    t = randn(3, 3, gen=gen, device=device)
    _check_style_loss([x], [t], [0.5], "long rows style loss", target_grad=False)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels", [65, 130])
def test_triton_gram_many_tiles(device, channels, gen):
    # small tiles exercise the upper-triangle pair numbering over many tiles
    x = randn(2, channels, 7, gen=gen, device=device)
    with kernel_common.override(gram_plan.tuning, block_c=16):
        assert gram_plan.plan_forward(2, channels, 7, x.dtype, x.device).tiles == -(-channels // 16)
        _check_gram_forward(x, f"gram C={channels}")


@pytest.mark.parametrize("device", DEVICES)
def test_triton_gram_layouts_without_copies(device, gen):
    x = randn(2, 6, 5, 7, gen=gen, device=device)
    cl = x.contiguous(memory_format=torch.channels_last)
    for name, t in [("contiguous", x), ("channels_last", cl)]:
        viewed, strides = gram.as_bcn(t)
        assert viewed.data_ptr() == t.data_ptr() and viewed is t, name
        _check_gram_forward(t, name)
    assert gram.as_bcn(cl)[1] == (6 * 5 * 7, 1, 6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["channels_last", "sliced", "transposed3d", "hw_swapped"])
def test_triton_gram_strided_inputs(device, layout, gen):
    base = randn(2, 8, 6, 10, gen=gen, device=device)
    x = {
        "channels_last": base.contiguous(memory_format=torch.channels_last),
        "sliced": base[:, ::2, :, 1:8],  # does not flatten: copied, still correct
        "transposed3d": randn(2, 40, 5, gen=gen, device=device).transpose(1, 2),
        "hw_swapped": base.transpose(2, 3),
    }[layout]
    _check_gram_forward(x, layout)
    _check_gram_backward(x, layout)


@pytest.mark.parametrize("device", DEVICES)
def test_triton_gram_gradient_keeps_channels_last(device, gen):
    x = randn(2, 4, 3, 5, gen=gen, device=device).contiguous(memory_format=torch.channels_last)
    dx = gram.gram_backward(randn(2, 4, 4, gen=gen, device=device), x, 0.5)
    assert dx.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("device", DEVICES)
def test_triton_gram_constant_and_zero_channels(device, gen):
    x = randn(2, 5, 33, gen=gen, device=device)
    x[:, 1] = 0.0
    x[:, 3] = 2.5
    g = _check_gram_forward(x, "constant channels")
    assert (g[:, 1] == 0).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scale", [1.0, 0.37, 1e-6])
def test_triton_gram_scale(device, scale, gen):
    x = randn(2, 4, 20, gen=gen, device=device)
    g = _triton_gram_matrix(x, scale)
    assert_close(g, _ref_gram(x, scale), RTOL[torch.float32], f"scale={scale}")


@pytest.mark.parametrize("device", DEVICES)
def test_triton_gram_float64_and_gradcheck(device, gen):
    x = randn(2, 3, 4, 5, dtype=torch.float64, gen=gen, device=device)
    _check_gram_forward(x, "float64")
    _check_gram_backward(x, "float64")
    x = randn(2, 3, 5, dtype=torch.float64, gen=gen, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(_triton_gram_matrix, (x,))


# --------------------------------------------------------------------------
# fused style loss


def _style_case(device, dtype, per_sample, gen, batch=3, layers=((3, 7), (64, 40), (65, 1), (1, 9))):
    """Layers of different C and N, random weights of any sign and sum, and
    targets that are not symmetric (the gradient must not assume they are)."""
    feats, targs = [], []
    for i, (c, n) in enumerate(layers):
        shape = (batch, c, n) if i % 2 == 0 else (batch, c, 1, n)
        feats.append(randn(*shape, dtype=dtype, gen=gen, device=device))
        tshape = (batch, c, c) if per_sample else (c, c)
        targs.append(randn(*tshape, gen=gen, device=device) * 0.3)
    weights = (torch.rand(len(layers), generator=gen, dtype=torch.float64) * 4 - 1).tolist()
    return feats, targs, weights


def _eager_feature_grads(feats, targs, weights, grad_out):
    """Feature gradients of the reference op run in the features' own half
    dtype (None per layer for fp32/fp64, whose bound is the policy's alone)."""
    if feats[0].dtype not in HALF:
        return [None] * len(feats)
    leaves = [f.detach().clone().requires_grad_(True) for f in feats]
    loss = ops.style_loss(leaves, [t.detach() for t in targs], weights, backend="reference")
    (loss * grad_out).backward()
    return [f.grad for f in leaves]


def _check_style_loss(feats, targs, weights, what, grad_out=1.7, target_grad=True):
    """Loss and gradients against the float64 reference. With ``target_grad``
    the targets require grad too, which makes the forward keep G itself;
    without, it keeps only 2 G - T - T^T for the backward."""
    feats = [f.detach().requires_grad_(True) for f in feats]
    targs = [t.detach().requires_grad_(target_grad) for t in targs]
    f64 = [f.detach().to(torch.float64).requires_grad_(True) for f in feats]
    t64 = [t.detach().to(torch.float64).requires_grad_(target_grad) for t in targs]
    loss = _triton_style_loss(feats, targs, weights)
    ref = ops.style_loss(f64, t64, weights, backend="reference")
    dtype = feats[0].dtype
    assert loss.dim() == 0
    assert loss.dtype == (torch.float32 if dtype in HALF else dtype)
    # the loss is an fp32 reduction of fp32 Gram values, whatever the input dtype
    assert_close(loss, ref, RTOL[reference.compute_dtype(dtype)], f"{what}: loss")
    (loss * grad_out).backward()
    (ref * grad_out).backward()
    eager = _eager_feature_grads(feats, targs, weights, grad_out)
    for i, (f, r, e) in enumerate(zip(feats, f64, eager)):
        assert f.grad.dtype == dtype and f.grad.shape == f.shape
        # Half gradients of a normalised Gram loss are tiny (often subnormal),
        # so the bound is the policy's or twice PyTorch's own error in the
        # same dtype, whichever is larger (the flash-attention criterion).
        bound = RTOL[dtype] if e is None else max(RTOL[dtype], 2 * rel_error(e, r.grad))
        assert_close(f.grad, r.grad, bound, f"{what}: d features[{i}]")
    for i, (t, r) in enumerate(zip(targs, t64)):
        if not target_grad:
            assert t.grad is None
            continue
        assert t.grad.dtype == t.dtype
        # computed in fp32 (fp64), rounded to the target's own dtype
        bound = max(RTOL[t.dtype], RTOL[reference.compute_dtype(dtype)])
        assert_close(t.grad, r.grad, bound, f"{what}: d targets[{i}]")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("per_sample", [False, True], ids=["broadcast", "per_sample"])
@pytest.mark.parametrize("target_grad", [False, True], ids=["const_targets", "target_grad"])
def test_triton_style_loss_matches_reference(device, dtype, per_sample, target_grad, gen):
    feats, targs, weights = _style_case(device, dtype, per_sample, gen)
    what = f"{dtype} {'per-sample' if per_sample else 'broadcast'} target_grad={target_grad}"
    _check_style_loss(feats, targs, weights, what, target_grad=target_grad)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_style_loss_split_k(device, dtype, gen):
    feats, targs, weights = _style_case(device, dtype, False, gen, batch=1,
                                        layers=((65, 1000), (3, 300)))
    with _force_split():
        assert gram_plan.plan_forward(1, 65, 1000, dtype, feats[0].device).split > 1
        _check_style_loss(feats, targs, weights, "split-K style loss", target_grad=False)
        _check_style_loss(feats, targs, weights, "split-K style loss, G kept", target_grad=True)
    with _force_split(finish_block=16):  # loss partials from finer tiles
        assert gram_plan.plan_forward(1, 65, 1000, dtype, feats[0].device).finish_pairs > 3
        _check_style_loss(feats, targs, weights, "split-K style loss, fine finish")


@pytest.mark.parametrize("device", DEVICES)
def test_triton_style_loss_single_layer_channels_last_and_low_precision_targets(device, gen):
    x = randn(2, 8, 6, 5, gen=gen, device=device).contiguous(memory_format=torch.channels_last)
    t = ops.gram_matrix(randn(1, 8, 30, gen=gen, device=device)).mean(0).to(torch.bfloat16)
    _check_style_loss([x], [t], None, "channels_last + bf16 target")


@pytest.mark.parametrize("device", DEVICES)
def test_triton_style_loss_gradient_coefficient(device, gen):
    # For a symmetric target the feature gradient is k (G - T) F with
    # k = 4 s w / (B C^2) times the upstream gradient.
    batch, c, n, w, g_out = 2, 5, 11, 0.8, 3.0
    x = randn(batch, c, n, gen=gen, device=device, requires_grad=True)
    t = randn(c, c, gen=gen, device=device)
    t = t + t.T
    (_triton_style_loss([x], [t], [w]) * g_out).backward()
    s = 1.0 / (c * n)
    f = x.detach().double()
    gm = s * f @ f.transpose(1, 2)
    k = 4 * s * w / (batch * c * c) * g_out
    assert_close(x.grad, k * (gm - t.double()) @ f, RTOL[torch.float32], "k (G - T) F")


@pytest.mark.parametrize("device", DEVICES)
def test_triton_style_loss_float64_and_gradcheck(device, gen):
    feats, targs, weights = _style_case(device, torch.float64, False, gen, batch=2,
                                        layers=((3, 4), (2, 3)))
    _check_style_loss(feats, targs, weights, "float64", target_grad=False)
    # gradcheck perturbs every input element: keep the case tiny
    feats, targs, weights = _style_case(device, torch.float64, False, gen, batch=2,
                                        layers=((2, 3), (1, 2)))
    feats = [f.requires_grad_(True) for f in feats]
    targs = [t.to(torch.float64).requires_grad_(True) for t in targs]

    def loss(*tensors):
        return _triton_style_loss(list(tensors[:2]), list(tensors[2:]), weights)

    assert torch.autograd.gradcheck(loss, (*feats, *targs))


@pytest.mark.parametrize("device", DEVICES)
def test_triton_style_loss_without_grad(device, gen):
    feats, targs, weights = _style_case(device, torch.float32, False, gen, batch=1,
                                        layers=((4, 9),))
    with torch.no_grad():
        loss = _triton_style_loss(feats, targs, weights)
    ref = reference.style_loss([feats[0].double()], [targs[0].double()], weights, [1 / 36])
    assert_close(loss, ref, RTOL[torch.float32], "loss under no_grad")


# --------------------------------------------------------------------------
# nn modules, dispatch and op registration


@pytest.mark.parametrize("device", DEVICES)
def test_triton_gram_nn_modules(device, gen):
    style = [randn(1, 4, 5, 6, gen=gen, device=device), randn(1, 6, 20, gen=gen, device=device)]
    feats = [randn(2, 4, 5, 6, gen=gen, device=device, requires_grad=True),
             randn(2, 6, 20, gen=gen, device=device, requires_grad=True)]
    with fastgram.use_backend("triton"):
        grams = [fastgram.nn.GramMatrix()(f) for f in feats]
        loss_a = fastgram.nn.StyleLoss(style, weights=[1.0, 0.5])(feats)
        loss_b = fastgram.nn.StyleLoss(targets=[fastgram.nn.GramMatrix()(s)[0] for s in style],
                                       weights=[1.0, 0.5])(feats)
    with fastgram.use_backend("reference"):
        ref_grams = [fastgram.nn.GramMatrix()(f) for f in feats]
        ref_loss = fastgram.nn.StyleLoss(style, weights=[1.0, 0.5])(feats)
    for g, r in zip(grams, ref_grams):
        assert_close(g, r, RTOL[torch.float32], "GramMatrix")
    assert_close(loss_a, ref_loss, RTOL[torch.float32], "StyleLoss(style_features)")
    assert_close(loss_b, ref_loss, RTOL[torch.float32], "StyleLoss(targets=...)")
    loss_a.backward()
    assert all(torch.isfinite(f.grad).all() for f in feats)


def test_triton_gram_registered_with_dispatch():
    status = fastgram.backends()["triton"]
    assert status.available, status.reason
    assert {"gram_matrix", "style_loss"} <= set(status.ops)
    table = dispatch._tables["triton"]
    assert {"gram_matrix", "style_loss"} <= set(table)
    for op in ("gram_matrix", "style_loss"):
        ours = inspect.signature(table[op].fn).parameters
        assert list(ours) == list(inspect.signature(getattr(reference, op)).parameters)


@pytest.mark.parametrize("device", DEVICES)
def test_triton_gram_selected_for_supported_inputs(device, gen):
    x = randn(1, 2, 3, gen=gen, device=device)
    t = randn(2, 2, gen=gen, device=device)
    assert dispatch.select("gram_matrix", x.device, (x, 1.0), "triton") is triton_gram.run
    args = ([x], [t], [1.0], [1.0])
    assert dispatch.select("style_loss", x.device, args, "triton") is triton_style.run
    if x.device.type == "cuda":  # auto prefers Triton on CUDA
        assert dispatch.select("gram_matrix", x.device, (x, 1.0)) is triton_gram.run
        assert dispatch.select("style_loss", x.device, args) is triton_style.run


@pytest.mark.parametrize("device", DEVICES)
def test_triton_gram_float64_routing(device):
    # float64 runs on the Triton kernels where they are a test vehicle (the
    # interpreter); on CUDA cuBLAS (the reference) is much faster
    x = torch.ones(1, 2, 3, dtype=torch.float64, device=device)
    reason = triton_gram.supports(x, 1.0)
    style_reason = triton_style.supports([x], [x[0, :, :2]], [1.0], [1.0])
    if device == "cuda":
        assert reason and "float64" in reason and style_reason == reason
    else:
        assert reason is None and style_reason is None


def test_triton_gram_cpu_without_interpreter_routes_to_reference(monkeypatch):
    monkeypatch.setattr(kernel_common, "INTERPRETED", False)
    x = torch.ones(1, 2, 3)
    reason = triton_gram.supports(x, 1.0)
    assert reason and "TRITON_INTERPRET" in reason
    assert "TRITON_INTERPRET" in triton_style.supports([x], [torch.ones(2, 2)], [1.0], [1.0])
    assert triton_gram.supports(torch.ones(1, 2, 3, device="meta"), 1.0)
    with pytest.raises(ValueError, match="TRITON_INTERPRET"):
        torch.ops.fastgram.triton_gram_matrix(x, 1.0)  # the op refuses what Triton cannot read
    if kernel_common.INTERPRETED or CUDA:  # the triton backend is loaded: explicit use falls back
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            impl = dispatch.select("gram_matrix", x.device, (x, 1.0), "triton")
        assert impl is reference.gram_matrix
        assert any(issubclass(w.category, FastgramFallbackWarning) for w in caught)


@pytest.mark.parametrize("device", DEVICES)
def test_triton_gram_direct_op_calls_validate(device):
    op = torch.ops.fastgram
    with pytest.raises(TypeError, match="x"):
        op.triton_gram_matrix(torch.ones(1, 2, 3, dtype=torch.int32, device=device), 1.0)
    with pytest.raises(ValueError, match="x"):
        op.triton_gram_matrix(torch.ones(2, 3, device=device), 1.0)
    with pytest.raises(ValueError, match="x"):
        op.triton_gram_matrix(torch.ones(1, 0, 3, device=device), 1.0)
    with pytest.raises(ValueError, match="grad"):
        op.triton_gram_matrix_backward(torch.ones(1, 3, 3, device=device),
                                torch.ones(1, 2, 3, device=device), 1.0)
    x = torch.ones(2, 3, 4, device=device)
    with pytest.raises(ValueError, match=r"targets\[0\]"):
        op.triton_style_loss([x], [torch.ones(2, 2, device=device)], [1.0], [1.0], False)
    with pytest.raises(ValueError, match=r"targets\[0\]"):
        op.triton_style_loss([x], [torch.ones(3, 3, 3, device=device)], [1.0], [1.0], False)
    with pytest.raises(ValueError, match="weights"):
        op.triton_style_loss([x], [torch.ones(3, 3, device=device)], [], [1.0], False)
    t, g = torch.ones(3, 3, device=device), torch.ones((), device=device)
    with pytest.raises(ValueError, match=r"saved\[0\]"):
        op.triton_style_loss_backward(g, [x], [t], [torch.ones(2, 4, 4, device=device)],
                                      [1.0], [1.0], False)
    with pytest.raises(ValueError, match="grad"):
        op.triton_style_loss_backward(torch.ones(2, device=device), [x], [t],
                                      [torch.ones(2, 3, 3, device=device)], [1.0], [1.0], False)
    if device == "cuda":  # a CPU tensor handed to the kernels without the interpreter
        with pytest.raises(ValueError, match="x"):
            op.triton_gram_matrix(torch.ones(1, 2, 3), 1.0)


@pytest.mark.parametrize("device", DEVICES)
def test_triton_gram_opcheck_schema_autograd_fake(device, gen):
    # opcheck's AOT part records the kernels into a graph: CUDA only (below)
    x = randn(2, 4, 5, gen=gen, device=device, requires_grad=True)
    t = randn(4, 4, gen=gen, device=device)
    utils = ("test_schema", "test_autograd_registration", "test_faketensor")
    cases = [
        (torch.ops.fastgram.triton_gram_matrix, (x, 0.3)),
        (torch.ops.fastgram.triton_style_loss, ([x], [t], [0.5], [0.1], False)),
        (torch.ops.fastgram.triton_style_loss,
         ([x], [t.clone().requires_grad_(True)], [0.5], [0.1], True)),
    ]
    for op, args in cases:
        result = torch.library.opcheck(op, args, test_utils=utils)
        assert all(v == "SUCCESS" for v in result.values()), result


@pytest.mark.parametrize("device", DEVICES)
def test_triton_gram_dynamo_fullgraph_without_breaks(device, gen):
    # Dynamo captures the custom ops and their autograd in one graph (run by
    # the eager backend here; Inductor compiles the kernels in the CUDA test)
    torch._dynamo.reset()
    x = randn(2, 4, 3, 5, gen=gen, device=device, requires_grad=True)
    t = randn(4, 4, gen=gen, device=device)

    def step(a):
        return _triton_gram_matrix(a).sum() + _triton_style_loss([a], [t], [0.7])

    explained = torch._dynamo.explain(step)(x)
    assert explained.graph_break_count == 0 and explained.graph_count == 1
    out = torch.compile(step, fullgraph=True, backend="eager")(x)
    out.backward()
    grad = x.grad.clone()
    x.grad = None
    ref = step(x)
    ref.backward()
    assert torch.equal(out, ref) and torch.equal(grad, x.grad)


@pytest.mark.skipif(not kernel_common.INTERPRETED, reason="only the interpreter cannot record kernels")
def test_triton_gram_interpreter_refuses_graph_capture(gen):
    torch._dynamo.reset()
    x = randn(2, 3, 4, gen=gen, requires_grad=True)
    with pytest.raises(Exception, match="cannot trace interpreted Triton kernels"):
        torch.compile(_triton_gram_matrix, fullgraph=True, backend="aot_eager")(x)


def test_triton_gram_fp32_precision_follows_pytorch():
    saved = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        assert gram_plan.fp32_matmul_precision() == "ieee"
        assert gram_plan.dot_config(torch.float32).precision == "ieee"
        torch.backends.cuda.matmul.allow_tf32 = True
        assert gram_plan.fp32_matmul_precision() == "tf32"
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    assert not gram_plan.dot_config(torch.float64).use_dot


# --------------------------------------------------------------------------
# CUDA only: tf32 rounding, the full opcheck and torch.compile with Inductor
# (interpreted kernels cannot be recorded into a graph).

def needs_cuda(why):
    return pytest.mark.skipif(not CUDA, reason=f"needs a CUDA device: {why}")


@needs_cuda("the interpreter does not round to tf32")
def test_triton_gram_tf32_when_allowed(gen):
    x = randn(4, 96, 3000, gen=gen, device="cuda")
    saved = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = True
        g = _triton_gram_matrix(x)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    # tf32 keeps 10 mantissa bits: a looser bound than ieee fp32's 1e-5
    assert_close(g, _ref_gram(x, _scale(x)), 1e-3, "tf32 gram")
    assert torch.equal(g, g.transpose(1, 2))


@needs_cuda("interpreted kernels cannot be recorded into a graph")
def test_triton_gram_opcheck(gen):
    x = randn(2, 6, 40, gen=gen, device="cuda", requires_grad=True)
    t = randn(6, 6, gen=gen, device="cuda")
    torch.library.opcheck(torch.ops.fastgram.triton_gram_matrix, (x, 0.25))
    for keep_gram in (False, True):
        torch.library.opcheck(torch.ops.fastgram.triton_style_loss,
                              ([x], [t], [0.5], [0.25], keep_gram))


@needs_cuda("interpreted kernels cannot be recorded into a graph")
def test_triton_gram_compiles_fullgraph(gen):
    torch._dynamo.reset()
    feats = [randn(2, 8, 6, 6, gen=gen, device="cuda", requires_grad=True),
             randn(2, 16, 9, gen=gen, device="cuda", requires_grad=True)]
    targs = [randn(8, 8, gen=gen, device="cuda"), randn(2, 16, 16, gen=gen, device="cuda")]

    # the backend's registered functions, as dispatch hands them out: the
    # custom ops and their autograd must trace without a graph break
    def step(a, b):
        g = triton_gram.run(a, 1.0 / a[0].numel())
        return g.sum() + triton_style.run([a, b], targs, [1.0, 0.3], [0.01, 0.02])

    compiled = torch.compile(step, fullgraph=True)
    out = compiled(*feats)
    out.backward()
    grads = [f.grad.clone() for f in feats]
    for f in feats:
        f.grad = None
    ref = step(*feats)
    ref.backward()
    assert_close(out, ref, RTOL[torch.float32], "compiled loss")
    for g, f in zip(grads, feats):
        assert_close(g, f.grad, RTOL[torch.float32], "compiled gradient")
