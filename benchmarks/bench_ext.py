"""The compiled extension's style loss against eager PyTorch, and its design
choice of saving the residuals for the backward.

Case: forward + backward of the 5-layer VGG19 style loss (relu1_1..relu5_1
feature shapes) in float32, the issue's CPU target (256^2 input, batch 4;
target >= 1.5x eager), plus a small 64^2 case; on CUDA the 256^2 and 512^2
inputs at batch 4 (the wider GPU sweep over precisions is in bench_gram.py,
which includes the ext backend too).

Providers:
* ``eager``: torch.bmm + F.mse_loss + autograd (the baseline of every ratio);
* ``ext``: the extension as fastgram uses it (forward saves R = sG - T);
* ``ext-recompute``: the same kernels with the backward recomputing the Gram
  instead of reading the saved residuals, the alternative design; its ratio
  to ``ext`` is the measured reason for saving (B*C^2 values per layer);
* ``compile``: torch.compile of the eager formulation (CUDA only).

``extra_info`` carries median_ms, eager_ms and speedup_vs_eager (both
measured in this run), GB/s against the 3|F| floor (read F forward, read F
and write dF backward) and, for the first case, interleaved_speedup_vs_eager
(eager and provider run alternately, robust to load drift on a shared
machine).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import harness
from fastgram.backends.ext import load as ext_load

DEVICE = harness.devices()[0]
CUDA = harness.on_cuda(DEVICE)
VGG_CHANNELS = (64, 128, 256, 512, 512)
CASES = [(4, 256), (4, 512)] if CUDA else [(4, 256), (1, 64)]
# torch.compile compiles in seconds on CUDA, in minutes (C++ codegen) on the CPU.
PROVIDERS = ("eager", "ext", "ext-recompute") + (("compile",) if CUDA else ())

pytestmark = pytest.mark.skipif(
    ext_load.load_error() is not None, reason="the extension is not available here"
)


def make_case(batch: int, size: int):
    gen = torch.Generator().manual_seed(0)
    features, targets, scales = [], [], []
    for i, c in enumerate(VGG_CHANNELS):
        hw = size >> i
        f = torch.randn(batch, c, hw, hw, generator=gen).relu_().to(DEVICE)
        features.append(f)
        targets.append((torch.randn(c, c, generator=gen) * 1e-3).to(DEVICE))
        scales.append(1.0 / (c * hw * hw))
    return features, targets, [1.0] * len(features), scales


def eager_loss(fs, targets, weights, scales):
    loss = 0.0
    for f, t, w, s in zip(fs, targets, weights, scales):
        flat = f.flatten(2)
        gram = torch.bmm(flat, flat.transpose(1, 2)) * s
        loss = loss + w * F.mse_loss(gram, t.expand_as(gram))
    return loss


def eager_step(features, targets, weights, scales):
    fs = [f.detach().requires_grad_() for f in features]
    loss = eager_loss(fs, targets, weights, scales)
    loss.backward()
    return loss


def ext_step(features, targets, weights, scales):
    fs = [f.detach().requires_grad_() for f in features]
    loss, _ = torch.ops.fastgram.ext_style_loss(fs, targets, weights, scales)
    loss.backward()
    return loss


def ext_recompute_step(features, targets, weights, scales):
    """Forward without keeping anything, backward recomputes the residuals."""
    ops = torch.ops.fastgram
    fs = [f.detach() for f in features]
    loss, residuals = ops.ext_style_loss(fs, targets, weights, scales)
    del residuals
    _, residuals = ops.ext_style_loss(fs, targets, weights, scales)
    ops.ext_style_loss_backward(torch.ones((), device=DEVICE), fs, residuals, weights, scales)
    return loss


_compiled_loss = torch.compile(eager_loss)


def compile_step(features, targets, weights, scales):
    fs = [f.detach().requires_grad_() for f in features]
    loss = _compiled_loss(fs, targets, weights, scales)
    loss.backward()
    return loss


STEPS = {
    "eager": eager_step,
    "ext": ext_step,
    "ext-recompute": ext_recompute_step,
    "compile": compile_step,
}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("batch,size", CASES, ids=[f"b{b}-{s}px" for b, s in CASES])
def test_style_loss_fwd_bwd(benchmark, provider, batch, size):
    args = make_case(batch, size)
    feature_bytes = harness.nbytes(*args[0])
    info = harness.run(
        benchmark,
        lambda: STEPS[provider](*args),
        device=DEVICE,
        baseline=(("style_loss_fwd_bwd", batch, size), lambda: eager_step(*args)),
        bytes_moved=3 * feature_bytes,
        provider=provider,
        case=f"vgg19 relu1_1..relu5_1, {size}px, batch {batch}, float32",
    )
    # Skipped in smoke runs (--benchmark-disable), which only check that the
    # case runs.
    if provider != "eager" and (batch, size) == CASES[0] and not benchmark.disabled:
        info["interleaved_speedup_vs_eager"] = harness.interleaved_speedup(
            lambda: STEPS[provider](*args), lambda: eager_step(*args), DEVICE
        )
