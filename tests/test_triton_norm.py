"""Triton instance norm and AdaIN against the float64 reference.

Runs on the CPU under TRITON_INTERPRET=1 (tests/conftest.py sets it when no
CUDA device is visible) and on CUDA when present. The kernels are called
through their registered ops, so a test can never pass on a silent fallback;
separate tests check that dispatch routes ``backend="triton"`` to them.

Every kernel output is NaN-poisoned before launch (``common.debug.poison``),
so an element a kernel forgets to write fails the comparison. Long-row
(split-reduction) paths are reached with interpreter-sized inputs by lowering
``fused_max_n`` / ``tile_elems`` / ``min_chunk``.
"""

import os

import pytest
import torch

import fastgram
from fastgram import dispatch, ops
from fastgram.ops import reference
from helpers import RTOL, assert_close, randn

pytest.importorskip("triton", reason="the Triton kernels need triton installed")

from fastgram.backends import checks  # noqa: E402
from fastgram.backends.triton import adain as triton_adain, instance_norm as triton_in, support as triton_support  # noqa: E402
from fastgram.kernels import common as kernel_common, instance_norm as in_kernels, norm_common  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
LOW_PRECISION = (torch.float32, torch.float16, torch.bfloat16)
# Thresholds that send interpreter-sized rows down the split path: rows
# longer than 64 positions are cut into chunks of 128, 64 positions a tile.
SPLIT = dict(fused_max_n=64, tile_elems=64, min_chunk=128)
TINY_SPLIT = dict(fused_max_n=8, tile_elems=4, min_chunk=8)  # for gradcheck's tiny rows
EPS = 1e-5


@pytest.fixture(params=DEVICES)
def device(request):
    if request.param == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("Triton runs on CPU tensors only under TRITON_INTERPRET=1, which "
                    "tests/conftest.py sets only when no CUDA device is visible")
    return request.param


@pytest.fixture(autouse=True)
def _poisoned_outputs():
    with kernel_common.override(kernel_common.debug, poison=True):
        yield


def _on_path(path, split=SPLIT):
    """The norm kernels' tuning for a ``with`` block taking ``path``: the
    ``split`` thresholds for "split", the defaults for "fused"."""
    return kernel_common.override(norm_common.tuning, **(split if path == "split" else {}))


def _leaf(t):
    return None if t is None else t.detach().clone().requires_grad_(True)


def _run(fn, tensors, view, grad):
    """fn(view(tensors[0]), *tensors[1:]) and the gradients of every tensor."""
    leaves = [_leaf(t) for t in tensors]
    out = fn(view(leaves[0]), *leaves[1:])
    out.backward(grad)
    return out, [None if t is None else t.grad for t in leaves]


def _double(t):
    return None if t is None else t.detach().to(torch.float64)


def _compare(fn_kernel, fn_ref, tensors, dtype, view=lambda t: t, grad=None, names=None):
    """Forward and all gradients of the kernel op against float64 reference."""
    gen = torch.Generator().manual_seed(7)
    probe = fn_ref(view(_double(tensors[0])), *[_double(t) for t in tensors[1:]])
    if grad is None:
        grad = randn(*probe.shape, dtype=dtype, gen=gen, device=tensors[0].device)
    out, grads = _run(fn_kernel, tensors, view, grad)
    ref, ref_grads = _run(fn_ref, [_double(t) for t in tensors], view, _double(grad))
    assert out.dtype == tensors[0].dtype and out.shape == ref.shape
    rtol = RTOL[dtype]
    assert_close(out, ref, rtol, "output")
    names = names or [f"grad {i}" for i in range(len(tensors))]
    for name, t, g, r in zip(names, tensors, grads, ref_grads):
        if r is None:
            continue
        assert g is not None, f"{name}: missing"
        assert g.dtype == t.dtype, f"{name}: dtype {g.dtype}, expected {t.dtype}"
        assert_close(g, r, rtol, name)
    return out


# --------------------------------------------------------------------------
# instance norm


def _in_kernel(eps=EPS, activation=None, slope=0.01):
    code = checks.ACTIVATION_CODES[activation]

    def fn(x, w, b):
        return torch.ops.fastgram.triton_instance_norm(x, w, b, eps, code, slope)[0]

    return fn


def _in_ref(eps=EPS, activation=None, slope=0.01):
    def fn(x, w, b):
        return reference.instance_norm(x, w, b, eps, activation, slope)

    return fn


def _in_inputs(shape, dtype, device, affine="C", seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = randn(*shape, dtype=dtype, gen=gen, device=device)
    B, C = shape[:2]
    if affine is None:
        return [x, None, None]
    pshape = (C,) if affine == "C" else (B, C)
    w = randn(*pshape, dtype=dtype, gen=gen, device=device)
    b = randn(*pshape, dtype=dtype, gen=gen, device=device)
    return [x, w, b]


IN_SHAPES = [(1, 1, 1, 1), (2, 3, 7, 5), (2, 4, 1, 300), (2, 3, 50), (1, 2, 257, 259)]


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=str)
@pytest.mark.parametrize("shape", IN_SHAPES, ids=str)
def test_instance_norm_matches_reference(device, shape, dtype):
    # (1, 2, 257, 259) is longer than the default fused_max_n: split path
    _compare(_in_kernel(), _in_ref(), _in_inputs(shape, dtype, device), dtype,
             names=["grad x", "grad weight", "grad bias"])


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=str)
@pytest.mark.parametrize("shape", [(1, 2, 33, 31), (2, 3, 130)], ids=str)
def test_instance_norm_split_path(device, shape, dtype):
    with _on_path("split"):
        _compare(_in_kernel(), _in_ref(), _in_inputs(shape, dtype, device, "BC"), dtype,
                 names=["grad x", "grad weight", "grad bias"])


@pytest.mark.parametrize("path", ["fused", "split"])
@pytest.mark.parametrize("affine", [None, "C", "BC", "weight only", "bias only", "mixed"])
def test_instance_norm_affine_forms(device, affine, path):
    form = "C" if affine in ("weight only", "bias only", "mixed") else affine
    x, w, b = _in_inputs((2, 3, 9, 11), torch.float32, device, form)
    if affine == "weight only":
        b = None
    if affine == "bias only":
        w = None
    if affine == "mixed":  # shared weight, per-sample bias
        b = randn(2, 3, gen=torch.Generator().manual_seed(16), device=device)
    with _on_path(path):
        _compare(_in_kernel(), _in_ref(), [x, w, b], torch.float32,
                 names=["grad x", "grad weight", "grad bias"])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_instance_norm_float32_params_with_half_input(device, dtype):
    """Modules kept in float32 applied to half-precision activations: the
    parameter gradients come back in the parameters' dtype."""
    x, w, b = _in_inputs((2, 3, 9, 11), dtype, device, "C", seed=14)
    w, b = w.float(), b.float()
    gen = torch.Generator().manual_seed(15)
    grad = randn(2, 3, 9, 11, dtype=dtype, gen=gen, device=device)
    out, (gx, gw, gb) = _run(_in_kernel(activation="relu"), [x, w, b], lambda t: t, grad)
    ref, (rx, rw, rb) = _run(_in_ref(activation="relu"), [_double(x), _double(w), _double(b)],
                             lambda t: t, _double(grad))
    assert out.dtype == dtype and gx.dtype == dtype
    assert gw.dtype == torch.float32 and gb.dtype == torch.float32
    for name, got, want in (("output", out, ref), ("grad x", gx, rx), ("grad weight", gw, rw),
                            ("grad bias", gb, rb)):
        assert_close(got, want, RTOL[dtype], name)


@pytest.mark.parametrize("path", ["fused", "split"])
@pytest.mark.parametrize("affine", ["C", "BC", None])
@pytest.mark.parametrize("activation,slope", [("relu", 0.0), ("leaky_relu", 0.2)])
def test_instance_norm_fused_activation(device, activation, slope, affine, path):
    tensors = _in_inputs((2, 3, 9, 11), torch.float32, device, affine, seed=3)
    with _on_path(path):
        _compare(_in_kernel(activation=activation, slope=slope),
                 _in_ref(activation=activation, slope=slope), tensors, torch.float32,
                 names=["grad x", "grad weight", "grad bias"])


LAYOUTS = {
    "channels_last": (lambda t: t.to(memory_format=torch.channels_last), lambda t: t),
    "channel_slice": (lambda t: t, lambda t: t[:, 1:]),
    "w_slice": (lambda t: t, lambda t: t[..., 1:-1]),  # needs the 2-D spatial index
    "hw_transposed": (lambda t: t, lambda t: t.transpose(2, 3)),
    "batch_stride": (lambda t: t, lambda t: t[::2]),
}


@pytest.mark.parametrize("path", ["fused", "split"])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_instance_norm_layouts(device, layout, path):
    to_layout, view = LAYOUTS[layout]
    x = to_layout(randn(4, 4, 10, 9, gen=torch.Generator().manual_seed(5), device=device))
    B, C = view(x).shape[:2]
    gen = torch.Generator().manual_seed(6)
    w = randn(B, C, gen=gen, device=device)
    b = randn(C, B, gen=gen, device=device).t()  # strided parameters are read in place
    with _on_path(path):
        out = _compare(_in_kernel(activation="leaky_relu", slope=0.1),
                       _in_ref(activation="leaky_relu", slope=0.1), [x, w, b],
                       torch.float32, view=view, names=["grad x", "grad weight", "grad bias"])
    if layout == "channels_last":  # read in place, and the output keeps the layout
        assert out.is_contiguous(memory_format=torch.channels_last)


def test_channels_last_rows_too_long_to_fuse(device):
    """Channels-last rows a program cannot hold 16 channels of take the split
    path at the default thresholds (2-D tiles along the channel dim)."""
    assert norm_common.fused_tile(320, 32, channels_last=True) is None
    assert norm_common.fused_tile(320, 32, channels_last=False) is not None
    x, w, b = _in_inputs((1, 32, 16, 20), torch.float32, device, "C", seed=13)
    x = x.to(memory_format=torch.channels_last)
    _compare(_in_kernel(), _in_ref(), [x, w, b], torch.float32,
             names=["grad x", "grad weight", "grad bias"])
    content, style = _adain_inputs((1, 32, 16, 20), (1, 32, 6, 6), torch.float32, device)
    _compare(_adain_kernel(0.5), _adain_ref(0.5),
             [content.to(memory_format=torch.channels_last), style], torch.float32,
             names=["grad content", "grad style"])


@pytest.mark.parametrize("path", ["fused", "split"])
def test_instance_norm_strided_and_broadcast_grad(device, path):
    """Upstream gradients that are expanded (stride 0) or strided (with an
    activation, so that a constant upstream gradient gives a non-zero dx)."""
    x, w, b = _in_inputs((2, 3, 9, 11), torch.float32, device, "C", seed=8)
    expanded = torch.full((1, 1, 1, 1), 0.7, device=device).expand(2, 3, 9, 11)
    strided = randn(2, 3, 9, 22, gen=torch.Generator().manual_seed(9), device=device)[..., ::2]
    with _on_path(path):
        for grad in (expanded, strided):
            _compare(_in_kernel(activation="leaky_relu", slope=0.2),
                     _in_ref(activation="leaky_relu", slope=0.2), [x, w, b], torch.float32,
                     grad=grad, names=["grad x", "grad weight", "grad bias"])


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=str)
@pytest.mark.parametrize("path", ["fused", "split"])
def test_instance_norm_constant_channels(device, path, dtype):
    x, w, b = _in_inputs((2, 3, 9, 11), dtype, device, "C", seed=10)
    x[0, 1] = 2.5
    x[1, 2] = -1.0
    with _on_path(path):
        out = _compare(_in_kernel(), _in_ref(), [x, w, b], dtype,
                       names=["grad x", "grad weight", "grad bias"])
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("path", ["fused", "split"])
def test_instance_norm_gradcheck_float64(device, path):
    gen = torch.Generator().manual_seed(11)
    x = randn(2, 2, 3, 4, dtype=torch.float64, gen=gen, device=device, requires_grad=True)
    w = randn(2, 2, dtype=torch.float64, gen=gen, device=device, requires_grad=True)
    b = randn(2, dtype=torch.float64, gen=gen, device=device, requires_grad=True)
    fn = _in_kernel(activation="leaky_relu", slope=0.3)
    with _on_path(path, TINY_SPLIT):
        # full Jacobians on the fused path; the split path (many more
        # interpreted launches) checks random projections of them
        assert torch.autograd.gradcheck(fn, (x, w, b), eps=1e-6, atol=1e-6,
                                        fast_mode=path == "split")


# --------------------------------------------------------------------------
# AdaIN


def _adain_kernel(alpha, eps=EPS):
    def fn(content, style):
        return torch.ops.fastgram.triton_adain(content, style, eps, alpha)[0]

    return fn


def _adain_ref(alpha, eps=EPS):
    def fn(content, style):
        return reference.adain(content, style, eps, alpha)

    return fn


def _adain_inputs(cshape, sshape, dtype, device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    content = randn(*cshape, dtype=dtype, gen=gen, device=device)
    style = (torch.randn(*sshape, generator=gen, dtype=torch.float64) * 0.6 - 0.8)
    return [content, style.to(device=device, dtype=dtype)]


ADAIN_SHAPES = [
    ((1, 1, 1, 1), (1, 1, 1, 1)),
    ((2, 3, 7, 5), (2, 3, 4, 6)),
    ((2, 3, 7, 5), (1, 3, 9, 5)),  # one style for the batch
    ((2, 4, 1, 300), (1, 4, 1, 40)),
    ((2, 3, 50), (2, 3, 20)),
]


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=str)
@pytest.mark.parametrize("shapes", ADAIN_SHAPES, ids=str)
def test_adain_matches_reference(device, shapes, dtype, alpha):
    out = _compare(_adain_kernel(alpha), _adain_ref(alpha),
                   _adain_inputs(*shapes, dtype, device), dtype,
                   names=["grad content", "grad style"])
    if alpha == 0.0:
        assert not torch.isnan(out).any()


@pytest.mark.parametrize("alpha", [0.3, 1.0])
@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=str)
@pytest.mark.parametrize("shapes", [((2, 2, 17, 15), (1, 2, 20, 21)),
                                    ((2, 3, 130), (2, 3, 70))], ids=str)
def test_adain_split_path(device, shapes, dtype, alpha):
    with _on_path("split"):
        _compare(_adain_kernel(alpha), _adain_ref(alpha), _adain_inputs(*shapes, dtype, device),
                 dtype, names=["grad content", "grad style"])


def test_adain_long_rows_default_thresholds(device):
    # content and style rows longer than the default fused_max_n
    _compare(_adain_kernel(0.3), _adain_ref(0.3),
             _adain_inputs((1, 2, 257, 259), (1, 2, 130, 130), torch.float32, device),
             torch.float32, names=["grad content", "grad style"])


ADAIN_LAYOUTS = {
    "content_channels_last": lambda c, s: (c.to(memory_format=torch.channels_last), s),
    "style_channels_last": lambda c, s: (c, s.to(memory_format=torch.channels_last)),
    "style_transposed": lambda c, s: (c, s.transpose(2, 3)),
}


@pytest.mark.parametrize("path", ["fused", "split"])
@pytest.mark.parametrize("layout", sorted(ADAIN_LAYOUTS) + ["content_w_slice"])
def test_adain_layouts(device, layout, path):
    content, style = _adain_inputs((2, 4, 10, 9), (1, 4, 8, 12), torch.float32, device, seed=2)
    view = (lambda t: t[..., 1:-1]) if layout == "content_w_slice" else (lambda t: t)
    if layout != "content_w_slice":
        content, style = ADAIN_LAYOUTS[layout](content, style)
    with _on_path(path):
        _compare(_adain_kernel(0.7), _adain_ref(0.7), [content, style], torch.float32,
                 view=view, names=["grad content", "grad style"])


@pytest.mark.parametrize("path", ["fused", "split"])
def test_adain_constant_channels(device, path):
    content, style = _adain_inputs((2, 3, 9, 11), (2, 3, 8, 8), torch.float32, device, seed=4)
    content[0, 1] = 1.5
    style[1, 2] = -0.25
    with _on_path(path):
        out = _compare(_adain_kernel(1.0), _adain_ref(1.0), [content, style], torch.float32,
                       names=["grad content", "grad style"])
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("which", ["content", "style"])
def test_adain_gradient_of_one_input(device, which):
    """Only the input that requires grad gets one (the style-only case runs
    the content pass for its row sums; the content-only case skips style)."""
    content, style = _adain_inputs((2, 3, 6, 5), (1, 3, 4, 4), torch.float32, device, seed=5)
    c = content.clone().requires_grad_(which == "content")
    s = style.clone().requires_grad_(which == "style")
    _adain_kernel(0.5)(c, s).square().sum().backward()
    cr = content.double().requires_grad_(which == "content")
    sr = style.double().requires_grad_(which == "style")
    _adain_ref(0.5)(cr, sr).square().sum().backward()
    got, want = (c.grad, cr.grad) if which == "content" else (s.grad, sr.grad)
    other = s.grad if which == "content" else c.grad
    assert other is None
    assert_close(got, want, RTOL[torch.float32], f"grad {which}")


@pytest.mark.parametrize("path", ["fused", "split"])
def test_adain_gradcheck_float64(device, path):
    gen = torch.Generator().manual_seed(12)
    c = randn(2, 2, 4, 5, dtype=torch.float64, gen=gen, device=device, requires_grad=True)
    s = randn(1, 2, 3, 3, dtype=torch.float64, gen=gen, device=device, requires_grad=True)
    with _on_path(path, TINY_SPLIT):
        # random projections of the Jacobians: the interpreter is slow
        assert torch.autograd.gradcheck(_adain_kernel(0.6), (c, s), eps=1e-6, atol=1e-6,
                                        fast_mode=True)


# --------------------------------------------------------------------------
# double backward (gradient penalties)


def _penalty_grads(fn, tensors, probe):
    """Gradients of the R1-style penalty ||d<fn(...), probe>/d tensors[0]||^2."""
    leaves = [_leaf(t) for t in tensors]
    (g,) = torch.autograd.grad((fn(*leaves) * probe).sum(), leaves[0], create_graph=True)
    g.square().sum().backward()
    return [t.grad for t in leaves]


@pytest.mark.parametrize("op", ["instance_norm", "adain"])
def test_double_backward_matches_reference(device, op):
    if op == "instance_norm":
        tensors = _in_inputs((2, 3, 5, 6), torch.float32, device, "BC", seed=17)
        fn = _in_kernel(activation="leaky_relu", slope=0.2)
        ref = _in_ref(activation="leaky_relu", slope=0.2)
    else:
        tensors = _adain_inputs((2, 3, 5, 6), (1, 3, 4, 4), torch.float32, device, seed=18)
        fn, ref = _adain_kernel(0.7), _adain_ref(0.7)
    probe = randn(2, 3, 5, 6, gen=torch.Generator().manual_seed(19), device=device)
    got = _penalty_grads(fn, tensors, probe)
    want = _penalty_grads(ref, [_double(t) for t in tensors], _double(probe))
    for i, (g, w) in enumerate(zip(got, want)):
        assert_close(g, w, RTOL[torch.float32], f"penalty grad {i}")


def test_only_create_graph_passes_leave_the_kernels(device, monkeypatch):
    calls = []
    kernel_backward = in_kernels.backward
    monkeypatch.setattr(in_kernels, "backward",
                        lambda *a, **k: calls.append(1) or kernel_backward(*a, **k))
    x, w, b = _in_inputs((2, 3, 4, 4), torch.float32, device, "C")
    x.requires_grad_(True)
    fn = _in_kernel()
    torch.autograd.grad(fn(x, w, b).square().sum(), x)
    assert len(calls) == 1
    torch.autograd.grad(fn(x, w, b).square().sum(), x, create_graph=True)
    assert len(calls) == 1


# --------------------------------------------------------------------------
# poisoning actually detects unwritten elements


def test_poisoned_output_is_detected(device, monkeypatch):
    """A launcher that skips part of its work must fail the comparison: run
    the forward with a launch that silently drops the kernel."""
    x, w, b = _in_inputs((2, 3, 4, 4), torch.float32, device)
    monkeypatch.setattr(kernel_common, "launch", lambda *args, **kwargs: None)
    y = torch.ops.fastgram.triton_instance_norm(x, w, b, EPS, 0, 0.0)[0]
    assert torch.isnan(y).all()


# --------------------------------------------------------------------------
# registration: opcheck, dispatch, torch.compile

# Under the interpreter the AOT-dispatch checks cannot run: tracing calls the
# kernel on fake tensors, which have no data.
CPU_OPCHECK_UTILS = ("test_schema", "test_autograd_registration", "test_faketensor")


def _opcheck(op, args, device):
    if device == "cpu":
        torch.library.opcheck(op, args, test_utils=CPU_OPCHECK_UTILS)
    else:
        torch.library.opcheck(op, args)


@pytest.mark.parametrize("path", ["fused", "split"])
def test_opcheck_instance_norm(device, path):
    x, w, b = _in_inputs((2, 3, 9, 11), torch.float32, device, "BC")
    x.requires_grad_(True)
    w.requires_grad_(True)
    with _on_path(path):
        _opcheck(torch.ops.fastgram.triton_instance_norm.default, (x, w, b, EPS, 2, 0.2), device)
        _opcheck(torch.ops.fastgram.triton_instance_norm.default, (x, None, None, EPS, 0, 0.0),
                 device)
        y, mean, rstd = torch.ops.fastgram.triton_instance_norm(x, w, b, EPS, 2, 0.2)
        _opcheck(torch.ops.fastgram.triton_instance_norm_backward.default,
                 (torch.randn_like(y), x.detach(), w.detach(), b, mean, rstd, 2, 0.2), device)


@pytest.mark.parametrize("path", ["fused", "split"])
def test_opcheck_adain(device, path):
    content, style = _adain_inputs((2, 3, 9, 11), (1, 3, 8, 8), torch.float32, device)
    content.requires_grad_(True)
    style.requires_grad_(True)
    with _on_path(path):
        _opcheck(torch.ops.fastgram.triton_adain.default, (content, style, EPS, 0.4), device)
        out, *stats = torch.ops.fastgram.triton_adain(content, style, EPS, 0.4)
        _opcheck(torch.ops.fastgram.triton_adain_backward.default,
                 (torch.randn_like(out), content.detach(), style.detach(), *stats, 0.4, True),
                 device)


def test_triton_backend_reports_and_routes(device):
    status = fastgram.backends()["triton"]
    assert status.available, status.reason
    assert {"instance_norm", "adain"} <= set(status.ops)
    x, w, b = _in_inputs((2, 3, 5, 5), torch.float32, device)
    args = (x, w, b, EPS, "relu", 0.01)
    assert dispatch.select("instance_norm", x.device, args, "triton") is triton_in.run
    content, style = _adain_inputs((2, 3, 5, 5), (1, 3, 4, 4), torch.float32, device)
    assert dispatch.select("adain", x.device, (content, style, EPS, 0.5), "triton") \
        is triton_adain.run
    # the public ops with backend="triton" run the kernels, no fallback warning
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", fastgram.FastgramFallbackWarning)
        assert_close(ops.instance_norm(x, w, b, activation="relu", backend="triton"),
                     reference.instance_norm(x.double(), w.double(), b.double(), EPS, "relu",
                                             0.01), RTOL[torch.float32])
        assert_close(ops.adain(content, style, alpha=0.5, backend="triton"),
                     reference.adain(content.double(), style.double(), EPS, 0.5),
                     RTOL[torch.float32])


def test_supports_reasons(monkeypatch):
    x = torch.randn(2, 3, 4, 4)
    monkeypatch.setattr(kernel_common, "INTERPRETED", False)
    reason = triton_in.supports(x, None, None, EPS, None, 0.01)
    assert reason is not None and "TRITON_INTERPRET" in reason
    meta = torch.empty(2, 3, 4, 4, device="meta")
    assert "content" in triton_adain.supports(meta, x, EPS, 1.0)
    monkeypatch.setattr(kernel_common, "INTERPRETED", True)
    assert "style" in triton_adain.supports(x, meta, EPS, 1.0)
    assert triton_in.supports(x, None, None, EPS, None, 0.01) is None
    huge = torch.empty(1, 2**15, 2**8, 2**8, device="meta")
    assert triton_support.sample_reach(huge) == 2**31 - 1
    assert triton_support.sample_reach(huge[:, :, :, :-1]) < 2**31 - 1


@pytest.mark.parametrize("op", ["instance_norm", "adain"])
def test_compile_fullgraph(device, op):
    """One graph, no breaks, forward and backward through the compiled op.

    On CUDA with Inductor. Under the interpreter Inductor cannot run (it
    traces the kernels with fake tensors, which have no data), so the CPU run
    captures the graph with Dynamo (fullgraph) and runs it eagerly.
    """
    import torch._dynamo

    torch._dynamo.reset()
    if op == "instance_norm":
        tensors = _in_inputs((2, 3, 16, 16), torch.float32, device, "C")

        def fn(x, w, b):
            return torch.ops.fastgram.triton_instance_norm(x, w, b, EPS, 2, 0.2)[0]

        ref = _in_ref(activation="leaky_relu", slope=0.2)
    else:
        tensors = _adain_inputs((2, 3, 16, 16), (1, 3, 8, 8), torch.float32, device)
        fn, ref = _adain_kernel(0.5), _adain_ref(0.5)
    explain = torch._dynamo.explain(fn)(*tensors)
    assert explain.graph_break_count == 0, explain.break_reasons
    assert explain.graph_count == 1
    torch._dynamo.reset()
    backend = "inductor" if device == "cuda" else "eager"
    compiled = torch.compile(fn, fullgraph=True, backend=backend)
    _compare(compiled, ref, tensors, torch.float32)
    torch._dynamo.reset()


# --------------------------------------------------------------------------
# nn drop-ins


@pytest.mark.parametrize("affine", [True, False])
def test_instance_norm2d_is_a_drop_in(device, affine):
    torch.manual_seed(0)
    theirs = torch.nn.InstanceNorm2d(5, eps=1e-4, affine=affine).to(device)
    if affine:
        with torch.no_grad():
            theirs.weight.normal_()
            theirs.bias.normal_()
    ours = fastgram.nn.InstanceNorm2d(5, eps=1e-4, affine=affine).to(device)
    assert set(ours.state_dict()) == set(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())

    x = randn(2, 5, 6, 7, gen=torch.Generator().manual_seed(1), device=device)
    grad = randn(2, 5, 6, 7, gen=torch.Generator().manual_seed(2), device=device)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    with fastgram.use_backend("triton"):
        y_ours = ours(x1)
    y_theirs = theirs(x2)
    y_ours.backward(grad)
    y_theirs.backward(grad)
    tol = 1e-5
    assert_close(y_ours, y_theirs, tol, "output")
    with fastgram.use_backend("triton"):  # unbatched (C, H, W), as torch accepts
        assert_close(ours(x[0]), theirs(x[0]), tol, "unbatched output")
    assert_close(x1.grad, x2.grad, tol, "grad x")
    if affine:
        assert_close(ours.weight.grad, theirs.weight.grad, tol, "grad weight")
        assert_close(ours.bias.grad, theirs.bias.grad, tol, "grad bias")


def test_adain_module_runs_the_kernel(device):
    content, style = _adain_inputs((2, 3, 6, 6), (1, 3, 5, 5), torch.float32, device)
    module = fastgram.nn.AdaIN(alpha=0.8)
    with fastgram.use_backend("triton"):
        out = module(content, style)
    assert_close(out, reference.adain(content.double(), style.double(), EPS, 0.8),
                 RTOL[torch.float32])


def test_instance_norm2d_running_stats_mode_falls_back_to_torch(device):
    """track_running_stats=True needs the running statistics, which the fused
    op neither reads nor updates: that mode runs torch's implementation, in
    training (updating the buffers) and in eval (using them)."""
    torch.manual_seed(0)
    theirs = torch.nn.InstanceNorm2d(4, affine=True, track_running_stats=True).to(device)
    ours = fastgram.nn.InstanceNorm2d(4, affine=True, track_running_stats=True).to(device)
    ours.load_state_dict(theirs.state_dict())
    x = randn(2, 4, 5, 6, gen=torch.Generator().manual_seed(3), device=device)
    with fastgram.use_backend("triton"):
        for mode in ("train", "eval"):
            getattr(ours, mode)()
            getattr(theirs, mode)()
            assert torch.equal(ours(x), theirs(x))
            assert torch.equal(ours.running_mean, theirs.running_mean)
            assert torch.equal(ours.running_var, theirs.running_var)
    assert not torch.equal(ours.running_mean, torch.zeros_like(ours.running_mean))
