"""The reference backend against naive eager formulas, op by op.

This suite measures what the pure-PyTorch ground truth costs next to the
plainest formulation a user would write, so later suites' speedups over
``reference`` can be read against eager PyTorch as well. CPU shapes are
small; on CUDA the shapes of the GPU targets (ENGINEERING.md, section 6).
"""

import pytest
import torch
import torch.nn.functional as F

import harness
from fastgram import ops

DEVICE = harness.devices()[0]
CUDA = harness.on_cuda(DEVICE)

NORM_SHAPES = (
    [(4, 32, 256, 256), (4, 64, 128, 128), (1, 64, 512, 512), (32, 256, 56, 56)]
    if CUDA
    else [(2, 32, 64, 64), (1, 64, 128, 128), (8, 128, 16, 16)]
)
ADAIN_SHAPES = [(8, 512, 32, 32), (1, 512, 64, 64)] if CUDA else [(2, 128, 32, 32)]
# VGG19 relu1_1 .. relu5_1 at a 256^2 input (CUDA) or 64^2 (CPU).
VGG_CHANNELS = (64, 128, 256, 512, 512)


def vgg_shapes(batch, size):
    return [(batch, c, size >> i, size >> i) for i, c in enumerate(VGG_CHANNELS)]


GRAM_SHAPES = vgg_shapes(4, 256 if CUDA else 64)
DTYPE = torch.bfloat16 if CUDA else torch.float32


def _randn(shape, gen_seed=0):
    g = torch.Generator(device="cpu").manual_seed(gen_seed)
    return torch.randn(shape, generator=g).to(DEVICE, DTYPE)


def naive_instance_norm(x, eps=1e-5):
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(2, 3), keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


def naive_adain(c, s, eps=1e-5):
    cm, sm = c.mean(dim=(2, 3), keepdim=True), s.mean(dim=(2, 3), keepdim=True)
    cs = torch.sqrt(((c - cm) ** 2).mean(dim=(2, 3), keepdim=True) + eps)
    ss = torch.sqrt(((s - sm) ** 2).mean(dim=(2, 3), keepdim=True) + eps)
    return ss * (c - cm) / cs + sm


def naive_gram(x):
    b, c = x.shape[:2]
    f = x.reshape(b, c, -1)
    return torch.einsum("bcn,bdn->bcd", f, f) / f[0].numel()


def _case(benchmark, provider, key, ref_fn, eager_fn, bytes_moved=None, flops=None):
    fn = ref_fn if provider == "reference" else eager_fn
    harness.run(
        benchmark,
        fn,
        device=DEVICE,
        baseline=(key, eager_fn),
        bytes_moved=bytes_moved,
        flops=flops,
        provider=provider,
    )


PROVIDERS = ["eager", "reference"]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("shape", NORM_SHAPES, ids=str)
def bench_instance_norm_forward(benchmark, shape, provider):
    x = _randn(shape)
    weight = torch.rand(shape[1], device=DEVICE, dtype=DTYPE)
    bias = torch.randn(shape[1], device=DEVICE, dtype=DTYPE)
    _case(
        benchmark,
        provider,
        ("instance_norm", shape),
        lambda: ops.instance_norm(x, weight, bias, backend="reference"),
        lambda: F.instance_norm(x, weight=weight, bias=bias),
        bytes_moved=2 * harness.nbytes(x),
    )


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("shape", NORM_SHAPES[:1], ids=str)
def bench_instance_norm_naive_forward(benchmark, shape, provider):
    x = _randn(shape)
    _case(
        benchmark,
        provider,
        ("instance_norm_naive", shape),
        lambda: ops.instance_norm(x, backend="reference"),
        lambda: naive_instance_norm(x),
        bytes_moved=2 * harness.nbytes(x),
    )


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("shape", ADAIN_SHAPES, ids=str)
def bench_adain_forward(benchmark, shape, provider):
    c, s = _randn(shape, 0), _randn(shape, 1)
    _case(
        benchmark,
        provider,
        ("adain", shape),
        lambda: ops.adain(c, s, backend="reference"),
        lambda: naive_adain(c, s),
        bytes_moved=2 * harness.nbytes(c) + harness.nbytes(s),
    )


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("shape", GRAM_SHAPES, ids=str)
def bench_gram_forward(benchmark, shape, provider):
    x = _randn(shape)
    b, c = shape[:2]
    n = x[0, 0].numel()
    _case(
        benchmark,
        provider,
        ("gram", shape),
        lambda: ops.gram_matrix(x, backend="reference"),
        lambda: naive_gram(x),
        bytes_moved=harness.nbytes(x) + b * c * c * x.element_size(),
        flops=2 * b * c * c * n,
    )


@pytest.mark.parametrize("provider", PROVIDERS)
def bench_style_loss_forward_backward(benchmark, provider):
    feats = [_randn(s, i).requires_grad_(True) for i, s in enumerate(GRAM_SHAPES)]
    targets = [naive_gram(_randn(s, 10 + i)).mean(0).detach() for i, s in enumerate(GRAM_SHAPES)]

    def reference():
        ops.style_loss(feats, targets, backend="reference").backward()

    def eager():
        loss = sum(
            F.mse_loss(naive_gram(f), t.expand(f.shape[0], -1, -1)) for f, t in zip(feats, targets)
        )
        loss.backward()

    _case(
        benchmark,
        provider,
        ("style_loss_fwd_bwd",),
        reference,
        eager,
        bytes_moved=3 * sum(harness.nbytes(f) for f in feats),
    )
