"""Properties of the reference ops over random shapes (hypothesis)."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgram import ops

F64 = torch.float64

shapes = st.tuples(
    st.integers(1, 3), st.integers(1, 6), st.integers(1, 9), st.integers(2, 9)
)
seeds = st.integers(0, 2**31 - 1)


def sample(shape, seed, scale=1.0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=F64) * scale + shift


@settings(max_examples=40, deadline=None)
@given(shapes, seeds)
def test_gram_is_symmetric_positive_semidefinite(shape, seed):
    g = ops.gram_matrix(sample(shape, seed))
    assert torch.allclose(g, g.transpose(1, 2), rtol=0, atol=1e-12)
    assert torch.linalg.eigvalsh(g).min() >= -1e-10


@settings(max_examples=40, deadline=None)
@given(shapes, seeds, st.floats(0.1, 10.0), st.floats(-5.0, 5.0))
def test_instance_norm_output_has_zero_mean_and_unit_variance(shape, seed, scale, shift):
    x = sample(shape, seed, scale, shift)
    eps = 1e-3
    y = ops.instance_norm(x, eps=eps)
    assert torch.allclose(y.mean(dim=(2, 3)), torch.zeros(shape[:2], dtype=F64), atol=1e-9)
    var_in = x.var(dim=(2, 3), unbiased=False)
    var_out = y.var(dim=(2, 3), unbiased=False)
    # eps inside the square root shrinks the variance from 1 to var / (var + eps).
    assert torch.allclose(var_out, var_in / (var_in + eps), rtol=1e-9, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(shapes, shapes, seeds)
def test_adain_output_takes_the_style_statistics(content_shape, style_shape, seed):
    b, c = content_shape[:2]
    style_shape = (b, c) + style_shape[2:]
    content = sample(content_shape, seed)
    style = sample(style_shape, seed + 1, 3.0, 1.5)
    eps = 1e-3
    out = ops.adain(content, style, eps=eps)
    assert torch.allclose(out.mean(dim=(2, 3)), style.mean(dim=(2, 3)), atol=1e-9)
    c_var = content.var(dim=(2, 3), unbiased=False)
    s_var = style.var(dim=(2, 3), unbiased=False)
    expected = (s_var + eps) * c_var / (c_var + eps)
    assert torch.allclose(out.var(dim=(2, 3), unbiased=False), expected, rtol=1e-9, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(shapes, seeds, st.floats(0.0, 1.0))
def test_adain_alpha_blends_linearly(shape, seed, alpha):
    content, style = sample(shape, seed), sample(shape, seed + 7, 2.0)
    full = ops.adain(content, style, alpha=1.0)
    blended = ops.adain(content, style, alpha=alpha)
    assert torch.allclose(blended, alpha * full + (1 - alpha) * content, atol=1e-10)
