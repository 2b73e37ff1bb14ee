"""``style_loss(weights=<tensor requiring grad>)``: the weights get their
gradient (d loss / d w_l = loss_l) on every backend, and a weights tensor
that does not fit is refused naming ``weights`` (issue 13)."""

import pytest
import torch

import fastgram
from fastgram import ops
from helpers import RTOL, assert_close, randn


def _backends():
    found = ["reference", "auto"]
    for name in ("ext", "triton"):
        if fastgram.backends()[name].available:
            found.append(name)
    return found


BACKENDS = _backends()


def _layers(gen, dtype=torch.float32):
    # the first layer is long enough for the extension's fused CPU kernel
    # (N >= 256 with a backward to follow), the second short (plain PyTorch)
    shapes = [(2, 4, 16, 16), (2, 3, 5)]
    feats = [randn(*s, dtype=dtype, gen=gen, requires_grad=True) for s in shapes]
    targs = [randn(s[1], s[1], dtype=dtype, gen=gen) * 0.1 for s in shapes]
    return feats, targs


def _per_layer_reference(feats, targs):
    """loss_l in float64, each with weight 1."""
    return torch.stack([
        ops.style_loss([f.detach().double()], [t.double()], backend="reference")
        for f, t in zip(feats, targs)
    ])


@pytest.mark.parametrize("backend", BACKENDS)
def test_weights_tensor_gets_the_per_layer_losses_as_gradient(backend, gen):
    feats, targs = _layers(gen)
    weights = torch.tensor([0.7, -1.5], requires_grad=True)
    loss = ops.style_loss(feats, targs, weights, backend=backend)
    loss.backward()
    assert weights.grad is not None, "the weights were detached"
    per_layer = _per_layer_reference(feats, targs)
    assert_close(weights.grad, per_layer, RTOL[torch.float32], "d loss / d weights")
    assert_close(loss, (per_layer * weights.detach().double()).sum(), RTOL[torch.float32], "loss")

    # the features' gradients are those of the same weights given as numbers
    grads = [f.grad.clone() for f in feats]
    for f in feats:
        f.grad = None
    ops.style_loss(feats, targs, weights.tolist(), backend=backend).backward()
    for i, (g, f) in enumerate(zip(grads, feats)):
        assert_close(g, f.grad, RTOL[torch.float32], f"features[{i}] gradient")


@pytest.mark.parametrize("backend", BACKENDS)
def test_weights_tensor_gradcheck_float64(backend, gen):
    shapes = [(1, 3, 4, 4), (1, 2, 3)]
    feats = [randn(*s, dtype=torch.float64, gen=gen, requires_grad=True) for s in shapes]
    targs = [randn(s[1], s[1], dtype=torch.float64, gen=gen) for s in shapes]
    weights = torch.tensor([0.3, 2.0], dtype=torch.float64, requires_grad=True)

    def fn(w, *fs):
        return ops.style_loss(list(fs), targs, w, backend=backend)

    assert torch.autograd.gradcheck(fn, (weights, *feats))


def test_weights_tensor_on_another_dtype_and_double_backward(gen):
    feats, targs = _layers(gen)
    weights = torch.tensor([0.5, 2.0], dtype=torch.float64, requires_grad=True)
    loss = ops.style_loss(feats, targs, weights, backend="reference")
    assert loss.dtype == torch.float32  # the features' dtype, as with numbers
    (grad_w,) = torch.autograd.grad(loss, weights, create_graph=True)
    # d^2 loss / d w_l d F_l = d loss_l / d F_l
    (mixed,) = torch.autograd.grad(grad_w[0], feats[0])
    f = feats[0].detach().requires_grad_()
    (expected,) = torch.autograd.grad(ops.style_loss([f], [targs[0]], backend="reference"), f)
    assert_close(mixed, expected, RTOL[torch.float32], "mixed second derivative")


def test_weights_tensor_without_grad_mode_is_numbers(gen):
    feats, targs = _layers(gen)
    weights = torch.tensor([0.7, -1.5], requires_grad=True)
    with torch.no_grad():
        out = ops.style_loss(feats, targs, weights)
    assert not out.requires_grad
    assert_close(out, ops.style_loss(feats, targs, [0.7, -1.5]).detach(), RTOL[torch.float32])


@pytest.mark.parametrize("weights, match", [
    (torch.ones(2, 1, requires_grad=True), r"^weights: expected a 1-dimensional tensor"),
    (torch.ones(3, requires_grad=True), r"^weights: expected 2 weights"),
    (torch.tensor([1.0, float("nan")], requires_grad=True), r"^weights\[1\]: expected a finite"),
    (torch.tensor([float("inf"), 1.0], requires_grad=True), r"^weights\[0\]: expected a finite"),
])
def test_weights_tensor_that_does_not_fit_is_refused(weights, match, gen):
    feats, targs = _layers(gen)
    with pytest.raises(ValueError, match=match):
        ops.style_loss(feats, targs, weights)
