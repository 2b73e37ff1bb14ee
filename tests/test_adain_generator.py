"""The any-style "adain" generator: the frozen VGG19 as content encoder, AdaIN
to a style's channel statistics, a learned decoder; its statistics encoder,
configuration, training, saving, memory estimate and bf16 autocast."""

import copy
import warnings

import pytest
import torch

from fastgram import StyleTransferGAN, data, memory, precision
from fastgram.models import AdaINDecoder, AdaINGenerator, VGGStatisticsEncoder
from fastgram.models.vgg_style_encoder import channel_statistics
from fastgram.nn import VGG19Features
from fastgram.train import TrainConfig, Trainer

CONTENT = [data.image_path(name) for name in data.CONTENT_IMAGES]
STYLE = [data.image_path(name) for name in data.STYLE_IMAGES]
TINY = dict(generator="adain", size=32, batch_size=2, ngf=4, ndf=4, num_scales=1,
            vgg_weights=None, ema_decay=0.5, log_every=1, sample_every=2, checkpoint_every=2,
            style_augment=1.0, tv_weight=0.1, style_rec_weight=0.01)


def assert_has_statistics(features, code, content_features):
    """``features`` carry the means and standard deviations in ``code``; a
    channel that is constant in the content stays constant (AdaIN cannot
    give it a spread), so its standard deviation is not compared."""
    means, stds = channel_statistics([features], eps=0.0).chunk(2, dim=1)
    want_means, want_stds = code.expand_as(torch.cat([means, stds], 1)).chunk(2, dim=1)
    torch.testing.assert_close(means, want_means, rtol=1e-4, atol=1e-4)
    spread = content_features.flatten(2).std(2)
    varied = spread > 1e-2 * spread.max()
    assert varied.float().mean() > 0.5
    torch.testing.assert_close(stds[varied], want_stds[varied], rtol=1e-3, atol=1e-3)


def _convs(module):
    return [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]


@pytest.mark.parametrize("layer, stride", [("relu2_1", 2), ("relu3_1", 4), ("relu4_1", 8),
                                           ("relu5_1", 16)])
def test_decoder_mirrors_vgg19_up_to_its_layer(layer, stride):
    decoder = AdaINDecoder(layer, width=4)
    vgg = VGG19Features(layers=(layer,), weights=None)
    assert len(_convs(decoder)) == len(_convs(vgg))
    channels = vgg(torch.rand(1, 3, 2 * stride, 2 * stride))[layer].shape[1]
    out = decoder(torch.randn(2, channels, 3, 2))
    assert out.shape == (2, 3, 3 * stride, 2 * stride)
    assert out.min() >= 0 and out.max() <= 1
    # No nearest-neighbour or transposed upsampling: the lattice's source.
    ups = [m for m in decoder.modules() if isinstance(m, torch.nn.Upsample)]
    assert len(ups) == stride.bit_length() - 1 and all(u.mode == "bilinear" for u in ups)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in decoder.modules())


def test_statistics_encoder_is_the_layer_statistics_and_learns_nothing():
    encoder = VGGStatisticsEncoder("relu3_1", vgg_weights=None)
    images = torch.rand(2, 3, 24, 40)
    expected = channel_statistics(encoder.vgg(images))
    torch.testing.assert_close(encoder(images), expected)
    assert encoder(images).shape == (2, encoder.style_dim) == (2, 512)
    assert list(encoder.parameters()) == [] and encoder.state_dict() == {}
    torch.testing.assert_close(encoder(expected), expected)  # precomputed statistics pass through
    for bad, match in ((torch.rand(1, 3, 2, 2), "^x:"), (torch.rand(1, 1, 32, 32), "^x:"),
                       (torch.rand(1, 7), "^x:"), (torch.rand(3, 32, 32), "^x:")):
        with pytest.raises(ValueError, match=match):
            encoder(bad)
    with pytest.raises(ValueError, match="^layer:"):
        VGGStatisticsEncoder("relu1_1", vgg_weights=None)


def test_generator_gives_the_content_features_the_style_statistics():
    torch.manual_seed(0)
    # The pretrained trunk: its activations' variances dwarf eps.
    generator = AdaINGenerator("relu3_1", width=4)
    encoder = VGGStatisticsEncoder("relu3_1")
    content, style = torch.rand(2, 3, 32, 24), torch.rand(1, 3, 40, 40)
    code = encoder(style)
    features = generator.encode(content)
    transferred = generator.transfer(features, generator.style_params(code, 2))
    assert_has_statistics(transferred, code, features)
    out = generator(content, code)
    assert out.shape == content.shape and generator.stride == 4
    # The decoder sees the activations of a VGG19 fed [0, 1], not 0-255 pixels.
    assert generator.feature_scale == pytest.approx(1 / 255)
    torch.testing.assert_close(out, generator.decode(features, code))


def test_generator_saves_only_its_decoder_and_shares_the_trunk_with_copies():
    generator = AdaINGenerator("relu4_1", width=4, vgg_weights=None)
    assert all(k.startswith("decoder.") for k in generator.state_dict())
    assert all(n.startswith("decoder.") for n, _ in generator.named_parameters())
    clone = copy.deepcopy(generator)
    assert clone.vgg is generator.vgg and clone.decoder is not generator.decoder
    generator.double()
    assert next(generator.vgg.parameters()).dtype == torch.float64


def test_generator_names_bad_arguments():
    generator = AdaINGenerator("relu4_1", width=4, vgg_weights=None)
    code = torch.rand(1, generator.style_dim)
    cases = (
        (lambda: generator(torch.rand(1, 3, 36, 32), code), "^content:"),  # not a multiple of 8
        (lambda: generator(torch.rand(1, 3, 8, 8), code), "^content:"),  # below min_size
        (lambda: generator(torch.rand(1, 1, 32, 32), code), "^content:"),
        (lambda: generator(torch.rand(2, 3, 32, 32), torch.rand(3, generator.style_dim)),
         "^style_code:"),
        (lambda: generator(torch.rand(1, 3, 32, 32), torch.rand(1, 8)), "^style_code:"),
        (lambda: generator.decode(torch.rand(1, 7, 4, 4), code), "^content_code:"),
        (lambda: AdaINGenerator("relu4_2", vgg_weights=None), "^layer:"),
        (lambda: AdaINGenerator(width=0, vgg_weights=None), "^width:"),
        (lambda: AdaINGenerator(eps=0.0, vgg_weights=None), "^eps:"),
    )
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()


def test_config_resolves_and_refuses_the_adain_combinations():
    config = TrainConfig(generator="adain")
    assert config.style_encoder == "statistics" and config.style_dim == 512
    assert TrainConfig(generator="adain", adain_layer="relu4_1").style_dim == 1024
    assert TrainConfig().style_encoder == "learned" and TrainConfig().style_dim == 8
    # The content loss sits where the AdaIN target is.
    assert config.content_layers == ("relu3_1",) and TrainConfig().content_layers == ("relu4_1",)
    bad = (
        (dict(generator="adain", style_encoder="learned"), "^style_encoder:"),
        (dict(style_encoder="statistics"), "^style_encoder:"),
        (dict(generator="adain", style_dim=8), "^style_dim:"),
        (dict(generator="adain", adain_layer="relu4_1", size=36), "^size:"),  # multiples of 8
        (dict(generator="adain", adain_layer="relu4_2"), "^adain_layer:"),
        (dict(generator="pix2pix"), "^generator:"),
        (dict(style_size=0), "^style_size:"),
    )
    for fields, match in bad:
        with pytest.raises(ValueError, match=match):
            TrainConfig(**fields)
    # Saved configurations read back to the same fields.
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_trainer_targets_the_adain_features_at_the_generator_layer(tmp_path):
    trainer = Trainer(TrainConfig(**TINY), CONTENT, STYLE, tmp_path, quiet=True, device="cpu")
    content = trainer.content_data.sample(2, torch.Generator().manual_seed(0))
    style = trainer.style_data.sample(2, torch.Generator().manual_seed(1))
    with torch.no_grad():
        features = trainer.vgg(content)
        code = trainer.style_encoder(style)
        targets = trainer._content_targets(features, code)
    layer = trainer.config.adain_layer
    variance, mean = torch.var_mean(features[layer], dim=(2, 3), keepdim=True, correction=0)
    style_mean, style_std = code[:, :, None, None].chunk(2, dim=1)
    expected = (features[layer] - mean) / (variance + 1e-5).sqrt() * style_std + style_mean
    torch.testing.assert_close(targets[layer], expected, rtol=1e-4, atol=1e-6)
    assert all(targets[k] is features[k] for k in features if k != layer)


def test_adain_model_trains_resumes_exactly_and_round_trips(tmp_path):
    straight = Trainer(TrainConfig(**TINY), CONTENT, STYLE, tmp_path / "a", quiet=True, device="cpu")
    straight.fit(4)
    first = Trainer(TrainConfig(**TINY), CONTENT, STYLE, tmp_path / "b", quiet=True, device="cpu")
    first.fit(2)
    resumed = Trainer(TrainConfig(**TINY), CONTENT, STYLE, tmp_path / "b", quiet=True,
                      resume=True, device="cpu")
    resumed.fit(4)
    for (name, p), q in zip(straight.generator.state_dict().items(),
                            resumed.generator.state_dict().values()):
        assert torch.equal(p, q), name
    gan = StyleTransferGAN.load(tmp_path / "b" / "checkpoint.pt", device="cpu")
    assert isinstance(gan.generator, AdaINGenerator)
    assert isinstance(gan.style_encoder, VGGStatisticsEncoder)
    saved = StyleTransferGAN.load(gan.save(tmp_path / "model.pt"), device="cpu")
    content, style = torch.rand(1, 3, 34, 42), torch.rand(1, 3, 40, 48)  # padded to 36 x 44
    out = saved.stylize(content, style=style, alpha=0.5)
    assert out.shape == content.shape
    torch.testing.assert_close(out, gan.stylize(content, style=style, alpha=0.5))
    # alpha=0 gives the content's own statistics: the decoder's rendering of
    # the content, not the style's.
    own = gan.stylize(content, style_code=gan.encode_style(content))
    torch.testing.assert_close(gan.stylize(content, style=style, alpha=0.0), own,
                               rtol=1e-4, atol=1e-5)


def test_memory_estimate_traces_the_frozen_trunk_on_meta():
    generator = AdaINGenerator("relu4_1", width=8, vgg_weights=None)
    encoder = VGGStatisticsEncoder("relu4_1", vgg_weights=None)
    trunk = generator.vgg
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small = memory.estimate_generate_bytes(generator, (1, 3, 64, 64))
        large = memory.estimate_generate_bytes(generator, (1, 3, 256, 256), style_encoder=encoder)
    assert generator.vgg is trunk and next(trunk.parameters()).device.type == "cpu"
    # The trunk's first activations (64 channels at full resolution) dominate.
    assert 64 * 64 * 64 * 4 < small < large
    assert large > 16 * small * 0.9


def test_cpu_autocast_only_where_bf16_is_native(monkeypatch):
    cpu = torch.device("cpu")
    assert isinstance(precision.autocast(cpu, cuda=True, cpu=False),
                      type(precision.autocast(cpu, cuda=False, cpu=False)))
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    with precision.autocast(cpu, cuda=False, cpu=True):
        assert not torch.is_autocast_enabled("cpu")
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    with precision.autocast(cpu, cuda=False, cpu=True):
        assert torch.is_autocast_enabled("cpu")


def test_bf16_stylising_stays_close_to_float32(monkeypatch):
    torch.manual_seed(0)
    gan = StyleTransferGAN(device="cpu", **{**TINY, "amp_cpu": True})
    content, style = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    exact = gan.stylize(content, style=style)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    fast = gan.stylize(content, style=style)
    assert fast.dtype == torch.float32
    assert (fast - exact).abs().max() < 0.03


def test_the_starter_model_ships_and_stylises_any_style():
    path = data.model_path("starter")
    assert path.stat().st_size < 20 * 2**20
    gan = StyleTransferGAN.pretrained(device="cpu")
    assert isinstance(gan.generator, AdaINGenerator) and gan.config.generator == "adain"
    content = data.load_image("camera", (64, 64))
    outputs = [gan.stylize(content, style=data.load_image(name, 64))
               for name in data.HELD_OUT_STYLE_IMAGES]
    for out in outputs:
        assert out.shape == content.shape and 0 <= out.min() and out.max() <= 1
    # A colourful style (the red retina) gives another picture than a grey
    # texture (gravel) does.
    gravel, retina = outputs[0], outputs[2]
    assert data.HELD_OUT_STYLE_IMAGES[0] == "gravel" and data.HELD_OUT_STYLE_IMAGES[2] == "retina"
    assert (gravel - retina).abs().mean() > 0.05
    for bad, error in (("nope", ValueError), (3, TypeError)):
        with pytest.raises(error, match="^name:"):
            StyleTransferGAN.pretrained(bad)


def test_stylize_command_uses_the_starter_model_without_a_checkpoint(tmp_path, capsys):
    from fastgram import cli

    status = cli.main(["stylize", str(data.image_path("camera")), "--style",
                       str(data.image_path("gravel")), "--size", "64", "--out",
                       str(tmp_path), "--device", "cpu"])
    assert status == 0, capsys.readouterr().err
    assert (tmp_path / "camera_stylized.png").is_file()
