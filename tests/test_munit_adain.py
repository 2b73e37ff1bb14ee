"""fastgram.nn.MUNITAdaptiveInstanceNorm2d against a re-implementation of
MUNIT's AdaIN protocol (tests/protocol_models.py): outputs, gradients into
the assigned parameters, buffers, checkpoints, errors, repr."""

import pytest
import torch
from helpers import RTOL, assert_close
from protocol_models import AdaptiveInstanceNorm2d as TheirAdaIN

import fastgram
from fastgram.nn import MUNITAdaptiveInstanceNorm2d


def _assigned(module, batch, gen, dtype, requires_grad=False):
    c = module.num_features
    module.weight = (torch.rand(batch * c, generator=gen, dtype=dtype) + 0.5).requires_grad_(
        requires_grad
    )
    module.bias = torch.randn(batch * c, generator=gen, dtype=dtype).requires_grad_(requires_grad)
    return module.weight, module.bias


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 4, 9, 2), (3, 1, 4, 4)])
@pytest.mark.parametrize("training", [True, False])
def test_output_and_gradients_match_the_protocol(gen, dtype, shape, training):
    b, c = shape[:2]
    theirs, ours = TheirAdaIN(c).to(dtype), MUNITAdaptiveInstanceNorm2d(c).to(dtype)
    theirs.train(training)
    ours.train(training)
    x = (torch.randn(shape, generator=gen, dtype=dtype) * 3 + 1.5).requires_grad_()
    upstream = torch.randn(shape, generator=gen, dtype=dtype)
    grads = []
    for module in (theirs, ours):
        weight, bias = _assigned(module, b, torch.Generator().manual_seed(7), dtype, True)
        out = module(x)
        (g_x, g_w, g_b) = torch.autograd.grad(out, (x, weight, bias), upstream)
        grads.append((out.detach(), g_x, g_w, g_b))
    for what, mine, ref in zip(("output", "grad x", "grad weight", "grad bias"), *grads[::-1]):
        assert_close(mine, ref, RTOL[dtype] * 10, what)


def test_parameters_from_an_mlp_get_gradients_and_buffers_stay(gen):
    mlp = torch.nn.Linear(3, 2 * 4)  # shift and scale of 4 channels
    norm = MUNITAdaptiveInstanceNorm2d(4)
    style = torch.randn(2, 3, generator=gen)
    params = mlp(style)
    norm.bias = params[:, :4].contiguous().view(-1)
    norm.weight = params[:, 4:].contiguous().view(-1)
    norm(torch.randn(2, 4, 6, 6, generator=gen)).pow(2).sum().backward()
    assert mlp.weight.grad is not None and float(mlp.weight.grad.abs().sum()) > 0
    assert torch.equal(norm.running_mean, torch.zeros(4))
    assert torch.equal(norm.running_var, torch.ones(4))
    assert list(norm.parameters()) == []


def test_checkpoints_load_strictly_both_ways(gen):
    theirs, ours = TheirAdaIN(5), MUNITAdaptiveInstanceNorm2d(5)
    assert list(theirs.state_dict()) == list(ours.state_dict()) == ["running_mean", "running_var"]
    state = {k: torch.rand(5, generator=gen) for k in ("running_mean", "running_var")}
    ours.load_state_dict(state, strict=True)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    assert torch.equal(theirs.running_var, state["running_var"])


def test_repr_and_attributes_follow_the_protocol():
    norm = MUNITAdaptiveInstanceNorm2d(64, eps=1e-6, momentum=0.2)
    assert repr(norm) == "AdaptiveInstanceNorm2d(64)" == repr(TheirAdaIN(64))
    assert type(norm).__name__ == "AdaptiveInstanceNorm2d"  # MUNIT looks it up by name
    assert (norm.num_features, norm.eps, norm.momentum) == (64, 1e-6, 0.2)
    assert norm.weight is None and norm.bias is None
    assert fastgram.nn.MUNITAdaptiveInstanceNorm2d is MUNITAdaptiveInstanceNorm2d


def test_clear_errors(gen):
    norm = MUNITAdaptiveInstanceNorm2d(3)
    x = torch.randn(2, 3, 4, 4, generator=gen)
    with pytest.raises(ValueError, match=r"weight: not assigned.*before calling"):
        norm(x)
    norm.weight = torch.ones(6)
    with pytest.raises(ValueError, match="bias: not assigned"):
        norm(x)
    norm.bias = torch.zeros(3)
    with pytest.raises(ValueError, match=r"bias: expected a flat tensor of B\*C = 2\*3 = 6"):
        norm(x)
    norm.bias = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"bias: .*got shape \(2, 3\)"):
        norm(x)
    norm.bias = [0.0] * 6
    with pytest.raises(TypeError, match="bias: expected a tensor"):
        norm(x)
    norm.bias = torch.zeros(6)
    with pytest.raises(ValueError, match=r"x: expected 3 channels \(num_features\)"):
        norm(torch.randn(2, 4, 4, 4))
    with pytest.raises(ValueError, match="x: expected more than 1 spatial element"):
        norm(torch.randn(2, 3, 1, 1))
    with pytest.raises(TypeError, match="x: expected a torch.Tensor"):
        norm("x")
    with pytest.raises(ValueError, match="num_features: expected an int >= 1"):
        MUNITAdaptiveInstanceNorm2d(0)
    with pytest.raises(ValueError, match="eps: expected a positive number"):
        MUNITAdaptiveInstanceNorm2d(3, eps=0.0)
    with pytest.raises(TypeError, match="momentum: expected a real number"):
        MUNITAdaptiveInstanceNorm2d(3, momentum="fast")
