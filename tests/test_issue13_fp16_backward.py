"""The Triton fp16 backward rounds M (2 G - T - T^T for the style loss,
dG + dG^T for the Gram) to fp16 for its tensor-core product: M is scaled
into fp16's range by a power of two first, so an unnormalised Gram whose
G - T exceeds 65504 gives a finite gradient equal to the reference's
(issue 13). Runs under the interpreter on the CPU, and on CUDA when present."""

import pytest
import torch

from fastgram import ops
from helpers import RTOL, assert_close, reference_style_loss_and_grads

gram = pytest.importorskip("fastgram.kernels.gram", reason="triton is not installed")
from fastgram.kernels import common as kernel_common  # noqa: E402

DEVICES = (["cpu"] if kernel_common.INTERPRETED else []) + (
    ["cuda"] if torch.cuda.is_available() else [])
FP16 = torch.float16

pytestmark = pytest.mark.skipif(not DEVICES, reason="no device runs the Triton kernels here")


@pytest.fixture(autouse=True)
def _poisoned():
    with kernel_common.override(kernel_common.debug, poison=True):
        yield


def _features(shape, magnitude, device, seed=7):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(*shape, generator=gen, dtype=torch.float64) + 0.3) * magnitude
    return x.to(device=device, dtype=FP16).requires_grad_()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("per_sample_target", [False, True])
@pytest.mark.parametrize("target_grad", [False, True])
def test_fp16_style_loss_backward_beyond_fp16_range(device, per_sample_target, target_grad):
    # unnormalised Grams of values ~40 over 64 positions: |G - T| ~ 1e5 > 65504;
    # a small weight keeps the loss gradient itself well inside fp16
    f = _features((2, 6, 8, 8), 40.0, device)
    shape = (2, 6, 6) if per_sample_target else (6, 6)
    t = torch.full(shape, -2.0e4, device=device).requires_grad_(target_grad)
    residual = ops.gram_matrix(f.detach().double(), normalize=False, backend="reference") - t.double()
    assert residual.abs().max() > 65504  # the case that overflowed
    weights, scales = [1e-6], [1.0]

    loss = ops.style_loss([f], [t], weights, normalize=False, backend="triton")
    loss.backward()
    ref_loss, (ref_grad,), (ref_target_grad,) = reference_style_loss_and_grads(
        [f], [t], weights, scales)
    assert torch.isfinite(f.grad).all(), "fp16 feature gradient overflowed"
    assert_close(loss, ref_loss, RTOL[FP16], "loss")
    assert_close(f.grad, ref_grad, RTOL[FP16], "feature gradient")
    if target_grad:
        assert_close(t.grad, ref_target_grad, RTOL[FP16], "target gradient")


@pytest.mark.parametrize("device", DEVICES)
def test_fp16_style_loss_backward_tiny_residual_keeps_precision(device):
    # the other end: |2 G - T - T^T| ~ 5e-7 lies in fp16's subnormals (below
    # 6.1e-5, spaced 6e-8), where rounding it unscaled loses most digits; a
    # large weight brings the gradient itself to ~100
    f = _features((1, 5, 6, 6), 1e-3, device, seed=3)
    t = torch.zeros(5, 5, device=device)
    scales = [1.0 / (5 * 36)]
    _, (unit_grad,), _ = reference_style_loss_and_grads([f], [t], [1.0], scales)
    weight = 100.0 / float(unit_grad.abs().max())
    loss = ops.style_loss([f], [t], [weight], backend="triton")
    loss.backward()
    _, (ref_grad,), _ = reference_style_loss_and_grads([f], [t], [weight], scales)
    assert_close(f.grad, ref_grad, RTOL[FP16], "feature gradient")


@pytest.mark.parametrize("device", DEVICES)
def test_fp16_gram_backward_sum_beyond_fp16_range(device):
    # dG + dG^T = 80000 per entry: the sum of two finite fp16 gradients
    x = _features((2, 4, 5, 7), 1e-2, device, seed=5)
    g = ops.gram_matrix(x, normalize=False, backend="triton")
    grad_gram = torch.full_like(g, 4.0e4)
    g.backward(grad_gram)
    x64 = x.detach().double().requires_grad_()
    ops.gram_matrix(x64, normalize=False, backend="reference").backward(grad_gram.double())
    assert torch.isfinite(x.grad).all(), "fp16 Gram gradient overflowed"
    assert_close(x.grad, x64.grad, RTOL[FP16], "Gram input gradient")


@pytest.mark.parametrize("device", DEVICES)
def test_fp16_backward_of_zero_residual_is_zero(device):
    # G == T exactly gives a zero bound, whose scale must not make 0 * inf = NaN
    f = torch.ones(1, 4, 4, 4, dtype=FP16, device=device, requires_grad=True)
    t = torch.full((4, 4), 16.0, device=device)
    for target_grad in (False, True):
        f.grad = None
        loss = ops.style_loss([f], [t.clone().requires_grad_(target_grad)], normalize=False,
                              backend="triton")
        loss.backward()
        assert float(loss.detach()) == 0.0
        assert torch.equal(f.grad, torch.zeros_like(f)), f.grad
