"""``moment_loss`` / ``nn.MomentLoss``: every backend against a
re-implementation, written here, of the moment-matching style loss of the
AdaIN paper's code (pytorch-AdaIN's ``calc_style_loss`` from its documented
behaviour: per-channel mean and ``sqrt(var() + eps)`` with ``var()``'s
default N - 1 correction, MSE of each, summed over the layers) and its
biased variant; forward, gradients of features and targets, gradcheck,
dtypes, layouts, bad input, the registered operators.
"""

import os

import pytest
import torch
import torch.nn.functional as F

from fastgram import nn, ops
from fastgram.ops import reference
from helpers import assert_close, assert_compiles_fullgraph, randn, require_extension, kernel_backends

EPS = 1e-5
# VGG-like layer shapes in miniature: channels grow as positions shrink;
# the targets have their own spatial sizes
LAYERS = [((2, 3, 12, 10), (2, 3, 7, 9)), ((2, 6, 6, 5), (2, 6, 4, 4)), ((2, 8, 3, 3), (2, 8, 2, 3))]


def paper_mean_std(x, eps=EPS, unbiased=True):
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    return flat.mean(dim=2), (flat.var(dim=2, unbiased=unbiased) + eps).sqrt()


def paper_moment_loss(features, targets, weights=None, unbiased=True, eps=EPS):
    total = 0
    weights = weights or [1.0] * len(features)
    for f, t, w in zip(features, targets, weights):
        fm, fs = paper_mean_std(f, eps, unbiased)
        if isinstance(t, torch.Tensor):
            tm, ts = paper_mean_std(t, eps, unbiased)
        else:
            tm, ts = (x.reshape(-1, f.shape[1]) for x in t)
        total = total + w * (F.mse_loss(fm, tm.expand_as(fm)) + F.mse_loss(fs, ts.expand_as(fs)))
    return total




def _ready(backend):
    if backend == "ext":
        require_extension()
    if backend == "triton":
        pytest.importorskip("triton")
        if "moment_loss" not in __import__("fastgram").dispatch.provided_ops("triton"):
            pytest.skip("the triton backend has no moment loss")


def _layers(gen, dtype=torch.float32, target_batch=None):
    features = [randn(*fs, dtype=dtype, gen=gen, requires_grad=True) for fs, _ in LAYERS]
    targets = [randn(target_batch or ts[0], *ts[1:], dtype=dtype, gen=gen, requires_grad=True)
               for _, ts in LAYERS]
    return features, targets


def _grads_vs_paper(loss, inputs, ref_fn):
    grads = torch.autograd.grad(loss, inputs)
    doubles = [t.detach().double().requires_grad_() for t in inputs]
    ref = ref_fn(doubles)
    ref_grads = torch.autograd.grad(ref, doubles)
    return ref, grads, ref_grads


@pytest.mark.parametrize("backend", kernel_backends())
@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize("target_batch", [None, 1])
def test_feature_targets_match_the_paper_loss(backend, unbiased, target_batch, gen):
    _ready(backend)
    features, targets = _layers(gen, target_batch=target_batch)
    weights = [1.0, 0.5, 2.0]
    loss = ops.moment_loss(features, targets, weights, unbiased, backend=backend)
    n = len(features)
    ref, grads, ref_grads = _grads_vs_paper(
        loss, features + targets,
        lambda d: paper_moment_loss(d[:n], d[n:], weights, unbiased))
    assert_close(loss, ref, 1e-6, "loss")
    for i, (g, r) in enumerate(zip(grads, ref_grads)):
        assert_close(g, r, 1e-5, f"grad {'features' if i < n else 'targets'}[{i % n}]")


@pytest.mark.parametrize("backend", kernel_backends())
@pytest.mark.parametrize("stat_shape", ["C", "1C", "BC"])
def test_statistics_targets(backend, stat_shape, gen):
    _ready(backend)
    features, _ = _layers(gen)
    targets = []
    for f in features:
        b, c = f.shape[:2]
        shape = {"C": (c,), "1C": (1, c), "BC": (b, c)}[stat_shape]
        targets.append((randn(*shape, gen=gen, requires_grad=True),
                        torch.rand(*shape, generator=gen).add(0.5).requires_grad_()))
    loss = ops.moment_loss(features, targets, unbiased=True, backend=backend)
    flat = features + [t for pair in targets for t in pair]
    n = len(features)

    def ref_fn(d):
        pairs = [(d[n + 2 * i], d[n + 2 * i + 1]) for i in range(n)]
        return paper_moment_loss(d[:n], pairs)

    ref, grads, ref_grads = _grads_vs_paper(loss, flat, ref_fn)
    assert_close(loss, ref, 1e-6, "loss")
    for g, r in zip(grads, ref_grads):
        assert g.shape == r.shape
        assert_close(g, r, 1e-5, "grad")


@pytest.mark.parametrize("backend", kernel_backends())
def test_gradcheck_float64(backend, gen):
    _ready(backend)
    fs = [randn(2, 3, 3, 2, dtype=torch.float64, gen=gen, requires_grad=True),
          randn(2, 4, 2, 2, dtype=torch.float64, gen=gen, requires_grad=True)]
    t0 = randn(1, 3, 2, 3, dtype=torch.float64, gen=gen, requires_grad=True)
    m = randn(2, 4, dtype=torch.float64, gen=gen, requires_grad=True)
    s = torch.rand(4, dtype=torch.float64, generator=gen).add(0.5).requires_grad_()
    fn = lambda f0, f1, t0, m, s: ops.moment_loss(  # noqa: E731
        [f0, f1], [t0, (m, s)], [0.7, 1.3], True, backend=backend)
    assert torch.autograd.gradcheck(fn, (*fs, t0, m, s))
    assert torch.autograd.gradgradcheck(fn, (*fs, t0, m, s))


@pytest.mark.parametrize("backend", kernel_backends())
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_dtypes(backend, dtype, gen):
    _ready(backend)
    features, targets = _layers(gen, dtype)
    loss = ops.moment_loss(features, targets, unbiased=True, backend=backend)
    expected = torch.float64 if dtype == torch.float64 else torch.float32
    assert loss.dtype == expected
    ref = paper_moment_loss([f.double() for f in features], [t.double() for t in targets])
    assert_close(loss, ref, 1e-10 if dtype == torch.float64 else 1e-2)
    loss.backward()
    assert all(torch.isfinite(f.grad).all() for f in features)


@pytest.mark.parametrize("backend", kernel_backends())
def test_channels_last_and_strided_features(backend, gen):
    _ready(backend)
    features, targets = _layers(gen)
    views = [features[0].detach().contiguous(memory_format=torch.channels_last).requires_grad_(),
             features[1].detach()[:, :, ::1, 1:].requires_grad_(),
             features[2].detach().flatten(2).requires_grad_()]
    plain = [v.detach().contiguous().requires_grad_() for v in views]
    loss = ops.moment_loss(views, targets, backend=backend)
    expected = ops.moment_loss(plain, targets, backend="reference")
    assert_close(loss, expected, 1e-6)
    loss.backward()
    expected.backward()
    for v, p in zip(views, plain):
        assert_close(v.grad, p.grad, 1e-5, "grad")


def test_constant_channels_are_finite(gen):
    require_extension()
    f = torch.full((2, 3, 4, 4), 0.7, requires_grad=True)
    t = randn(2, 3, 4, 4, gen=gen)
    for backend in ("reference", "ext"):
        loss = ops.moment_loss([f], [t], unbiased=True, backend=backend)
        (grad,) = torch.autograd.grad(loss, f)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()


def test_auto_and_module(gen):
    features, targets = _layers(gen)
    style = [t.detach()[:1] for t in targets]
    module = nn.MomentLoss(style, weights=[1.0, 2.0, 3.0], unbiased=True)
    loss = module(features)
    assert_close(loss, paper_moment_loss(features, style, [1.0, 2.0, 3.0]), 1e-6)
    restored = nn.MomentLoss(targets=module.targets, weights=[1.0, 2.0, 3.0], unbiased=True)
    restored.load_state_dict(module.state_dict())
    assert set(module.state_dict()) == {f"{k}_{i}" for i in range(3) for k in ("mean", "std")}
    assert_close(restored(features), loss, 1e-7)
    assert "unbiased=True" in repr(module)


BAD = {
    "channels": (lambda f, t: ops.moment_loss(f, [t[0][:, :2]] + t[1:]), ValueError, "^targets\\[0\\]"),
    "count": (lambda f, t: ops.moment_loss(f, t[:2]), ValueError, "^targets:"),
    "pair": (lambda f, t: ops.moment_loss(f, [(t[0],)] + t[1:]), TypeError, "^targets\\[0\\]"),
    "stat shape": (lambda f, t: ops.moment_loss(f, [(torch.zeros(4), torch.ones(3))] + t[1:]),
                   ValueError, "^targets\\[0\\]\\[0\\] \\(mean\\)"),
    "weights": (lambda f, t: ops.moment_loss(f, t, [1.0]), ValueError, "^weights:"),
    "unbiased type": (lambda f, t: ops.moment_loss(f, t, unbiased=1), TypeError, "^unbiased:"),
    "eps": (lambda f, t: ops.moment_loss(f, t, eps=0.0), ValueError, "^eps:"),
    "one position": (lambda f, t: ops.moment_loss([f[0][:, :, :1, :1]], [t[0]], unbiased=True),
                     ValueError, "^features\\[0\\]: the unbiased"),
    "empty": (lambda f, t: ops.moment_loss([], []), ValueError, "^features:"),
    "dtype": (lambda f, t: ops.moment_loss([f[0], f[1].double()], t[:2]), TypeError, "^features\\[1\\]"),
    "int": (lambda f, t: ops.moment_loss([f[0].long()], [t[0]]), TypeError, "^features\\[0\\]"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input(case, gen):
    features, targets = _layers(gen)
    fn, error, match = BAD[case]
    with pytest.raises(error, match=match):
        fn([f.detach() for f in features], [t.detach() for t in targets])


def test_registered_operators(gen):
    require_extension()
    op = torch.ops.fastgram
    f = [randn(2, 3, 4, 5, dtype=torch.float64, gen=gen, requires_grad=True),
         randn(2, 4, 3, 3, dtype=torch.float64, gen=gen, requires_grad=True)]
    tm = [randn(1, 3, dtype=torch.float64, gen=gen), randn(2, 4, dtype=torch.float64, gen=gen)]
    ts = [torch.rand(2, 3, dtype=torch.float64, generator=gen) + 0.5,
          torch.rand(1, 4, dtype=torch.float64, generator=gen) + 0.5]
    torch.library.opcheck(op.ext_moment_loss.default, (f, tm, ts, [1.0, 0.5], EPS, True))
    loss, means, sigmas = op.ext_moment_loss(f, tm, ts, [1.0, 0.5], EPS, True)
    plain = [x.detach() for x in f]
    torch.library.opcheck(op.ext_moment_loss_backward.default,
                          (torch.tensor(0.7, dtype=torch.float64), plain, means, sigmas, tm, ts,
                           [1.0, 0.5], True))
    with pytest.raises(ValueError, match="features: expected a non-empty list"):
        op.ext_moment_loss([], [], [], [], EPS, False)
    with pytest.raises(ValueError, match="the unbiased variance"):
        op.ext_moment_loss([plain[0][:, :, :1, :1]], tm[:1], ts[:1], [1.0], EPS, True)
    with pytest.raises(ValueError, match="target_means"):
        op.ext_moment_loss(plain[:1], [tm[1]], ts[:1], [1.0], EPS, False)


def test_triton_split_reduction(gen):
    """Rows cut into several chunks (lowered thresholds): the merge of the
    chunk statistics and the chunked backward sweep."""
    _ready("triton")
    if not (os.environ.get("TRITON_INTERPRET") == "1" or torch.cuda.is_available()):
        pytest.skip("no Triton device")
    from fastgram.kernels import common, norm_common

    features, targets = _layers(gen)
    with common.override(norm_common.tuning, tile_elems=8, min_chunk=8):
        loss = ops.moment_loss(features, targets, [1.0, 0.5, 2.0], True, backend="triton")
        grads = torch.autograd.grad(loss, features + targets)
    n = len(features)
    doubles = [t.detach().double().requires_grad_() for t in features + targets]
    ref = paper_moment_loss(doubles[:n], doubles[n:], [1.0, 0.5, 2.0])
    ref_grads = torch.autograd.grad(ref, doubles)
    assert_close(loss, ref, 1e-6, "loss")
    for g, r in zip(grads, ref_grads):
        assert_close(g, r, 1e-5, "grad")


def test_ext_fullgraph_compile(gen):
    """The registered operator traces without graph breaks (its fake) and the
    compiled loss and gradients equal the eager ones."""
    require_extension()
    import torch._dynamo

    from fastgram.backends.ext import moment_loss as ext_moment

    features, targets = _layers(gen)
    stats = [tuple(s.detach() for s in reference.channel_moments(t, EPS, True)) for t in targets]

    def fn(fs):
        return ext_moment.run(fs, [m for m, _ in stats], [s for _, s in stats],
                              [1.0, 0.5, 2.0], EPS, True) * 2.0

    assert_compiles_fullgraph(fn, features)
