"""The CPU speed targets of instance norm, AdaIN and a patched model
(ENGINEERING.md, section 6), each as a ratio to the eager PyTorch a user
would write, measured in one run with eager and fastgram alternating
(``interleaved_speedup_vs_eager``, medians), float32, on the CPU only.

Cases:

* instance norm + affine + ReLU, forward+backward, against
  ``F.relu(F.instance_norm(x, weight=w, bias=b))``: target >= 1.5x;
* plain instance norm against ``F.instance_norm``: forward+backward >= 1.2x,
  forward >= 1.3x;
* AdaIN against the eager formula (mean / biased variance, normalise, scale,
  shift): >= 2x, both directions;
* a TransformerNet-like model (3 downsampling convs, 5 residual blocks,
  2 upsampling convs, instance norms), forward+backward at (4, 3, 256, 256),
  patched by ``fastgram.patch`` against unpatched: >= 1.15x;
* fastgram's own model in its default configuration, against the same with
  every op on the reference backend: ``StyleTransferGAN.stylize`` of a 512²
  image, and one training step at 256² (batch 4); no target, reported.

fastgram runs with the backend in force (``auto`` unless set), so the figures
are what a user gets. Gradients of the outputs are random, not ones (a
normalisation's gradient of a constant output gradient is zero).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import fastgram
import harness
from fastgram import ops

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="CPU targets")

DEVICE = "cpu"
EPS = 1e-5
IN_SHAPES = [(4, 64, 128, 128), (8, 128, 64, 64), (1, 64, 256, 256), (4, 32, 256, 256)]
ADAIN_CASES = [((8, 512, 32, 32), (8, 512, 24, 40)), ((1, 512, 64, 64), (1, 512, 48, 48))]
ROUNDS = 7


def _randn(shape, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen) * 1.3 + 0.2


def _step(forward, inputs, direction):
    """forward alone (no autograd), or forward + backward with a random
    output gradient drawn once."""
    if direction == "forward":
        def run():
            with torch.no_grad():
                return forward(*inputs)
        return run
    grad = torch.randn_like(forward(*inputs))
    params = [t for t in inputs if t.requires_grad]

    def run():
        return torch.autograd.grad(forward(*inputs), params, grad)
    return run


def _measure(benchmark, fastgram_step, eager_step, target, **case):
    info = harness.run(benchmark, fastgram_step, device=DEVICE,
                       baseline=(repr(sorted(case.items())), eager_step), target=target, **case)
    if not benchmark.disabled:
        ratio = harness.interleaved_speedup(fastgram_step, eager_step, DEVICE, rounds=ROUNDS)
        info["interleaved_speedup_vs_eager"] = ratio
        if target is not None:
            info["target_met"] = ratio >= target
    return info


def _instance_norm_inputs(shape, affine):
    x = _randn(shape, 0).requires_grad_()
    if not affine:
        return (x,)
    return x, _randn(shape[1:2], 1).requires_grad_(), _randn(shape[1:2], 2).requires_grad_()


@pytest.mark.parametrize("shape", IN_SHAPES, ids=lambda s: "x".join(map(str, s)))
def bench_instance_norm_affine_relu(benchmark, shape):
    inputs = _instance_norm_inputs(shape, affine=True)
    _measure(
        benchmark,
        _step(lambda x, w, b: ops.instance_norm(x, w, b, activation="relu"), inputs, "both"),
        _step(lambda x, w, b: F.relu(F.instance_norm(x, weight=w, bias=b, eps=EPS)), inputs, "both"),
        1.5, case="instance_norm+affine+relu", shape=list(shape), direction="both",
    )


@pytest.mark.parametrize("direction", ["both", "forward"])
@pytest.mark.parametrize("shape", IN_SHAPES, ids=lambda s: "x".join(map(str, s)))
def bench_instance_norm_plain(benchmark, shape, direction):
    inputs = _instance_norm_inputs(shape, affine=False)
    _measure(
        benchmark,
        _step(lambda x: ops.instance_norm(x), inputs, direction),
        _step(lambda x: F.instance_norm(x, eps=EPS), inputs, direction),
        1.2 if direction == "both" else 1.3,
        case="instance_norm", shape=list(shape), direction=direction,
    )


def eager_adain(c, s):
    c_var, c_mean = torch.var_mean(c, dim=(2, 3), unbiased=False, keepdim=True)
    s_var, s_mean = torch.var_mean(s, dim=(2, 3), unbiased=False, keepdim=True)
    return (c - c_mean) / torch.sqrt(c_var + EPS) * torch.sqrt(s_var + EPS) + s_mean


@pytest.mark.parametrize("direction", ["both", "forward"])
@pytest.mark.parametrize("content,style", ADAIN_CASES,
                         ids=lambda s: "x".join(map(str, s)))
def bench_adain(benchmark, content, style, direction):
    inputs = (_randn(content, 0).requires_grad_(), _randn(style, 1).requires_grad_())
    _measure(
        benchmark,
        _step(lambda c, s: ops.adain(c, s, eps=EPS), inputs, direction),
        _step(eager_adain, inputs, direction),
        2.0, case="adain", shape=[list(content), list(style)], direction=direction,
    )


class _Residual(torch.nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect")
        self.norm1 = torch.nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = torch.nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect")
        self.norm2 = torch.nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x):
        y = F.relu(self.norm1(self.conv1(x)))
        return x + self.norm2(self.conv2(y))


def _conv_norm(cin, cout, kernel, stride=1, upsample=False):
    layers = [torch.nn.Upsample(scale_factor=2, mode="nearest")] if upsample else []
    layers += [
        torch.nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, padding_mode="reflect"),
        torch.nn.InstanceNorm2d(cout, affine=True),
        torch.nn.ReLU(),
    ]
    return layers


def transformer_net() -> torch.nn.Module:
    """The feed-forward style network of Johnson et al. (2016), as
    fast_neural_style users train it: written here from its description."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        *_conv_norm(3, 32, 9), *_conv_norm(32, 64, 3, 2), *_conv_norm(64, 128, 3, 2),
        *[_Residual(128) for _ in range(5)],
        *_conv_norm(128, 64, 3, upsample=True), *_conv_norm(64, 32, 3, upsample=True),
        torch.nn.Conv2d(32, 3, 9, padding=4, padding_mode="reflect"),
    )


def bench_patched_transformer_net(benchmark):
    model = transformer_net()
    patched = copy.deepcopy(model)
    report = fastgram.patch(patched)
    assert len(report.swapped) == 15
    x = _randn((4, 3, 256, 256), 0)
    grad = torch.randn(4, 3, 256, 256)

    def step(net):
        def run():
            net.zero_grad(set_to_none=True)
            net(x).backward(grad)
        return run

    _measure(benchmark, step(patched), step(model), 1.15,
             case="TransformerNet patched vs unpatched", shape=[4, 3, 256, 256], direction="both")


# --------------------------------------------------------------------------
# fastgram's own model, default configuration, against the same with every
# op on the reference backend (no target: the figure is reported)


def _on_backend(name, fn):
    def run():
        with fastgram.use_backend(name):
            return fn()
    return run


def bench_stylize_512(benchmark):
    from fastgram import StyleTransferGAN

    gan = StyleTransferGAN(device="cpu")
    photo = torch.rand(3, 512, 512, generator=torch.Generator().manual_seed(0))
    style = torch.rand(3, 256, 256, generator=torch.Generator().manual_seed(1))
    _measure(benchmark, _on_backend("auto", lambda: gan.stylize(photo, style=style)),
             _on_backend("reference", lambda: gan.stylize(photo, style=style)), None,
             case="StyleTransferGAN.stylize 512px vs reference", shape=[3, 512, 512],
             direction="forward")


def bench_train_step_256(benchmark, tmp_path):
    from fastgram import data
    from fastgram.train import TrainConfig, Trainer

    contents = [data.image_path(n) for n in data.CONTENT_IMAGES]
    styles = [data.image_path(n) for n in data.STYLE_IMAGES]
    trainers = {}
    for name in ("auto", "reference"):
        with fastgram.use_backend(name):
            trainers[name] = Trainer(TrainConfig(size=256, seed=0), contents, styles,
                                     tmp_path / name, device="cpu", quiet=True)
    _measure(benchmark, _on_backend("auto", trainers["auto"].step),
             _on_backend("reference", trainers["reference"].step), None,
             case="training step 256px vs reference", shape=[4, 3, 256, 256], direction="both")
