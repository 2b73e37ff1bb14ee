"""Double backward (``create_graph=True``, as R1 penalties need) of every op
on every compiled backend: the backward pass differentiates the reference
formula, so second derivatives match the reference's."""

import os

import pytest
import torch

import fastgram
from fastgram import ops
from helpers import randn

F64 = torch.float64


def _backends():
    found = []
    for name in ("ext", "triton"):
        status = fastgram.backends()[name]
        if status.available:
            found.append(name)
    return found


OPS = {
    "gram_matrix": lambda x, s, t, backend: ops.gram_matrix(x, backend=backend).square().sum(),
    "style_loss": lambda x, s, t, backend: ops.style_loss([x, s], [t, t], backend=backend),
    "instance_norm": lambda x, s, t, backend: ops.instance_norm(
        x, activation="leaky_relu", negative_slope=0.2, backend=backend).square().sum(),
    "adain": lambda x, s, t, backend: ops.adain(x, s, alpha=0.7, backend=backend).square().sum(),
}


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("backend", ["ext", "triton"])
def test_second_derivatives_match_the_reference(op, backend, gen, monkeypatch):
    if backend not in _backends():
        if backend == "ext" and os.environ.get("FASTGRAM_REQUIRE_EXT") == "1":
            pytest.fail(f"extension required: {fastgram.backends()['ext'].reason}")
        pytest.skip(f"{backend} cannot run here")
    if backend == "ext":  # small shapes: force the kernels, not the tiny-problem path
        from fastgram.backends.ext import gram_matrix
        monkeypatch.setattr(gram_matrix, "kernel_pays", lambda x: True)
    x = randn(2, 3, 4, 4, dtype=F64, gen=gen, requires_grad=True)
    s = randn(2, 3, 4, 4, dtype=F64, gen=gen, requires_grad=True)
    t = randn(3, 3, dtype=F64, gen=gen)
    results = []
    for which in (backend, "reference"):
        (gx,) = torch.autograd.grad(OPS[op](x, s, t, which), x, create_graph=True)
        (ggx,) = torch.autograd.grad(gx.square().sum(), x)
        results.append((gx, ggx))
    (gx, ggx), (ref_gx, ref_ggx) = results
    assert torch.allclose(gx, ref_gx, rtol=1e-9, atol=1e-12)
    assert torch.allclose(ggx, ref_ggx, rtol=1e-9, atol=1e-12)
