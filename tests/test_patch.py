"""fastgram.patch / unpatch: outputs and gradients unchanged, every swap
reported, parameters and buffers kept, originals restored."""

import copy
import functools

import pytest
import torch
from helpers import assert_close

import fastgram
from fastgram import ops
from fastgram.models import Generator
from fastgram.nn import InstanceNorm2d
from fastgram.patch import PatchReport
from protocol_models import ConvLayer, ResidualBlock as Residual

RTOL = 1e-10  # float64 on the CPU


# A third-party-style model: the fast-neural-style transformer network
# (Johnson et al., 2016) with instance norms, as projects write it; its
# layers are the re-implementation in protocol_models.
class UpsampleConv(torch.nn.Module):
    def __init__(self, cin, cout, kernel):
        super().__init__()
        self.conv = ConvLayer(cin, cout, kernel, 1)

    def forward(self, x):
        return self.conv(torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest"))


class TransformerNet(torch.nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.conv1 = ConvLayer(3, width, 9, 1)
        self.in1 = torch.nn.InstanceNorm2d(width, affine=True)
        self.conv2 = ConvLayer(width, 2 * width, 3, 2)
        self.in2 = torch.nn.InstanceNorm2d(2 * width, affine=True)
        self.res = torch.nn.Sequential(Residual(2 * width), Residual(2 * width))
        self.up = UpsampleConv(2 * width, width, 3)
        self.in4 = torch.nn.InstanceNorm2d(width)  # affine=False too
        self.out = ConvLayer(width, 3, 9, 1)

    def forward(self, x):
        y = torch.relu(self.in1(self.conv1(x)))
        y = torch.relu(self.in2(self.conv2(y)))
        y = self.res(y)
        y = torch.relu(self.in4(self.up(y)))
        return self.out(y)


def _randomise_affine(model, gen):
    """Non-trivial norm parameters, so keeping them is actually tested."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.InstanceNorm2d) and m.affine:
                m.weight.copy_(
                    torch.rand(m.weight.shape, generator=gen, dtype=m.weight.dtype) + 0.5
                )
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen, dtype=m.bias.dtype))


def _outputs_and_gradients(model, inputs, upstream):
    model.zero_grad(set_to_none=True)
    inputs = [x.detach().clone().requires_grad_(x.is_floating_point()) for x in inputs]
    out = model(*inputs)
    out.backward(upstream)
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
    grads.update({f"input{i}": x.grad.detach().clone() for i, x in enumerate(inputs)})
    return out.detach(), grads


def _assert_gradients_close(grads, expected):
    """Relative error per gradient; a conv bias right before an instance norm
    has a gradient that is zero up to rounding, so those (norm below 1e-8 of
    the largest) are held to an absolute bound scaled by the largest."""
    largest = max(float(g.norm()) for g in expected.values())
    for key, ref in expected.items():
        if float(ref.norm()) < 1e-8 * largest:
            assert float((grads[key] - ref).norm()) <= RTOL * largest, f"grad {key}"
        else:
            assert_close(grads[key], ref, RTOL, f"grad {key}")


def _torch_instance_norm_names(model):
    return [n for n, m in model.named_modules() if type(m) is torch.nn.InstanceNorm2d]


def _count_instance_norm_calls(monkeypatch):
    calls = []
    original = ops.instance_norm

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(ops, "instance_norm", spy)
    return calls


def _check_patch_round_trip(model, inputs, gen, monkeypatch):
    names = _torch_instance_norm_names(model)
    assert names
    norms = {n: m for n, m in model.named_modules() if n in names}
    param_ids = [id(p) for p in model.parameters()]
    state = copy.deepcopy(model.state_dict())
    out_before = model(*inputs)
    upstream = torch.randn(out_before.shape, generator=gen, dtype=out_before.dtype)
    before, grads_before = _outputs_and_gradients(model, inputs, upstream)
    calls = _count_instance_norm_calls(monkeypatch)
    model(*inputs)
    torch_calls = len(calls)

    report = fastgram.patch(model)

    assert isinstance(report, PatchReport)
    assert list(report.swapped) == names
    assert not set(names) & {name for name, _ in report.skipped}
    for name, module in model.named_modules():
        if name in names:
            assert type(module) is InstanceNorm2d
            assert module is norms[name]  # same object, swapped in place
    assert [id(p) for p in model.parameters()] == param_ids
    assert model.state_dict().keys() == state.keys()
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    calls.clear()
    after, grads_after = _outputs_and_gradients(model, inputs, upstream)
    assert len(calls) == torch_calls + len(names), "patched norms must run on fastgram.ops"
    assert_close(after, before, RTOL, "output")
    assert grads_after.keys() == grads_before.keys()
    _assert_gradients_close(grads_after, grads_before)

    restored = fastgram.unpatch(model)
    assert list(restored) == names
    assert _torch_instance_norm_names(model) == names
    assert all(not hasattr(m, "_fastgram_original_class") for m in model.modules())
    calls.clear()
    again, _ = _outputs_and_gradients(model, inputs, upstream)
    assert len(calls) == torch_calls
    assert_close(again, before, RTOL, "output after unpatch")
    return report


def test_patch_generator_built_with_torch_instance_norm(gen, monkeypatch):
    torch.manual_seed(0)
    model = Generator(
        ngf=4,
        n_res_blocks=2,
        mlp_dim=8,
        style_dim=3,
        norm_layer=functools.partial(torch.nn.InstanceNorm2d, affine=True),
    ).double()
    _randomise_affine(model, gen)
    content = torch.rand(2, 3, 16, 24, generator=gen, dtype=torch.float64)
    style = torch.randn(2, 3, generator=gen, dtype=torch.float64)
    report = _check_patch_round_trip(model, [content, style], gen, monkeypatch)
    # 1 input conv + 2 downsamplings + 2 residual blocks of 2 norms each.
    assert len(report.swapped) == 7
    assert "encoder.model.0.norm_act.norm" in report.swapped
    # its upsampling layer norms (GroupNorm with 1 group) are listed, not swapped
    assert dict(report.skipped) == {
        f"decoder.upsample.{i}.norm_act.norm": "GroupNorm with 1 group: a layer norm over "
        "(C, H, W), not an instance norm"
        for i in (1, 3)
    }


def test_patch_third_party_transformer_net(gen, monkeypatch):
    torch.manual_seed(0)
    model = TransformerNet().double()
    _randomise_affine(model, gen)
    x = torch.rand(2, 3, 20, 28, generator=gen, dtype=torch.float64)
    report = _check_patch_round_trip(model, [x], gen, monkeypatch)
    assert report.swapped == (
        "in1",
        "in2",
        "res.0.in1",
        "res.0.in2",
        "res.1.in1",
        "res.1.in2",
        "in4",
    )
    assert "7 swapped, 0 left" in str(report)


class CustomNorm(torch.nn.InstanceNorm2d):
    def forward(self, x):
        return super().forward(x) * 2


def test_patch_leaves_running_stats_and_subclasses_and_says_why():
    model = torch.nn.Sequential(
        torch.nn.InstanceNorm2d(4, track_running_stats=True),
        torch.nn.InstanceNorm2d(4),
        CustomNorm(4),
        InstanceNorm2d(4),
        torch.nn.BatchNorm2d(4),
    )
    report = fastgram.patch(model)
    assert report.swapped == ("1",)
    reasons = dict(report.skipped)
    assert set(reasons) == {"0", "2", "3", "4"}
    assert reasons["4"] == "BatchNorm2d: statistics over the batch, not an instance norm"
    assert "track_running_stats=True" in reasons["0"]
    assert "CustomNorm" in reasons["2"]
    assert "already" in reasons["3"]
    assert type(model[0]) is torch.nn.InstanceNorm2d and type(model[2]) is CustomNorm
    assert "left    0: track_running_stats=True" in str(report)
    # Built as fastgram's module: unpatch leaves it; only the swapped one returns.
    assert fastgram.unpatch(model) == ("1",)
    assert type(model[1]) is torch.nn.InstanceNorm2d and type(model[3]) is InstanceNorm2d


def test_patch_twice_is_harmless_and_unpatch_of_unpatched_is_a_no_op():
    model = torch.nn.Sequential(torch.nn.InstanceNorm2d(2))
    assert fastgram.patch(model).swapped == ("0",)
    second = fastgram.patch(model)
    assert second.swapped == () and "already" in second.skipped[0][1]
    assert fastgram.unpatch(model) == ("0",)
    assert fastgram.unpatch(model) == ()
    assert type(model[0]) is torch.nn.InstanceNorm2d


def test_patch_root_module_shared_module_and_opt_out():
    norm = torch.nn.InstanceNorm2d(3)
    assert fastgram.patch(norm).swapped == ("",)
    assert type(norm) is InstanceNorm2d
    fastgram.unpatch(norm)
    shared = torch.nn.InstanceNorm2d(3)
    model = torch.nn.Sequential(shared, torch.nn.ReLU(), shared)
    assert fastgram.patch(model).swapped == ("0",)
    assert type(model[2]) is InstanceNorm2d
    fastgram.unpatch(model)
    assert fastgram.patch(model, instance_norm=False) == PatchReport(
        skipped=(("0", "instance_norm=False was passed"),)
    )
    assert type(model[0]) is torch.nn.InstanceNorm2d


def test_patched_model_survives_deepcopy_and_state_dict_round_trip(gen):
    model = TransformerNet()
    fastgram.patch(model)
    clone = copy.deepcopy(model)
    x = torch.rand(1, 3, 12, 12, generator=gen)
    assert torch.equal(clone(x), model(x))
    assert fastgram.unpatch(clone) == fastgram.unpatch(model)
    fresh = TransformerNet()
    fresh.load_state_dict(clone.state_dict())


def test_patch_bad_arguments():
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module"):
        fastgram.patch("model")
    with pytest.raises(TypeError, match="instance_norm: expected True or False"):
        fastgram.patch(torch.nn.Identity(), instance_norm=1)
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module"):
        fastgram.unpatch(None)


def test_readme_swap_of_a_hand_written_gram_and_style_loss(gen):
    """The README's before/after: fast-neural-style's own gram_matrix and
    style loss, and the fastgram.ops one-import replacement, agree."""

    def hand_written_gram(y):
        (b, ch, h, w) = y.size()
        features = y.view(b, ch, w * h)
        return features.bmm(features.transpose(1, 2)) / (ch * h * w)

    shapes = [(2, 8, 12, 10), (2, 16, 6, 5)]
    features = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    style_features = [torch.randn((1,) + s[1:], generator=gen, dtype=torch.float64) for s in shapes]
    style_weight = 1e5

    gram_style = [hand_written_gram(y) for y in style_features]
    before = 0.0
    for ft_y, gm_s in zip(features, gram_style):
        gram_y = hand_written_gram(ft_y)
        before += torch.nn.functional.mse_loss(gram_y, gm_s.expand_as(gram_y))
    before *= style_weight

    gram_targets = [ops.gram_matrix(y)[0] for y in style_features]  # (C, C), broadcast over B
    after = style_weight * ops.style_loss(features, gram_targets)
    assert_close(after, before, RTOL, "style loss")
    for y in features:
        assert_close(ops.gram_matrix(y), hand_written_gram(y), RTOL, "gram")


def test_eps_zero_is_left_alone_and_reported():
    model = torch.nn.Sequential(torch.nn.InstanceNorm2d(4, eps=0.0), torch.nn.InstanceNorm2d(4))
    report = fastgram.patch(model)
    assert report.swapped == ("1",)
    assert type(model[0]) is torch.nn.InstanceNorm2d
    assert dict(report.skipped)["0"].startswith("eps=0.0: fastgram's op needs eps > 0")
    x = torch.rand(2, 4, 5, 5)
    assert torch.equal(model[0](x), torch.nn.functional.instance_norm(x, eps=0.0))


def test_custom_norm_like_classes_are_listed_as_left_untouched():
    class PixelNorm(torch.nn.Module):
        def forward(self, x):
            return x / x.pow(2).mean(1, keepdim=True).add(1e-8).sqrt()

    class FancyNormalization(torch.nn.GroupNorm):
        pass

    model = torch.nn.Sequential(PixelNorm(), FancyNormalization(2, 4), torch.nn.BatchNorm2d(4),
                                torch.nn.LayerNorm(4), torch.nn.InstanceNorm2d(4))
    report = fastgram.patch(model)
    reasons = dict(report.skipped)
    assert report.swapped == ("4",)
    assert sorted(reasons) == ["0", "1", "2", "3"]
    assert "PixelNorm looks like a norm layer" in reasons["0"]
    assert "FancyNormalization looks like a norm layer" in reasons["1"]
    assert reasons["2"].startswith("BatchNorm2d: statistics over the batch")
    assert reasons["3"].startswith("LayerNorm: statistics over the last dimensions")
    assert "left    0: " in str(report)


def test_drop_in_refuses_one_spatial_position_like_torch():
    x = torch.randn(2, 4, 1, 1)
    torch_norm = torch.nn.InstanceNorm2d(4)
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        torch_norm(x)
    fastgram.patch(torch_norm)
    for mode in (torch_norm.train, torch_norm.eval):
        mode()
        with pytest.raises(ValueError, match="more than 1 spatial element"):
            torch_norm(x)
