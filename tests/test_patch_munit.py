"""fastgram.patch and MUNIT's AdaIN protocol: recognised by state, not only
by class name, swapped only after the probe agrees, and every look-alike
left alone with the reason."""

import pytest
import torch
from helpers import assert_close
from protocol_models import AdaptiveInstanceNorm2d as TheirAdaIN

import fastgram
from fastgram.nn import MUNITAdaptiveInstanceNorm2d


class AdaIN2d(TheirAdaIN):
    """The protocol under another class name, computed by the formula."""

    def forward(self, x):
        b, c = x.shape[:2]
        mean = x.mean((2, 3), keepdim=True)
        var = x.var((2, 3), unbiased=False, keepdim=True)
        w, bias = self.weight.view(b, c, 1, 1), self.bias.view(b, c, 1, 1)
        return (x - mean) / torch.sqrt(var + self.eps) * w + bias


class UnbiasedAdaIN(TheirAdaIN):
    """Looks like the protocol; unbiased variance (pytorch-AdaIN's convention)."""

    def forward(self, x):
        b, c = x.shape[:2]
        mean = x.mean((2, 3), keepdim=True)
        std = (x.var((2, 3), keepdim=True) + self.eps).sqrt()
        return (x - mean) / std * self.weight.view(b, c, 1, 1) + self.bias.view(b, c, 1, 1)


class RunningStatsInEval(TheirAdaIN):
    """The protocol in training mode, its running buffers in evaluation mode."""

    def forward(self, x):
        if self.training:
            return super().forward(x)
        b, c = x.shape[:2]
        mean, var = self.running_mean.view(1, c, 1, 1), self.running_var.view(1, c, 1, 1)
        y = (x - mean) / (var + self.eps).sqrt()
        return y * self.weight.view(b, c, 1, 1) + self.bias.view(b, c, 1, 1)


class PerSampleWeightAdaIN(TheirAdaIN):
    """Same state, but wants (B, C) parameters: fails on the flat probe."""

    def forward(self, x):
        if self.weight.dim() != 2:
            raise ValueError("weight must be (B, C)")
        return super().forward(x)


def _assign(module, batch, gen, dtype=torch.float32):
    n = batch * module.num_features
    module.weight = torch.rand(n, generator=gen, dtype=dtype) + 0.5
    module.bias = torch.randn(n, generator=gen, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_protocol_under_another_name_is_swapped_keeping_its_name(gen, dtype):
    model = torch.nn.Sequential(AdaIN2d(4), torch.nn.ReLU(), TheirAdaIN(4)).to(dtype)
    x = torch.randn(2, 4, 6, 5, generator=gen, dtype=dtype) + 1
    for m in (model[0], model[2]):
        _assign(m, 2, gen, dtype)
    before = model(x)
    report = fastgram.patch(model)
    assert report.swapped == ("0", "2") and report.skipped == ()
    for m in (model[0], model[2]):
        assert isinstance(m, MUNITAdaptiveInstanceNorm2d)
    # class names kept: code that finds its AdaIN layers by name still does
    assert type(model[0]).__name__ == "AdaIN2d"
    assert type(model[2]).__name__ == "AdaptiveInstanceNorm2d"
    assert type(model[2]) is MUNITAdaptiveInstanceNorm2d
    assert "probe relative error" in dict(report.notes)["0"]
    assert "swapped 0: AdaIN with assigned weight/bias (MUNIT's protocol)" in str(report)
    assert_close(model(x), before, 1e-5 if dtype == torch.float32 else 1e-10)
    assert fastgram.unpatch(model) == ("0", "2")
    assert type(model[0]) is AdaIN2d and type(model[2]) is TheirAdaIN


def test_probe_leaves_the_module_as_found(gen):
    norm = TheirAdaIN(3)
    _assign(norm, 2, gen)
    weight, bias = norm.weight, norm.bias
    norm.running_mean.fill_(0.25)
    norm.eval()
    calls = []
    norm.register_forward_hook(lambda *args: calls.append(1))
    assert fastgram.patch(norm).swapped == ("",)
    assert norm.weight is weight and norm.bias is bias
    assert torch.equal(norm.running_mean, torch.full((3,), 0.25))
    assert not norm.training
    assert calls == []  # the probe does not run user hooks
    norm(torch.randn(2, 3, 4, 4, generator=gen))
    assert calls == [1]  # the hook is kept


@pytest.mark.parametrize(
    "cls, expected",
    [
        (UnbiasedAdaIN, "computes something else: on a probe input in training mode"),
        (RunningStatsInEval, "computes something else: on a probe input in evaluation mode"),
        (PerSampleWeightAdaIN, "its forward failed on the probe input: weight must be (B, C)"),
    ],
)
def test_look_alikes_that_compute_something_else_are_left_and_reported(gen, cls, expected):
    model = torch.nn.Sequential(cls(4), TheirAdaIN(4))
    report = fastgram.patch(model)
    assert report.swapped == ("1",)
    (name, reason), = report.skipped
    assert name == "0" and reason.startswith(f"{cls.__qualname__} {expected}")
    assert type(model[0]) is cls


class WithParameterWeight(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        self.num_features, self.eps, self.momentum = n, 1e-5, 0.1
        self.weight = torch.nn.Parameter(torch.ones(n))
        self.bias = torch.nn.Parameter(torch.zeros(n))
        self.register_buffer("running_mean", torch.zeros(n))
        self.register_buffer("running_var", torch.ones(n))


class AdaptiveInstanceNorm2d(torch.nn.Module):
    """Named like the protocol, state of another one (weight/bias to forward)."""

    def __init__(self, n):
        super().__init__()
        self.num_features = n

    def forward(self, x, weight, bias):
        return torch.nn.functional.instance_norm(x) * weight + bias


class GainedAdaIN(TheirAdaIN):
    """The protocol plus a learned gain its forward might use."""

    def __init__(self, n):
        super().__init__(n)
        self.gain = torch.nn.Parameter(torch.ones(()))


def test_state_that_does_not_fit_the_protocol_is_reported():
    eps_zero = TheirAdaIN(4, eps=0.0)
    model = torch.nn.Sequential(
        WithParameterWeight(4), AdaptiveInstanceNorm2d(4), GainedAdaIN(4), eps_zero
    )
    report = fastgram.patch(model)
    assert report.swapped == ()
    reasons = dict(report.skipped)
    assert reasons == {
        "0": "WithParameterWeight is not MUNIT's AdaIN protocol: weight is a parameter, "
        "not an attribute assigned before forward",
        "1": "AdaptiveInstanceNorm2d is not MUNIT's AdaIN protocol: has no 'eps' attribute",
        "2": "GainedAdaIN is not MUNIT's AdaIN protocol: has parameters ['gain'] its "
        "forward may use",
        "3": "AdaptiveInstanceNorm2d is not MUNIT's AdaIN protocol: eps=0.0: fastgram's op "
        "needs eps > 0",
    }
    kept = [WithParameterWeight, AdaptiveInstanceNorm2d, GainedAdaIN, TheirAdaIN]
    assert [type(m) for m in model] == kept


def test_twice_opt_out_and_built_as_fastgram():
    model = torch.nn.Sequential(TheirAdaIN(2), MUNITAdaptiveInstanceNorm2d(2))
    assert fastgram.patch(model, munit_adain=False).skipped == (
        ("0", "munit_adain=False was passed"),
        ("1", "already a fastgram.nn.MUNITAdaptiveInstanceNorm2d"),
    )
    assert fastgram.patch(model).swapped == ("0",)
    again = fastgram.patch(model)
    assert again.swapped == () and {r for _, r in again.skipped} == {
        "already a fastgram.nn.MUNITAdaptiveInstanceNorm2d"
    }
    assert fastgram.unpatch(model) == ("0",)
    assert type(model[0]) is TheirAdaIN and type(model[1]) is MUNITAdaptiveInstanceNorm2d


def test_patch_bad_munit_adain_argument():
    with pytest.raises(TypeError, match="munit_adain: expected True or False"):
        fastgram.patch(torch.nn.Identity(), munit_adain="yes")
