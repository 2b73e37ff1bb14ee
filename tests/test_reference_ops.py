"""The reference ops against independent naive formulas, in float64.

The naive formulas here are written differently on purpose (loops, einsum,
explicit sums) so that a shared mistake is unlikely.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from fastgram import ops
from helpers import assert_close, randn

F64 = torch.float64


def naive_gram(x, scale):
    b, c = x.shape[:2]
    f = x.reshape(b, c, -1)
    out = torch.empty(b, c, c, dtype=x.dtype)
    for i in range(b):
        for p in range(c):
            for q in range(c):
                out[i, p, q] = (f[i, p] * f[i, q]).sum() * scale
    return out


def naive_stats(x):
    """Per-(b, c) mean and biased variance via explicit sums."""
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    n = flat.shape[-1]
    mean = flat.sum(-1) / n
    var = ((flat - mean[..., None]) ** 2).sum(-1) / n
    return mean, var


def expand(stat, x):
    return stat.reshape(stat.shape + (1,) * (x.dim() - 2))


def naive_instance_norm(x, weight, bias, eps, activation=None, slope=0.01):
    mean, var = naive_stats(x)
    y = (x - expand(mean, x)) / expand(torch.sqrt(var + eps), x)
    if weight is not None:
        w = weight if weight.dim() == 2 else weight.expand(x.shape[0], -1)
        y = y * expand(w, x)
    if bias is not None:
        b = bias if bias.dim() == 2 else bias.expand(x.shape[0], -1)
        y = y + expand(b, x)
    if activation == "relu":
        y = torch.where(y > 0, y, torch.zeros_like(y))
    elif activation == "leaky_relu":
        y = torch.where(y > 0, y, slope * y)
    return y


def naive_adain(c, s, eps, alpha):
    cm, cv = naive_stats(c)
    sm, sv = naive_stats(s)
    sm, sv = sm.expand(c.shape[0], -1), sv.expand(c.shape[0], -1)
    out = expand(torch.sqrt(sv + eps), c) * (c - expand(cm, c)) / expand(
        torch.sqrt(cv + eps), c
    ) + expand(sm, c)
    return alpha * out + (1 - alpha) * c


GRAM_SHAPES = [(1, 1, 1, 1), (2, 1, 3, 5), (2, 3, 1, 1), (1, 4, 7, 3), (3, 5, 11), (2, 6, 1)]


@pytest.mark.parametrize("shape", GRAM_SHAPES, ids=str)
@pytest.mark.parametrize("normalize", [True, False])
def test_gram_matrix_matches_loops(shape, normalize, gen):
    x = randn(*shape, dtype=F64, gen=gen)
    scale = 1.0 / math.prod(shape[1:]) if normalize else 1.0
    out = ops.gram_matrix(x, normalize, backend="reference")
    assert out.dtype == F64 and out.shape == (shape[0], shape[1], shape[1])
    assert_close(out, naive_gram(x, scale), 1e-12)


def test_gram_matrix_explicit_scale_and_layouts(gen):
    x = randn(2, 3, 4, 5, dtype=F64, gen=gen)
    expected = naive_gram(x, 0.25)
    assert_close(ops.gram_matrix(x, scale=0.25), expected, 1e-12)
    channels_last = x.to(memory_format=torch.channels_last)
    assert_close(ops.gram_matrix(channels_last, scale=0.25), expected, 1e-12)
    wide = randn(2, 3, 4, 10, dtype=F64, gen=gen)
    sliced = wide[..., ::2]
    assert not sliced.is_contiguous()
    assert_close(ops.gram_matrix(sliced, scale=0.5), naive_gram(sliced.contiguous(), 0.5), 1e-12)


def test_gram_matrix_is_symmetric(gen):
    g = ops.gram_matrix(randn(2, 9, 13, dtype=torch.float32, gen=gen))
    assert torch.allclose(g, g.transpose(1, 2), rtol=0, atol=1e-6)


def naive_style_loss(features, targets, weights, normalize=True):
    total = torch.zeros((), dtype=F64)
    for f, t, w in zip(features, targets, weights):
        scale = 1.0 / math.prod(f.shape[1:]) if normalize else 1.0
        g = naive_gram(f, scale)
        t = t.expand_as(g)
        total = total + w * ((g - t) ** 2).sum() / g.numel()
    return total


@pytest.mark.parametrize("normalize", [True, False])
def test_style_loss_matches_naive(normalize, gen):
    feats = [
        randn(2, 3, 5, 4, dtype=F64, gen=gen),
        randn(2, 1, 1, 1, dtype=F64, gen=gen),
        randn(2, 6, 7, dtype=F64, gen=gen),
    ]
    targets = [
        randn(3, 3, dtype=F64, gen=gen),  # broadcast over the batch
        randn(2, 1, 1, dtype=F64, gen=gen),  # per sample
        randn(6, 6, dtype=F64, gen=gen),
    ]
    weights = [0.5, -2.0, 3.25]
    out = ops.style_loss(feats, targets, weights, normalize, backend="reference")
    assert out.dim() == 0 and out.dtype == F64
    assert_close(out, naive_style_loss(feats, targets, weights, normalize), 1e-12)


def test_style_loss_single_layer_tensor_and_default_weights(gen):
    f = randn(3, 4, 6, 6, dtype=F64, gen=gen)
    t = randn(4, 4, dtype=F64, gen=gen)
    expected = naive_style_loss([f], [t], [1.0])
    assert_close(ops.style_loss(f, t), expected, 1e-12)
    assert_close(ops.style_loss([f], [t], torch.tensor([1.0])), expected, 1e-12)


def test_style_loss_is_zero_at_its_own_target(gen):
    f = randn(2, 5, 4, 4, dtype=F64, gen=gen)
    t = ops.gram_matrix(f)
    assert ops.style_loss([f], [t]).item() == pytest.approx(0.0, abs=1e-20)


def test_content_loss_matches_naive(gen):
    a, b = randn(2, 3, 4, 5, dtype=F64, gen=gen), randn(2, 3, 4, 5, dtype=F64, gen=gen)
    expected = ((a - b) ** 2).sum() / a.numel()
    assert_close(ops.content_loss(a, b), expected, 1e-12)


IN_SHAPES = [(1, 1, 1, 1), (2, 3, 7, 5), (2, 4, 1, 300), (3, 2, 9), (1, 1, 2, 2)]


@pytest.mark.parametrize("shape", IN_SHAPES, ids=str)
@pytest.mark.parametrize("affine", ["none", "shared", "per_sample", "bias_only"])
@pytest.mark.parametrize("activation", [None, "relu", "leaky_relu"])
def test_instance_norm_matches_naive(shape, affine, activation, gen):
    x = randn(*shape, dtype=F64, gen=gen)
    b, c = shape[:2]
    weight = bias = None
    if affine == "shared":
        weight, bias = randn(c, dtype=F64, gen=gen), randn(c, dtype=F64, gen=gen)
    elif affine == "per_sample":
        weight, bias = randn(b, c, dtype=F64, gen=gen), randn(b, c, dtype=F64, gen=gen)
    elif affine == "bias_only":
        bias = randn(c, dtype=F64, gen=gen)
    out = ops.instance_norm(x, weight, bias, 1e-5, activation, 0.2, backend="reference")
    expected = naive_instance_norm(x, weight, bias, 1e-5, activation, 0.2)
    assert out.shape == x.shape and out.dtype == F64
    assert_close(out, expected, 1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 7, 5), (1, 4, 16, 16), (2, 2, 1, 2)], ids=str)
def test_instance_norm_matches_torch(shape, gen):
    x = randn(*shape, dtype=F64, gen=gen)
    w, b = randn(shape[1], dtype=F64, gen=gen), randn(shape[1], dtype=F64, gen=gen)
    expected = F.instance_norm(x, weight=w, bias=b, eps=1e-3)
    assert_close(ops.instance_norm(x, w, b, eps=1e-3), expected, 1e-12)


def test_constant_channel_is_finite_and_equals_bias():
    x = torch.full((2, 3, 4, 4), 7.5, dtype=F64)
    bias = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    y = ops.instance_norm(x, torch.ones(3, dtype=F64), bias)
    assert torch.isfinite(y).all()
    assert torch.equal(y, bias.view(1, 3, 1, 1).expand_as(y))
    style = randn(2, 3, 4, 4, dtype=F64)
    out = ops.adain(x, style)
    assert torch.isfinite(out).all()
    assert_close(out, naive_adain(x, style, 1e-5, 1.0), 1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
@pytest.mark.parametrize(
    "content_shape, style_shape",
    [((2, 3, 7, 5), (2, 3, 4, 6)), ((3, 4, 5, 5), (1, 4, 9, 2)), ((1, 1, 1, 1), (1, 1, 3, 3)),
     ((2, 5, 17), (2, 5, 4))],
    ids=str,
)
def test_adain_matches_naive(content_shape, style_shape, alpha, gen):
    c = randn(*content_shape, dtype=F64, gen=gen)
    s = randn(*style_shape, dtype=F64, gen=gen) * 3 - 1
    out = ops.adain(c, s, 1e-5, alpha, backend="reference")
    assert out.shape == c.shape
    assert_close(out, naive_adain(c, s, 1e-5, alpha), 1e-12)


def test_adain_equals_instance_norm_with_style_statistics(gen):
    c, s = randn(2, 3, 6, 6, dtype=F64, gen=gen), randn(2, 3, 5, 5, dtype=F64, gen=gen)
    mean, var = naive_stats(s)
    expected = ops.instance_norm(c, torch.sqrt(var + 1e-5), mean)
    assert_close(ops.adain(c, s), expected, 1e-12)


def test_adain_alpha_zero_returns_content(gen):
    c, s = randn(2, 3, 6, 6, dtype=F64, gen=gen), randn(2, 3, 6, 6, dtype=F64, gen=gen)
    assert torch.equal(ops.adain(c, s, alpha=0.0), c)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_low_precision_against_float64(dtype, gen):
    """Outputs keep the input dtype; their error against float64 on the same
    (rounded) inputs is within the policy's limit for that dtype."""
    limit = {torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 1e-2}[dtype]
    x = randn(2, 8, 9, 7, dtype=dtype, gen=gen)
    s = randn(2, 8, 5, 5, dtype=dtype, gen=gen)
    t = randn(8, 8, dtype=torch.float32, gen=gen) * 0.1
    x64, s64 = x.to(F64), s.to(F64)
    g = ops.gram_matrix(x)
    assert g.dtype == dtype
    assert_close(g, ops.gram_matrix(x64), limit, "gram")
    y = ops.instance_norm(x)
    assert y.dtype == dtype
    assert_close(y, ops.instance_norm(x64), limit, "instance_norm")
    a = ops.adain(x, s)
    assert a.dtype == dtype
    assert_close(a, ops.adain(x64, s64), limit, "adain")
    loss = ops.style_loss([x], [t])
    assert loss.dtype == (torch.float64 if dtype == F64 else torch.float32)
    assert_close(loss, ops.style_loss([x64], [t.to(F64)]), limit, "style_loss")


def test_nan_propagates():
    x = torch.randn(1, 2, 3, 3, dtype=F64)
    x[0, 0, 1, 1] = float("nan")
    assert torch.isnan(ops.instance_norm(x)[0, 0]).all()
    assert torch.isfinite(ops.instance_norm(x)[0, 1]).all()
    assert torch.isnan(ops.gram_matrix(x)[0, 0]).all()
    assert torch.isnan(ops.style_loss([x], [torch.zeros(2, 2, dtype=F64)]))


# -- gradients ---------------------------------------------------------------


def _leaf(*shape, gen):
    return randn(*shape, dtype=F64, gen=gen, requires_grad=True)


def test_gradcheck_gram_matrix(gen):
    x = _leaf(2, 3, 4, 5, gen=gen)
    assert torch.autograd.gradcheck(lambda x: ops.gram_matrix(x), (x,))


def test_gradcheck_style_loss(gen):
    f1, f2 = _leaf(2, 3, 4, 4, gen=gen), _leaf(2, 2, 5, gen=gen)
    t1, t2 = _leaf(3, 3, gen=gen), _leaf(2, 2, 2, gen=gen)
    assert torch.autograd.gradcheck(
        lambda a, b, c, d: ops.style_loss([a, b], [c, d], [0.7, 1.3]), (f1, f2, t1, t2)
    )


def test_gradcheck_content_loss(gen):
    a, b = _leaf(2, 3, 4, gen=gen), _leaf(2, 3, 4, gen=gen)
    assert torch.autograd.gradcheck(ops.content_loss, (a, b))


@pytest.mark.parametrize("activation", [None, "leaky_relu"])
@pytest.mark.parametrize("per_sample", [False, True])
def test_gradcheck_instance_norm(activation, per_sample, gen):
    x = _leaf(2, 3, 4, 5, gen=gen)
    shape = (2, 3) if per_sample else (3,)
    w, b = _leaf(*shape, gen=gen), _leaf(*shape, gen=gen)
    assert torch.autograd.gradcheck(
        lambda x, w, b: ops.instance_norm(x, w, b, 1e-5, activation, 0.1), (x, w, b)
    )


@pytest.mark.parametrize("alpha", [0.3, 1.0])
def test_gradcheck_adain(alpha, gen):
    c, s = _leaf(2, 3, 4, 5, gen=gen), _leaf(1, 3, 3, 3, gen=gen)
    assert torch.autograd.gradcheck(lambda c, s: ops.adain(c, s, 1e-5, alpha), (c, s))
