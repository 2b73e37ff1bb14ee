"""The extension's CPU instance-norm and AdaIN operators against the float64
reference: forward and every gradient, the layouts and degenerate shapes the
kernels have special paths for, gradcheck, opcheck, double backward, a
fullgraph compile, and direct operator calls with bad arguments.

The operators are called directly (``torch.ops.fastgram.ext_*``), so no test
can pass on a silent fallback; separate tests check how ``auto`` routes. The
equivalence tests run with fresh allocations NaN-filled (``poisoned``), so an
output element a kernel does not write fails.
"""

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from fastgram import dispatch, ops
from fastgram.backends import checks, native, reference
from helpers import RTOL, assert_close, poisoned_memory, randn, require_extension

EPS = 1e-5


@pytest.fixture(autouse=True)
def _extension():
    require_extension()


@pytest.fixture
def poisoned():
    with poisoned_memory():
        yield


def ext():
    return torch.ops.fastgram


def instance_norm(x, w, b, activation=None, slope=0.01):
    code = checks.ACTIVATION_CODES[activation]
    return ext().ext_instance_norm(x, w, b, EPS, code, slope)[0]


def adain(content, style, alpha=1.0):
    return ext().ext_adain(content, style, EPS, alpha)[0]


def _leaves(tensors, dtype=None):
    return [None if t is None else t.detach().to(dtype or t.dtype).requires_grad_() for t in tensors]


def check_against_reference(fn, ref_fn, tensors, grad_gen, rtol):
    """fn(*tensors) and its gradients against ref_fn in float64."""
    ours = _leaves(tensors)
    theirs = _leaves(tensors, torch.float64)
    out = fn(*ours)
    ref = ref_fn(*theirs)
    assert out.shape == ref.shape and out.dtype == tensors[0].dtype
    assert out.stride() == out.clone(memory_format=_format(tensors[0])).stride()
    assert_close(out, ref, rtol, "output")
    grad = torch.randn(ref.shape, generator=grad_gen, dtype=torch.float64)
    out.backward(grad.to(out.dtype))
    ref.backward(grad)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a is not None:
            assert_close(a.grad, b.grad, rtol, f"gradient of input {i}")


def _format(x):
    channels_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(
        memory_format=torch.channels_last)
    return torch.channels_last if channels_last else torch.contiguous_format


LAYOUTS = {
    "contiguous": lambda x: x,
    "channels_last": lambda x: x.contiguous(memory_format=torch.channels_last),
    "transposed": lambda x: x.transpose(2, 3),  # strided: neither layout
}

SHAPES = [
    (2, 3, 5, 7),  # H*W not a multiple of any vector width
    (1, 1, 4, 4),  # C = 1
    (2, 4, 1, 1),  # 1x1 spatial
    (3, 20, 6, 6),  # C not a multiple of the channels-last block
    (1, 2, 256, 260),  # rows >= 2**16 with B*C small: split rows
    (2, 5, 17),  # (B, C, N)
]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("activation", [None, "relu", "leaky_relu"])
def test_instance_norm_matches_reference(shape, layout, activation, gen, poisoned):
    if len(shape) == 3 and layout != "contiguous":
        pytest.skip("layouts of 4-D inputs")
    x = LAYOUTS[layout](randn(*shape, gen=gen))
    w, b = randn(shape[1], gen=gen), randn(shape[1], gen=gen)
    check_against_reference(
        lambda x, w, b: instance_norm(x, w, b, activation, 0.2),
        lambda x, w, b: reference.instance_norm(x, w, b, EPS, activation, 0.2),
        [x, w, b], gen, RTOL[torch.float32],
    )


@pytest.mark.parametrize("affine", ["none", "weight", "bias", "per_sample", "strided"])
def test_instance_norm_affine_forms(affine, gen, poisoned):
    x = randn(3, 4, 6, 5, gen=gen)
    w, b = {
        "none": (None, None),
        "weight": (randn(4, gen=gen), None),
        "bias": (None, randn(4, gen=gen)),
        "per_sample": (randn(3, 4, gen=gen), randn(3, 4, gen=gen)),
        "strided": (randn(4, 3, gen=gen).t(), randn(4, 3, gen=gen).t()),
    }[affine]
    check_against_reference(
        lambda x, w, b: instance_norm(x, w, b, "relu"),
        lambda x, w, b: reference.instance_norm(x, w, b, EPS, "relu", 0.01),
        [x, w, b], gen, RTOL[torch.float32],
    )


def test_instance_norm_large_offset_and_constant_rows(gen, poisoned):
    x = randn(2, 3, 16, 16, gen=gen) + 1000.0
    x[0, 1] = 3.25  # variance 0: finite, equal to the reference (the bias)
    w, b = randn(3, gen=gen), randn(3, gen=gen)
    check_against_reference(
        lambda x, w, b: instance_norm(x, w, b),
        lambda x, w, b: reference.instance_norm(x, w, b, EPS, None, 0.01),
        [x, w, b], gen, RTOL[torch.float32],
    )


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("style_shape", [(2, 6, 4, 9), (1, 6, 7, 7)], ids=["same batch", "batch 1"])
@pytest.mark.parametrize("alpha", [1.0, 0.4])
def test_adain_matches_reference(layout, style_shape, alpha, gen, poisoned):
    content = LAYOUTS[layout](randn(2, 6, 5, 8, gen=gen))
    style = randn(*style_shape, gen=gen) * 2.0 - 0.5
    check_against_reference(
        lambda c, s: adain(c, s, alpha),
        lambda c, s: reference.adain(c, s, EPS, alpha),
        [content, style], gen, RTOL[torch.float32],
    )


def test_adain_long_rows_and_constant_style(gen, poisoned):
    content = randn(1, 2, 256, 257, gen=gen)
    style = randn(1, 2, 9, 9, gen=gen)
    style[0, 0] = -1.5
    check_against_reference(
        lambda c, s: adain(c, s, 0.7),
        lambda c, s: reference.adain(c, s, EPS, 0.7),
        [content, style], gen, RTOL[torch.float32],
    )


def test_gradcheck_float64(gen):
    x = randn(2, 3, 3, 4, dtype=torch.float64, gen=gen, requires_grad=True)
    w = randn(2, 3, dtype=torch.float64, gen=gen, requires_grad=True)
    b = randn(3, dtype=torch.float64, gen=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: instance_norm(x, w, b, "leaky_relu", 0.3),
                                    (x, w, b))
    s = randn(1, 3, 2, 5, dtype=torch.float64, gen=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c, s: adain(c, s, 0.6), (x, s))


def test_double_backward_goes_through_the_reference(gen):
    x = randn(2, 3, 4, 4, dtype=torch.float64, gen=gen, requires_grad=True)
    w = randn(3, dtype=torch.float64, gen=gen, requires_grad=True)
    s = randn(2, 3, 5, 5, dtype=torch.float64, gen=gen, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x, w: instance_norm(x, w, None, "relu"), (x, w))
    assert torch.autograd.gradgradcheck(lambda c, s: adain(c, s, 0.5), (x, s))


def test_parameter_gradients_do_not_depend_on_the_thread_count(gen):
    x = randn(8, 64, 32, 32, gen=gen)
    w, b = randn(64, gen=gen), randn(64, gen=gen)
    grads = []
    saved = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            leaves = _leaves([x, w, b])
            instance_norm(*leaves, "relu").square().sum().backward()
            grads.append([t.grad for t in leaves])
    finally:
        torch.set_num_threads(saved)
    for a, b_ in zip(*grads):
        assert torch.equal(a, b_)


def test_opcheck_every_operator(gen):
    x = randn(2, 3, 4, 5, dtype=torch.float64, gen=gen, requires_grad=True)
    w = randn(3, dtype=torch.float64, gen=gen, requires_grad=True)
    b = randn(2, 3, dtype=torch.float64, gen=gen, requires_grad=True)
    torch.library.opcheck(ext().ext_instance_norm.default, (x, w, b, EPS, 2, 0.1))
    x_cl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    torch.library.opcheck(ext().ext_instance_norm.default, (x_cl, None, None, EPS, 0, 0.0))
    _, mean, rstd = ext().ext_instance_norm(x, w, b, EPS, 1, 0.0)
    dy = torch.randn_like(x)
    plain = [t.detach() for t in (x, w, b)]
    torch.library.opcheck(ext().ext_instance_norm_backward.default,
                          (dy, *plain, mean, rstd, 1, 0.0, [True, True, False]))
    s = randn(1, 3, 3, 3, dtype=torch.float64, gen=gen, requires_grad=True)
    torch.library.opcheck(ext().ext_adain.default, (x, s, EPS, 0.3))
    _, *stats = ext().ext_adain(x, s, EPS, 0.3)
    torch.library.opcheck(ext().ext_adain_backward.default,
                          (dy, x.detach(), s.detach(), *stats, 0.3, True))


def test_fullgraph_compile_has_no_graph_breaks(gen):
    import torch._dynamo

    def step(x, w, b, s):
        y = ops.instance_norm(x, w, b, activation="relu", backend="ext")
        return (ops.adain(y, s, alpha=0.8, backend="ext") ** 2).mean()

    x = randn(2, 8, 16, 16, gen=gen, requires_grad=True)
    w, b = randn(8, gen=gen, requires_grad=True), randn(8, gen=gen, requires_grad=True)
    s = randn(1, 8, 12, 12, gen=gen)
    expected = step(x, w, b, s)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(step)(x, w, b, s)
    assert explained.graph_break_count == 0, explained.break_reasons
    out = torch.compile(step, fullgraph=True, backend="aot_eager")(x, w, b, s)
    assert_close(out, expected, RTOL[torch.float32], "compiled output")
    (grad,) = torch.autograd.grad(out, x)
    (expected_grad,) = torch.autograd.grad(expected, x)
    assert_close(grad, expected_grad, RTOL[torch.float32], "compiled gradient")


def test_auto_routes_cpu_norms_to_the_extension_or_plain_pytorch(gen):
    x = randn(4, 64, 32, 32, gen=gen)
    args = (x, None, None, EPS, None, 0.01)
    assert dispatch.select("instance_norm", x.device, args, "auto").__module__ in (
        "fastgram.backends.ext.instance_norm", native.__name__)
    half = x.to(torch.bfloat16)
    # no kernel for bfloat16 on the CPU: plain PyTorch, never the slow reference
    with pytest.warns(dispatch.FastgramFallbackWarning, match="bfloat16"):
        impl = dispatch.select("instance_norm", x.device, (half,) + args[1:], "auto")
    assert impl is native.instance_norm
    ref = F.instance_norm(half.float()).to(torch.bfloat16)
    assert torch.equal(ops.instance_norm(half), ref)


BAD_CALLS = r"""
import torch
import fastgram
fastgram.backends()  # loads the extension
ops = torch.ops.fastgram
x = torch.randn(2, 3, 4, 4)
w = torch.randn(3)
mean = torch.randn(2, 3)
s = torch.randn(2, 3, 5, 5)
calls = {
    "rank 2": lambda: ops.ext_instance_norm(torch.randn(2, 3), None, None, 1e-5, 0, 0.0),
    "integer": lambda: ops.ext_instance_norm(x.int(), None, None, 1e-5, 0, 0.0),
    "empty": lambda: ops.ext_instance_norm(torch.randn(2, 0, 4), None, None, 1e-5, 0, 0.0),
    "short weight": lambda: ops.ext_instance_norm(x, torch.randn(2), None, 1e-5, 0, 0.0),
    "weight dtype": lambda: ops.ext_instance_norm(x, w.double(), None, 1e-5, 0, 0.0),
    "bias batch": lambda: ops.ext_instance_norm(x, None, torch.randn(3, 3), 1e-5, 0, 0.0),
    "activation": lambda: ops.ext_instance_norm(x, None, None, 1e-5, 7, 0.0),
    "eps zero": lambda: ops.ext_instance_norm(x, None, None, 0.0, 0, 0.0),
    "eps nan": lambda: ops.ext_instance_norm(x, None, None, float("nan"), 0, 0.0),
    "slope inf": lambda: ops.ext_instance_norm(x, None, None, 1e-5, 2, float("inf")),
    "meta": lambda: ops.ext_instance_norm(x.to("meta"), None, None, 1e-5, 0, 0.0),
    "grad shape": lambda: ops.ext_instance_norm_backward(
        torch.randn(2, 3, 4, 5), x, None, None, mean, mean, 0, 0.0, [True, False, False]),
    "mean length": lambda: ops.ext_instance_norm_backward(
        x, x, None, None, torch.randn(2, 2), mean, 0, 0.0, [True, False, False]),
    "rstd dtype": lambda: ops.ext_instance_norm_backward(
        x, x, None, None, mean, mean.double(), 0, 0.0, [True, False, False]),
    "style channels": lambda: ops.ext_adain(x, torch.randn(2, 4, 5, 5), 1e-5, 1.0),
    "style batch": lambda: ops.ext_adain(x, torch.randn(3, 3, 5, 5), 1e-5, 1.0),
    "style rank": lambda: ops.ext_adain(x, torch.randn(2, 3, 25), 1e-5, 1.0),
    "style dtype": lambda: ops.ext_adain(x, s.double(), 1e-5, 1.0),
    "alpha nan": lambda: ops.ext_adain(x, s, 1e-5, float("nan")),
    "alpha 2": lambda: ops.ext_adain(x, s, 1e-5, 2.0),
    "s_mean rows": lambda: ops.ext_adain_backward(
        x, x, s, mean, mean, torch.randn(1, 3), mean, 1.0, True),
    "grad_out shape": lambda: ops.ext_adain_backward(
        torch.randn(2, 3, 4), x, s, mean, mean, mean, mean, 1.0, True),
}
for name, call in calls.items():
    try:
        call()
    except (RuntimeError, ValueError, TypeError) as exc:
        assert str(exc), name
        continue
    raise SystemExit(f"no error for: {name}")
print("ALL RAISED", len(calls))
"""


def test_bad_direct_calls_raise_and_never_crash():
    result = subprocess.run([sys.executable, "-c", BAD_CALLS], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ALL RAISED 22" in result.stdout
