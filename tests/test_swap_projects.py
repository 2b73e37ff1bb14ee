"""fastgram swapped into re-implementations of two projects' models
(tests/protocol_models.py): a MUNIT-like generator (AdaIN with assigned
parameters, layer norms, instance norms) and fast_neural_style's
TransformerNet with its Gram style loss. Outputs, gradients of every
parameter, checkpoints loaded strictly both ways, and the report."""

import copy
import io

import torch
from helpers import assert_close
from protocol_models import (
    LossNet,
    MunitGenerator,
    TransformerNet,
    gram_matrix,
    their_style_loss,
)

import fastgram
from fastgram import ops
from fastgram.nn import InstanceNorm2d, MUNITAdaptiveInstanceNorm2d

RTOL = 1e-10  # float64


def _loss_and_grads(model, loss_fn):
    model.zero_grad(set_to_none=True)
    loss = loss_fn(model)
    loss.backward()
    return loss.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def _assert_grads_close(grads, expected):
    assert grads.keys() == expected.keys()
    largest = max(float(g.norm()) for g in expected.values())
    for key, ref in expected.items():
        # a conv bias right before a norm has a gradient that is rounding only
        if float(ref.norm()) < 1e-8 * largest:
            assert float((grads[key] - ref).norm()) <= RTOL * largest, key
        else:
            assert_close(grads[key], ref, RTOL, f"grad {key}")


def _round_trip(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _munit(gen):
    torch.manual_seed(0)
    model = MunitGenerator().double()
    images = torch.rand(2, 3, 16, 20, generator=gen, dtype=torch.float64)
    style = torch.randn(2, 4, generator=gen, dtype=torch.float64)
    target = torch.rand(2, 3, 16, 20, generator=gen, dtype=torch.float64)
    return model, lambda m: (m(images, style) - target).abs().mean(), (images, style)


def test_munit_generator_swaps_instance_and_adain_norms_and_lists_layer_norms(gen):
    model, loss_fn, _ = _munit(gen)
    before, grads_before = _loss_and_grads(model, loss_fn)
    state = copy.deepcopy(model.state_dict())

    report = fastgram.patch(model)

    adain = [f"dec.{i}.body.{j}.2" for i in (0, 1) for j in (0, 1)]
    instance = ["enc_content.0.2", "enc_content.1.2", "enc_content.2.2"] + [
        f"enc_content.{i}.body.{j}.2" for i in (3, 4) for j in (0, 1)
    ]
    assert sorted(report.swapped) == sorted(instance + adain)
    assert {n for n, _ in report.notes} == set(adain)
    layer_norms = {"dec.3.2", "dec.5.2"}
    assert dict(report.skipped).keys() == layer_norms
    for reason in dict(report.skipped).values():
        assert reason.startswith("LayerNorm looks like a norm layer (a layer norm by its name")
    assert "11 swapped, 2 left" in str(report)
    for name, module in model.named_modules():
        if name in adain:
            assert isinstance(module, MUNITAdaptiveInstanceNorm2d)
            assert type(module).__name__ == "AdaptiveInstanceNorm2d"  # found by name still
        if name in instance:
            assert type(module) is InstanceNorm2d
    assert model.state_dict().keys() == state.keys()

    after, grads_after = _loss_and_grads(model, loss_fn)
    assert_close(after, before, RTOL, "loss")
    _assert_grads_close(grads_after, grads_before)
    assert grads_after["mlp.0.weight"].abs().sum() > 0  # through the assigned parameters

    assert sorted(fastgram.unpatch(model)) == sorted(instance + adain)
    again, _ = _loss_and_grads(model, loss_fn)
    assert torch.equal(again, before)


def test_munit_checkpoints_load_strictly_both_ways(gen):
    theirs, loss_fn, (images, style) = _munit(gen)
    with torch.no_grad():  # non-default buffers, so loading them is tested
        for name, buf in theirs.named_buffers():
            buf.uniform_(0.5, 1.5)
    ours = MunitGenerator().double()
    fastgram.patch(ours)
    ours.load_state_dict(_round_trip(theirs.state_dict()), strict=True)
    assert_close(ours(images, style), theirs(images, style), RTOL, "patched from their checkpoint")
    fresh = MunitGenerator().double()
    fresh.load_state_dict(_round_trip(ours.state_dict()), strict=True)
    assert_close(fresh(images, style), ours(images, style), RTOL, "theirs from the patched one")
    for name, buf in fresh.named_buffers():
        assert torch.equal(buf, dict(theirs.named_buffers())[name]), name


def _fast_neural_style(gen):
    torch.manual_seed(0)
    net = TransformerNet(width=4, n_res=2).double()
    with torch.no_grad():  # non-trivial affine parameters
        for m in net.modules():
            if isinstance(m, torch.nn.InstanceNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_()
    vgg = LossNet(width=4).double()
    x = torch.rand(2, 3, 32, 32, generator=gen, dtype=torch.float64)
    style = torch.rand(1, 3, 32, 32, generator=gen, dtype=torch.float64)
    return net, vgg, x, style


def test_transformer_net_training_step_with_fastgram_style_loss(gen):
    net, vgg, x, style = _fast_neural_style(gen)
    style_weight, content_weight = 1e5, 1.0
    style_features = vgg(style)

    def theirs(model):
        y = model(x)
        feats = vgg(y)
        content = content_weight * torch.nn.functional.mse_loss(feats[1], vgg(x)[1])
        grams = [gram_matrix(f) for f in style_features]
        return content + their_style_loss(feats, grams, style_weight)

    def ours(model):
        y = model(x)
        feats = vgg(y)
        content = content_weight * torch.nn.functional.mse_loss(feats[1], vgg(x)[1])
        targets = [ops.gram_matrix(f)[0] for f in style_features]
        return content + style_weight * ops.style_loss(feats, targets)

    before, grads_before = _loss_and_grads(net, theirs)
    report = fastgram.patch(net)
    assert len(report.swapped) == 3 + 2 * 2 + 2 and report.skipped == ()
    after, grads_after = _loss_and_grads(net, ours)
    assert_close(after, before, RTOL, "training loss")
    _assert_grads_close(grads_after, grads_before)


def test_transformer_net_checkpoints_load_strictly_both_ways(gen):
    theirs, _, x, _ = _fast_neural_style(gen)
    ours = TransformerNet(width=4, n_res=2).double()
    fastgram.patch(ours)
    ours.load_state_dict(_round_trip(theirs.state_dict()), strict=True)
    assert_close(ours(x), theirs(x), RTOL, "patched from their checkpoint")
    fresh = TransformerNet(width=4, n_res=2).double()
    fresh.load_state_dict(_round_trip(ours.state_dict()), strict=True)
    assert_close(fresh(x), ours(x), RTOL, "theirs from the patched one")
