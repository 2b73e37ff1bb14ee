"""Under autocast every backend computes the Gram and the style loss from the
input dtype (fp32 accumulation), as the fused kernels, which autocast never
sees, do: ``torch.bmm`` in the plain PyTorch paths no longer drops to bf16
(issue 13)."""

import pytest
import torch

import fastgram
from fastgram import ops
from fastgram.backends import native
from helpers import RTOL, assert_close, randn

BF16_AUTOCAST = dict(device_type="cpu", dtype=torch.bfloat16)


def _style_loss_fns():
    """name -> f(features, targets, weights, scales) in the canonical form."""
    fns = {"native": native.style_loss}
    for name in ("reference", "ext", "triton", "auto"):
        if name in ("reference", "auto") or fastgram.backends()[name].available:
            fns[name] = (lambda b: lambda f, t, w, s: ops.style_loss(f, t, w, backend=b))(name)
    return fns


def _gram_fns():
    fns = {"native": native.gram_matrix}
    for name in ("reference", "ext", "triton", "auto"):
        if name in ("reference", "auto") or fastgram.backends()[name].available:
            fns[name] = (lambda b: lambda x, s: ops.gram_matrix(x, scale=s, backend=b))(name)
    return fns


STYLE = _style_loss_fns()
GRAM = _gram_fns()


def _case(gen, dtype=torch.float32, requires_grad=True):
    # layer 0 takes the extension's fused CPU kernel, layer 1 its plain path
    shapes = [(2, 8, 16, 16), (2, 5, 7)]
    feats = [randn(*s, dtype=dtype, gen=gen, requires_grad=requires_grad) for s in shapes]
    targs = [randn(s[1], s[1], gen=gen) * 0.3 for s in shapes]
    weights = [0.8, 1.7]
    scales = [1.0 / (s[1] * s[2] * (s[3] if len(s) == 4 else 1)) for s in shapes]
    return feats, targs, weights, scales


def _reference64(feats, targs, weights, scales):
    f64 = [f.detach().double().requires_grad_() for f in feats]
    loss = ops.style_loss(f64, [t.double() for t in targs], weights, backend="reference")
    loss.backward()
    return loss.detach(), [f.grad for f in f64]


@pytest.mark.parametrize("name", list(STYLE))
def test_style_loss_under_bf16_autocast_is_fp32(name, gen):
    feats, targs, weights, scales = _case(gen)
    ref, ref_grads = _reference64(feats, targs, weights, scales)
    with torch.autocast(**BF16_AUTOCAST):
        loss = STYLE[name](feats, targs, weights, scales)
    assert loss.dtype == torch.float32
    assert_close(loss, ref, RTOL[torch.float32], f"{name} loss under autocast")
    # the backward pass runs after the autocast region, as training loops do
    grads = torch.autograd.grad(loss, feats)
    for i, (g, r) in enumerate(zip(grads, ref_grads)):
        assert_close(g, r, RTOL[torch.float32], f"{name} features[{i}] gradient")


@pytest.mark.parametrize("name", list(GRAM))
def test_gram_under_bf16_autocast_is_fp32(name, gen):
    x = randn(2, 8, 9, 9, gen=gen, requires_grad=True)
    scale = 1.0 / (8 * 81)
    with torch.autocast(**BF16_AUTOCAST):
        g = GRAM[name](x, scale)
    assert g.dtype == torch.float32
    ref = ops.gram_matrix(x.detach().double(), scale=scale, backend="reference")
    assert_close(g, ref, RTOL[torch.float32], f"{name} Gram under autocast")


@pytest.mark.parametrize("name", ["reference", "native"])
def test_bf16_features_under_autocast_accumulate_in_fp32(name, gen):
    # half inputs are upcast and multiplied in fp32, autocast or not
    feats, targs, weights, scales = _case(gen, torch.bfloat16, requires_grad=False)
    outside = STYLE[name](feats, targs, weights, scales)
    with torch.autocast(**BF16_AUTOCAST):
        inside = STYLE[name](feats, targs, weights, scales)
        gram = GRAM[name](feats[0], scales[0])
    assert inside.dtype == torch.float32
    assert_close(inside, outside, RTOL[torch.float32], f"{name} bf16 style loss")
    assert_close(gram, GRAM[name](feats[0], scales[0]), RTOL[torch.float32], f"{name} bf16 Gram")
