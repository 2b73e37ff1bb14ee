"""``adain(..., unbiased=True)``: pytorch-AdaIN's statistics convention on
every backend, against a re-implementation of that convention written here
from its documented behaviour (per-channel ``var()`` with its default
correction, i.e. divided by H*W - 1, eps added to the variance, then the
square root), forward and gradients.

The Triton kernels run under TRITON_INTERPRET=1 on the CPU (tests/conftest.py),
on both their fused and split (long-row) paths.
"""

import os

import pytest
import torch

from fastgram import nn, ops
from helpers import assert_close, randn, require_extension, kernel_backends

EPS = 1e-5
# content shape, style shape: equal sizes, different spatial sizes, a
# broadcast style, 3-D inputs, two-position rows (the smallest unbiased case)
SHAPES = [
    ((2, 3, 6, 5), (2, 3, 6, 5)),
    ((2, 4, 7, 9), (2, 4, 3, 4)),
    ((3, 2, 5, 5), (1, 2, 11, 3)),
    ((2, 3, 17), (2, 3, 6)),
    ((2, 3, 1, 2), (2, 3, 2, 1)),
]


def adain_paper_formula(content, style, eps=EPS, alpha=1.0):
    """AdaIN as the paper's PyTorch code defines it: mean and unbiased
    variance per (sample, channel) over the flattened spatial positions,
    std = sqrt(var + eps), applied to content and style alike."""
    def mean_std(x):
        flat = x.reshape(x.shape[0], x.shape[1], -1)
        std = (flat.var(dim=2) + eps).sqrt()
        shape = (x.shape[0], x.shape[1]) + (1,) * (x.dim() - 2)
        return flat.mean(dim=2).reshape(shape), std.reshape(shape)

    c_mean, c_std = mean_std(content)
    s_mean, s_std = mean_std(style)
    out = (content - c_mean) / c_std * s_std + s_mean
    return alpha * out + (1 - alpha) * content




def _ready(backend):
    if backend == "ext":
        require_extension()
    if backend == "triton":
        pytest.importorskip("triton")


def _split_path():
    from fastgram.kernels import common, norm_common

    return common.override(norm_common.tuning, fused_max_n=8, tile_elems=8, min_chunk=8)


@pytest.mark.parametrize("backend", kernel_backends())
@pytest.mark.parametrize("content_shape,style_shape", SHAPES)
@pytest.mark.parametrize("alpha", [1.0, 0.6])
def test_unbiased_adain_matches_the_paper_formula(backend, content_shape, style_shape, alpha, gen):
    _ready(backend)
    # two-position rows normalise to +-1 whatever the input: their gradient
    # is eps-sized and ill-conditioned in float32 (reference included)
    dtype = torch.float64 if content_shape[2:] == (1, 2) else torch.float32
    c = randn(*content_shape, dtype=dtype, gen=gen, requires_grad=True)
    s = randn(*style_shape, dtype=dtype, gen=gen, requires_grad=True)
    out = ops.adain(c, s, EPS, alpha, unbiased=True, backend=backend)
    grad = randn(*out.shape, dtype=dtype, gen=gen)
    gc, gs = torch.autograd.grad(out, (c, s), grad)

    c64, s64 = (t.detach().double().requires_grad_() for t in (c, s))
    ref = adain_paper_formula(c64, s64, alpha=alpha)
    rc, rs = torch.autograd.grad(ref, (c64, s64), grad.double())
    assert_close(out, ref, 1e-6)
    assert_close(gc, rc, 1e-5, "grad content")
    assert_close(gs, rs, 1e-5, "grad style")


@pytest.mark.parametrize("backend", kernel_backends())
def test_unbiased_differs_from_biased_by_the_variance_divisor(backend, gen):
    _ready(backend)
    c, s = randn(2, 3, 4, 4, gen=gen), randn(2, 3, 3, 3, gen=gen)
    biased = ops.adain(c, s, backend=backend)
    unbiased = ops.adain(c, s, unbiased=True, backend=backend)
    # the two conventions differ by far more than rounding on rows this short
    assert (biased - unbiased).abs().max() > 1e-3
    assert_close(biased, ops.adain(c.double(), s.double(), backend="reference"), 1e-6)


@pytest.mark.parametrize("backend", kernel_backends())
def test_unbiased_gradcheck_float64(backend, gen):
    _ready(backend)
    c = randn(2, 3, 3, 2, dtype=torch.float64, gen=gen, requires_grad=True)
    s = randn(1, 3, 2, 3, dtype=torch.float64, gen=gen, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda c, s: ops.adain(c, s, EPS, 0.7, True, backend=backend), (c, s))


def test_triton_split_path_takes_the_unbiased_divisor(gen):
    if not (os.environ.get("TRITON_INTERPRET") == "1" or torch.cuda.is_available()):
        pytest.skip("no Triton device")
    pytest.importorskip("triton")
    c = randn(2, 3, 7, 5, gen=gen, requires_grad=True)
    s = randn(2, 3, 6, 3, gen=gen, requires_grad=True)
    with _split_path():
        out = ops.adain(c, s, EPS, 0.8, True, backend="triton")
        gc, gs = torch.autograd.grad(out.square().sum(), (c, s))
    c64, s64 = (t.detach().double().requires_grad_() for t in (c, s))
    ref = adain_paper_formula(c64, s64, alpha=0.8)
    rc, rs = torch.autograd.grad(ref.square().sum(), (c64, s64))
    assert_close(out, ref, 1e-6)
    assert_close(gc, rc, 1e-5, "grad content")
    assert_close(gs, rs, 1e-5, "grad style")


@pytest.mark.parametrize("backend", kernel_backends())
@pytest.mark.parametrize("which", ["content", "style"])
def test_unbiased_refuses_one_position_rows(backend, which, gen):
    _ready(backend)
    c = randn(2, 3, 4, 4, gen=gen)
    s = randn(2, 3, 5, 5, gen=gen)
    if which == "content":
        c = c[:, :, :1, :1]
    else:
        s = s[:, :, :1, :1]
    with pytest.raises(ValueError, match=f"^{which}: the unbiased variance"):
        ops.adain(c, s, unbiased=True, backend=backend)
    ops.adain(c, s, backend=backend)  # the biased variance takes them


def test_unbiased_must_be_a_bool(gen):
    c = randn(2, 3, 4, 4, gen=gen)
    with pytest.raises(TypeError, match="^unbiased:"):
        ops.adain(c, c, unbiased=1)
    with pytest.raises(TypeError, match="^unbiased:"):
        nn.AdaIN(unbiased="yes")


def test_registered_operators_check_the_divisor(gen):
    require_extension()
    c = randn(2, 3, 1, 1, gen=gen)
    s = randn(2, 3, 4, 4, gen=gen)
    with pytest.raises(ValueError, match="content: the unbiased variance"):
        torch.ops.fastgram.ext_adain(c, s, EPS, 1.0, True)
    with pytest.raises(ValueError, match="content: the unbiased variance"):
        torch.ops.fastgram.ext_adain.default(c, s, EPS, 1.0, True)
    # the default stays biased: old direct calls keep their meaning
    out = torch.ops.fastgram.ext_adain(randn(2, 3, 4, 4, gen=gen), s, EPS, 1.0)[0]
    assert out.shape == (2, 3, 4, 4)


def test_adain_module_passes_the_convention(gen):
    c, s = randn(2, 3, 5, 4, gen=gen), randn(2, 3, 3, 3, gen=gen)
    module = nn.AdaIN(unbiased=True)
    assert "unbiased=True" in repr(module)
    assert_close(module(c, s), adain_paper_formula(c.double(), s.double()), 1e-6)
