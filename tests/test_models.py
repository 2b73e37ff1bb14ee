"""Generator, StyleEncoder, Discriminator and their building blocks: shapes,
dtypes, determinism, gradients to every parameter, fused-norm numerics, bad
input."""

import functools

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close, randn

import fastgram
from fastgram import ops
from fastgram.models import OUTPUT_RANGE, Discriminator, Generator, StyleEncoder
from fastgram.nn import (
    AdaptiveInstanceNorm2d,
    InstanceNorm2d,
    NormActivation,
    StyleLoss,
    VGG19Features,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SIZES = [(32, 32), (96, 160)]
BATCHES = [1, 3]


def small_generator(**kwargs):
    defaults = dict(ngf=8, n_res_blocks=1, mlp_dim=16, style_dim=4)
    defaults.update(kwargs)
    return Generator(**defaults)


def small_discriminator(**kwargs):
    defaults = dict(ndf=8, n_layers=2)
    defaults.update(kwargs)
    return Discriminator(**defaults)


def assert_every_parameter_has_gradient(model):
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name}: zero gradient"


def test_exported_from_fastgram():
    assert fastgram.Generator is Generator
    assert fastgram.StyleEncoder is StyleEncoder
    assert fastgram.Discriminator is Discriminator
    assert fastgram.models.Generator is Generator
    assert OUTPUT_RANGE == (0.0, 1.0)


@pytest.mark.parametrize(
    "model",
    [
        small_generator(),
        StyleEncoder(ndf=8),
        small_discriminator(spectral_norm=True),
    ],
    ids=["generator", "style_encoder", "discriminator"],
)
def test_models_are_built_from_fastgram_nn_and_torch_layers_only(model):
    for name, module in model.named_modules():
        origin = type(module).__module__
        assert origin.startswith(("torch.nn.", "fastgram.nn.", "fastgram.models.")), (name, origin)


# Generator -------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("batch", BATCHES)
def test_generator_shapes_and_range(size, batch, gen):
    model = small_generator(input_nc=3, output_nc=2)
    content = torch.rand(batch, 3, *size, generator=gen)
    style = torch.randn(batch, 4, generator=gen)
    out = model(content, style)
    assert out.shape == (batch, 2, *size)
    assert out.dtype == torch.float32
    assert OUTPUT_RANGE[0] <= out.min() and out.max() <= OUTPUT_RANGE[1]
    code = model.encode(content)
    assert code.shape == (batch, 32, size[0] // 4, size[1] // 4)
    assert torch.equal(model.decode(code, style), out)


def test_generator_runs_in_float64(gen):
    model = small_generator().double()
    out = model(
        torch.rand(2, 3, 16, 24, generator=gen, dtype=torch.float64),
        torch.randn(2, 4, generator=gen, dtype=torch.float64),
    )
    assert out.dtype == torch.float64 and out.shape == (2, 3, 16, 24)


def test_generator_style_code_matters_and_broadcasts(gen):
    model = small_generator().eval()
    content = torch.rand(3, 3, 32, 32, generator=gen)
    one = torch.randn(1, 4, generator=gen)
    other = torch.randn(1, 4, generator=gen)
    a = model(content, one)
    assert torch.allclose(a, model(content, one.expand(3, 4)), rtol=0, atol=1e-6)
    b = model(content, other)
    assert (a - b).abs().max() > 1e-4


def test_generator_deterministic_in_eval_and_noise_sampled_in_training(gen):
    model = small_generator(noise_dim=3)
    content = torch.rand(2, 3, 32, 32, generator=gen)
    style = torch.randn(2, 4, generator=gen)
    model.eval()
    first = model(content, style)
    assert torch.equal(first, model(content, style))
    assert torch.equal(first, model(content, style, torch.zeros(2, 3)))
    noise = torch.randn(2, 3, generator=gen)
    assert (model(content, style, noise) - first).abs().max() > 1e-5
    model.train()
    torch.manual_seed(0)
    a = model(content, style)
    b = model(content, style)
    assert (a - b).abs().max() > 1e-5
    assert torch.equal(model(content, style, noise), model(content, style, noise))


def test_generator_gradient_reaches_every_parameter(gen):
    model = small_generator(noise_dim=2)
    content = torch.rand(2, 3, 32, 48, generator=gen)
    style = torch.randn(2, 4, generator=gen)
    out = model(content, style)
    (out * torch.randn(out.shape, generator=gen)).sum().backward()
    assert_every_parameter_has_gradient(model)


def test_generator_adain_params_start_near_identity():
    model = small_generator()
    params = model.adain_params(torch.zeros(1, 4), 1)
    channels = model.encoder.out_channels
    assert params.shape == (1, model.decoder.num_adain_params)
    scales = params.view(-1, 2, channels)[:, 0]
    shifts = params.view(-1, 2, channels)[:, 1]
    # MLP output (small at init) + 1 for scales, + 0 for shifts.
    assert (scales - 1).abs().mean() < 0.5 and shifts.abs().mean() < 0.5
    assert (scales.mean() - shifts.mean() - 1).abs() < 0.2


def test_generator_uses_the_fused_instance_norm(monkeypatch, gen):
    calls = []
    original = ops.instance_norm

    def spy(x, weight=None, bias=None, eps=1e-5, activation=None, *args, **kwargs):
        calls.append(activation)
        return original(x, weight, bias, eps, activation, *args, **kwargs)

    monkeypatch.setattr(ops, "instance_norm", spy)
    model = small_generator(n_res_blocks=2)
    model(torch.rand(1, 3, 16, 16, generator=gen), torch.randn(1, 4, generator=gen))
    # Encoder: 1 + 2 downsampling + 2 blocks x 2; decoder: 2 AdaIN blocks x 2.
    assert len(calls) == 7 + 4
    assert calls.count("relu") == 3 + 2 + 2 and calls.count(None) == 2 + 2


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(ngf=0), ValueError, "ngf: expected an int >= 1"),
        (dict(ngf=8.0), TypeError, "ngf: expected an int"),
        (dict(norm_layer="instance"), TypeError, "norm_layer: expected a callable"),
        (dict(norm_layer=lambda c: 3), TypeError, "norm_layer: expected it to return"),
        (dict(noise_dim=-1), ValueError, "noise_dim"),
        (dict(style_dim=0), ValueError, "style_dim"),
        (dict(n_adain_blocks=0), ValueError, "n_adain_blocks"),
    ],
)
def test_generator_bad_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        small_generator(**kwargs)


def test_generator_bad_input(gen):
    model = small_generator()
    content = torch.rand(2, 3, 16, 16, generator=gen)
    style = torch.randn(2, 4, generator=gen)
    with pytest.raises(ValueError, match=r"content: expected 3 channels"):
        model(torch.rand(2, 1, 16, 16), style)
    with pytest.raises(ValueError, match=r"content: expected height and width multiples of 4"):
        model(torch.rand(2, 3, 18, 16), style)
    with pytest.raises(ValueError, match=r"at least 8"):
        model(torch.rand(2, 3, 4, 16), style)
    with pytest.raises(ValueError, match=r"style_code: expected shape \(2, 4\) or \(1, 4\)"):
        model(content, torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"style_code: expected shape"):
        model(content, torch.randn(3, 4))
    with pytest.raises(ValueError, match="style_code: expected a 2-dimensional"):
        model(content, torch.randn(4))
    with pytest.raises(TypeError, match="style_code: expected a torch.Tensor"):
        model(content, [0.0] * 4)
    with pytest.raises(TypeError, match="content: expected a .*float"):
        model(content.to(torch.int32), style)
    with pytest.raises(ValueError, match="noise: this generator was built with noise_dim=0"):
        model(content, style, torch.randn(2, 1))
    noisy = small_generator(noise_dim=2)
    with pytest.raises(ValueError, match=r"noise: expected shape \(2, 2\)"):
        noisy(content, style, torch.randn(2, 3))


# Style encoder -----------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES + [(37, 53), (16, 16)])
@pytest.mark.parametrize("batch", BATCHES)
def test_style_encoder_any_size(size, batch, gen):
    model = StyleEncoder(ndf=8, style_dim=5)
    code = model(torch.rand(batch, 3, *size, generator=gen))
    assert code.shape == (batch, 5) and code.dtype == torch.float32


def test_style_encoder_gradients_and_input_checks(gen):
    model = StyleEncoder(input_nc=1, ndf=8, norm_layer=InstanceNorm2d)
    code = model(torch.rand(3, 1, 40, 24, generator=gen))
    (code * torch.randn(code.shape, generator=gen)).sum().backward()
    assert_every_parameter_has_gradient(model)
    with pytest.raises(ValueError, match="image: expected height and width of at least 16"):
        model(torch.rand(1, 1, 8, 32))
    with pytest.raises(ValueError, match="image: expected 1 channels"):
        model(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="image: expected a 4-dimensional"):
        model(torch.rand(1, 32, 32))


def test_style_encoder_code_depends_on_the_image(gen):
    model = StyleEncoder(ndf=8).eval()
    a = model(torch.rand(1, 3, 32, 32, generator=gen))
    b = model(torch.rand(1, 3, 32, 32, generator=gen) * 0.2)
    assert (a - b).abs().max() > 1e-5


# Discriminator -------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("batch", BATCHES)
def test_discriminator_multiscale_patch_logits(size, batch, gen):
    model = small_discriminator(num_scales=3)
    x = torch.rand(batch, 3, *size, generator=gen)
    logits = model(x)
    assert isinstance(logits, list) and len(logits) == 3
    h, w = size
    for k, out in enumerate(logits):
        # Each scale: stride-2 convs with padding 2 (size // 2 + 1), two more
        # convs of stride 1 and padding 2 (size + 1 each).
        sh, sw = h, w
        for _ in range(2):
            sh, sw = sh // 2 + 1, sw // 2 + 1
        assert out.shape == (batch, 1, sh + 2, sw + 2), (k, out.shape)
        assert out.dtype == torch.float32
        h, w = (h + 1) // 2, (w + 1) // 2


def test_discriminator_single_scale_image_logit_is_a_configuration(gen):
    model = small_discriminator(num_scales=1, output="image", norm_layer=None, spectral_norm=True)
    assert type(model) is Discriminator
    for size in [(16, 16), (96, 160)]:
        logits = model(torch.rand(3, 3, *size, generator=gen))
        assert len(logits) == 1 and logits[0].shape == (3, 1)


def test_discriminator_returns_logits_not_probabilities(gen):
    model = small_discriminator()
    assert not any(isinstance(m, torch.nn.Sigmoid) for m in model.modules())
    with torch.no_grad():
        for conv in model.scales[0].model[-1:]:
            conv.bias.fill_(-3.0)
        logits = model(torch.rand(1, 3, 32, 32, generator=gen))
    assert (logits[0] < 0).any()


@pytest.mark.parametrize("spectral_norm", [False, True])
@pytest.mark.parametrize("output", ["patch", "image"])
def test_discriminator_gradient_reaches_every_parameter(spectral_norm, output, gen):
    model = small_discriminator(spectral_norm=spectral_norm, output=output, num_scales=2)
    x = torch.rand(2, 3, 40, 24, generator=gen, requires_grad=True)
    logits = model(x)
    loss = sum(F.binary_cross_entropy_with_logits(out, torch.ones_like(out)) for out in logits)
    loss.backward()
    assert_every_parameter_has_gradient(model)
    assert x.grad.abs().sum() > 0
    if spectral_norm:
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        assert convs and all(torch.nn.utils.parametrize.is_parametrized(c, "weight") for c in convs)


def test_discriminator_norm_layer_option():
    with_in = small_discriminator(num_scales=1)
    assert sum(isinstance(m, InstanceNorm2d) for m in with_in.modules()) == 2
    with_bn = small_discriminator(num_scales=1, norm_layer=torch.nn.BatchNorm2d)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in with_bn.modules()) == 2
    with_bn(torch.rand(2, 3, 32, 32))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(num_scales=0), ValueError, "num_scales"),
        (dict(output="pixel"), ValueError, "output: expected one of"),
        (dict(spectral_norm=1), TypeError, "spectral_norm: expected True or False"),
        (dict(norm_layer=4), TypeError, "norm_layer"),
        (dict(n_layers=0), ValueError, "n_layers"),
    ],
)
def test_discriminator_bad_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        small_discriminator(**kwargs)


def test_discriminator_bad_input():
    model = small_discriminator()
    with pytest.raises(ValueError, match="x: expected 3 channels"):
        model(torch.rand(1, 4, 32, 32))
    with pytest.raises(TypeError, match="x: expected a .*float"):
        model(torch.zeros(1, 3, 32, 32, dtype=torch.int64))


# Building blocks -------------------------------------------------------------------


@pytest.mark.parametrize("activation", [None, "relu", "leaky_relu"])
@pytest.mark.parametrize("affine", [False, True])
def test_norm_activation_fused_equals_torch_norm_then_activation(activation, affine, gen):
    x = randn(2, 5, 7, 9, dtype=torch.float64, gen=gen, requires_grad=True)
    torch_norm = torch.nn.InstanceNorm2d(5, affine=affine).double()
    if affine:
        with torch.no_grad():
            torch_norm.weight.copy_(randn(5, dtype=torch.float64, gen=gen))
            torch_norm.bias.copy_(randn(5, dtype=torch.float64, gen=gen))
    ours_norm = InstanceNorm2d(5, affine=affine).double()
    ours_norm.load_state_dict(torch_norm.state_dict())
    expected = torch_norm(x)
    if activation == "relu":
        expected = F.relu(expected)
    elif activation == "leaky_relu":
        expected = F.leaky_relu(expected, 0.2)
    fused = NormActivation(ours_norm, activation, 0.2)
    assert fused._fusable(x)
    out = fused(x)
    assert_close(out, expected, 1e-10)
    unfused = NormActivation(torch_norm, activation, 0.2)
    assert not unfused._fusable(x)
    assert_close(unfused(x), expected, 1e-10)
    g = randn(*x.shape, dtype=torch.float64, gen=gen)
    (grad_fused,) = torch.autograd.grad(out, x, g)
    (grad_expected,) = torch.autograd.grad(expected, x, g)
    assert_close(grad_fused, grad_expected, 1e-10, "grad x")


def test_norm_activation_without_norm_and_bad_arguments(gen):
    x = randn(1, 2, 3, 3, gen=gen)
    assert torch.equal(NormActivation(None, "relu")(x), F.relu(x))
    assert torch.equal(NormActivation(None, None)(x), x)
    with pytest.raises(ValueError, match="activation: expected one of"):
        NormActivation(None, "gelu")
    with pytest.raises(TypeError, match="norm: expected a torch.nn.Module"):
        NormActivation("instance")


def test_adaptive_instance_norm_matches_formula(gen):
    x = randn(3, 4, 5, 6, dtype=torch.float64, gen=gen)
    weight = randn(3, 4, dtype=torch.float64, gen=gen)
    bias = randn(3, 4, dtype=torch.float64, gen=gen)
    layer = AdaptiveInstanceNorm2d(4, eps=1e-5, activation="leaky_relu", negative_slope=0.1)
    mean = x.mean((2, 3), keepdim=True)
    var = x.var((2, 3), unbiased=False, keepdim=True)
    expected = F.leaky_relu(
        (x - mean) / (var + 1e-5).sqrt() * weight[..., None, None] + bias[..., None, None], 0.1
    )
    assert_close(layer(x, weight, bias), expected, 1e-10)
    assert list(layer.parameters()) == []
    with pytest.raises(ValueError, match="x: expected 4 channels"):
        layer(randn(3, 5, 2, 2, gen=gen), weight, bias)
    with pytest.raises(ValueError, match="weight: expected shape"):
        layer(x, weight[:, :3], bias)
    with pytest.raises(ValueError, match="num_features"):
        AdaptiveInstanceNorm2d(0)
    with pytest.raises(ValueError, match="activation"):
        AdaptiveInstanceNorm2d(4, activation="tanh")
    with pytest.raises(ValueError, match="eps"):
        AdaptiveInstanceNorm2d(4, eps=0.0)


def test_generator_with_torch_norms_is_a_valid_configuration(gen):
    model = small_generator(norm_layer=functools.partial(torch.nn.InstanceNorm2d, affine=True))
    assert any(type(m) is torch.nn.InstanceNorm2d for m in model.modules())
    out = model(torch.rand(1, 3, 16, 16, generator=gen), torch.randn(1, 4, generator=gen))
    assert out.shape == (1, 3, 16, 16)


# Across devices, layouts and dtypes ---------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_one_training_step_end_to_end(device, gen):
    """Style encoder -> generator -> VGG features -> style/content losses and
    a multi-scale adversarial loss, backward to every trainable parameter."""
    generator = small_generator().to(device)
    style_encoder = StyleEncoder(ndf=8, style_dim=4).to(device)
    discriminator = small_discriminator(num_scales=2).to(device)
    vgg = VGG19Features(layers=("relu1_1", "relu2_1"), weights=None, output="list").to(device)
    content = torch.rand(2, 3, 32, 32, generator=gen).to(device)
    style = torch.rand(2, 3, 32, 32, generator=gen).to(device)

    out = generator(content, style_encoder(style))
    style_loss = StyleLoss(vgg(style))(vgg(out))
    content_loss = ops.content_loss(vgg(out)[1], vgg(content)[1])
    adversarial = sum(
        F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        for logits in discriminator(out)
    )
    (style_loss + content_loss + adversarial).backward()
    assert torch.isfinite(style_loss) and style_loss > 0
    assert_every_parameter_has_gradient(generator)
    assert_every_parameter_has_gradient(style_encoder)
    assert all(p.grad is None for p in vgg.parameters())


def test_models_accept_channels_last_inputs(gen):
    generator = small_generator().eval()
    content = torch.rand(2, 3, 32, 48, generator=gen)
    style = torch.randn(2, 4, generator=gen)
    expected = generator(content, style)
    out = generator(content.to(memory_format=torch.channels_last), style)
    assert_close(out, expected, 1e-5)
    discriminator = small_discriminator()
    for a, b in zip(
        discriminator(content.to(memory_format=torch.channels_last)), discriminator(content)
    ):
        assert_close(a, b, 1e-5)


def test_models_run_in_bfloat16(gen):
    generator = small_generator().to(torch.bfloat16)
    style_encoder = StyleEncoder(ndf=8, style_dim=4).to(torch.bfloat16)
    discriminator = small_discriminator(num_scales=2).to(torch.bfloat16)
    content = torch.rand(1, 3, 32, 32, generator=gen).to(torch.bfloat16)
    out = generator(content, style_encoder(content))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert all(t.dtype == torch.bfloat16 for t in discriminator(out))


def test_generator_decode_checks_the_content_code(gen):
    model = small_generator()
    style = torch.randn(1, 4, generator=gen)
    with pytest.raises(ValueError, match="content_code: expected 32 channels"):
        model.decode(torch.rand(1, 16, 4, 4), style)
    with pytest.raises(ValueError, match="content_code: expected height and width of at least 2"):
        model.decode(torch.rand(1, 32, 1, 4), style)
    assert model.decode(torch.rand(1, 32, 2, 3), style).shape == (1, 3, 8, 12)
    assert small_generator(n_downsampling=0).min_size == 4
