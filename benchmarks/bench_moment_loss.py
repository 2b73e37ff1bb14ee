"""The moment-matching style loss (``fastgram.ops.moment_loss``) against the
eager PyTorch a user of the AdaIN paper's code runs.

Case: forward + backward of the 4-layer loss at VGG19 relu1_1..relu4_1
feature shapes (64..512 channels, 256^2 input: 256^2..32^2 positions),
float32, unbiased variance with eps = 1e-5 (pytorch-AdaIN's
``calc_style_loss``), style targets as feature maps of the same batch (as in
that training loop); batch 8 and a small batch-1 64^2 case.

Providers:
* ``eager``: per layer ``view(B, C, -1)``, ``mean``, ``var() + eps``,
  ``sqrt``, two ``F.mse_loss``, autograd (the baseline of every ratio);
* ``reference``: fastgram's plain PyTorch formula (``torch.var_mean``);
* ``ext``: the extension's fused operator (moments in one read of each
  layer, the backward one read and one write);
* ``compile``: torch.compile of the eager formulation (CUDA only: on the
  CPU it compiles for minutes).

``extra_info`` as in bench_ext.py: medians, speedup_vs_eager and, for the
first case, the interleaved speedup.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import harness
from fastgram import ops
from fastgram.backends.ext import load as ext_load

DEVICE = harness.devices()[0]
CUDA = harness.on_cuda(DEVICE)
VGG_CHANNELS = (64, 128, 256, 512)
EPS = 1e-5
CASES = [(8, 256), (1, 64)]
PROVIDERS = ("eager", "reference", "ext") + (("compile",) if CUDA else ())

pytestmark = pytest.mark.skipif(
    ext_load.load_error() is not None, reason="the extension is not available here"
)


def make_case(batch: int, size: int):
    gen = torch.Generator().manual_seed(0)
    features, targets = [], []
    for i, c in enumerate(VGG_CHANNELS):
        hw = size >> i
        features.append(torch.randn(batch, c, hw, hw, generator=gen).relu_().to(DEVICE))
        targets.append((torch.randn(batch, c, hw, hw, generator=gen) * 1.5).relu_().to(DEVICE))
    return features, targets


def _mean_std(feat):
    b, c = feat.shape[:2]
    flat = feat.view(b, c, -1)
    return flat.mean(dim=2), (flat.var(dim=2) + EPS).sqrt()


def eager_loss(fs, targets):
    loss = 0.0
    for f, t in zip(fs, targets):
        fm, fsd = _mean_std(f)
        tm, tsd = _mean_std(t)
        loss = loss + F.mse_loss(fm, tm) + F.mse_loss(fsd, tsd)
    return loss


def _step(loss_fn):
    def step(features, targets):
        fs = [f.detach().requires_grad_() for f in features]
        loss = loss_fn(fs, targets)
        loss.backward()
        return loss
    return step


_compiled_loss = torch.compile(eager_loss) if CUDA else None

STEPS = {
    "eager": _step(eager_loss),
    "reference": _step(lambda fs, ts: ops.moment_loss(fs, ts, unbiased=True, backend="reference")),
    "ext": _step(lambda fs, ts: ops.moment_loss(fs, ts, unbiased=True, backend="ext")),
    "compile": _step(lambda fs, ts: _compiled_loss(fs, ts)),
}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("batch,size", CASES, ids=[f"b{b}-{s}px" for b, s in CASES])
def test_moment_loss_fwd_bwd(benchmark, provider, batch, size):
    args = make_case(batch, size)
    info = harness.run(
        benchmark,
        lambda: STEPS[provider](*args),
        device=DEVICE,
        baseline=(("moment_loss_fwd_bwd", batch, size), lambda: STEPS["eager"](*args)),
        bytes_moved=3 * harness.nbytes(*args[0]) + harness.nbytes(*args[1]),
        provider=provider,
        case=f"vgg19 relu1_1..relu4_1, {size}px, batch {batch}, float32, unbiased",
    )
    if provider != "eager" and (batch, size) == CASES[0] and not benchmark.disabled:
        info["interleaved_speedup_vs_eager"] = harness.interleaved_speedup(
            lambda: STEPS[provider](*args), lambda: STEPS["eager"](*args), DEVICE
        )
