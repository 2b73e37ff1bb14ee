"""Layer-by-layer tiles for the MUNIT-design generator and style encoder
(fastgram.layer_tiling): equal to the whole-image forward, every norm with
the whole image's statistics. Large sizes: scripts/measure_tiling.py."""

import pytest
import torch

from fastgram import layer_tiling, tiling
from fastgram.models import Generator, StyleEncoder
from fastgram.nn import InstanceNorm2d


def _generator(**kwargs):
    torch.manual_seed(0)
    generator = Generator(ngf=4, style_dim=4, n_res_blocks=2, mlp_dim=16, **kwargs).eval()
    with torch.no_grad():  # affine norms away from their identity start
        for module in generator.modules():
            if isinstance(module, (torch.nn.GroupNorm, torch.nn.InstanceNorm2d)) and module.affine:
                module.weight.normal_(1.0, 0.3)
                module.bias.normal_(0.0, 0.3)
    return generator


def _whole(generator, content, params, masks=None):
    code = generator.encode(content)
    if masks is None:
        return generator.render(code, params)
    return generator.render_regions(code, params, masks)


@pytest.fixture(scope="module")
def generator():
    return _generator()


@pytest.fixture(scope="module")
def inputs(generator):
    torch.manual_seed(1)
    content = torch.rand(2, 3, 52, 68)  # tiles below divide neither side
    params = generator.style_params(torch.randn(2, generator.style_dim), 2).detach()
    return content, params


@pytest.mark.parametrize("tile", [16, 20, 36, 100])
def test_tiles_equal_the_whole_generator(generator, inputs, tile):
    content, params = inputs
    with torch.no_grad():
        whole = _whole(generator, content, params)
        tiled = layer_tiling.render(generator, content, params, tile)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max() < 1e-5


def test_naive_tiles_of_the_generator_would_not_be_equal(generator, inputs):
    """The comparison above can fail: halves with their own statistics differ."""
    content, params = inputs
    content = content[..., :64]
    with torch.no_grad():
        whole = _whole(generator, content, params)
        halves = torch.cat([_whole(generator, content[..., :32], params),
                            _whole(generator, content[..., 32:], params)], dim=-1)
    assert (halves - whole).abs().max() > 1e-3


def test_stores_in_temporary_files_give_the_same_result(generator, inputs, monkeypatch):
    content, params = inputs
    monkeypatch.setattr(tiling, "IN_MEMORY_FEATURE_BYTES", 0)
    with torch.no_grad():
        assert (layer_tiling.render(generator, content, params, 24)
                - _whole(generator, content, params)).abs().max() < 1e-5


def test_other_norms_and_activations_are_tiled():
    """Affine instance norms (fastgram's and torch's) and group norms with
    several groups after the upsamplings."""
    for norm in (lambda c: InstanceNorm2d(c, affine=True),
                 lambda c: torch.nn.InstanceNorm2d(c, affine=True)):
        generator = _generator(norm_layer=norm,
                               upsample_norm_layer=lambda c: torch.nn.GroupNorm(2, c))
        content = torch.rand(1, 3, 40, 48)
        params = generator.style_params(torch.randn(1, generator.style_dim), 1).detach()
        with torch.no_grad():
            diff = (layer_tiling.render(generator, content, params, 16)
                    - _whole(generator, content, params)).abs().max()
        assert diff < 1e-5


def test_regional_styles_in_tiles(generator, inputs):
    content, params = inputs
    torch.manual_seed(2)
    other = generator.style_params(torch.randn(2, generator.style_dim), 2).detach()
    params = torch.stack([params, other], dim=1)                 # (B, K, P)
    soft = torch.rand(1, 1, 13, 17)
    masks = torch.cat([soft, 1 - soft])                          # (K, 1, H/4, W/4)
    with torch.no_grad():
        whole = _whole(generator, content, params, masks)
        for tile in (16, 28):
            assert (layer_tiling.render(generator, content, params, tile, masks=masks)
                    - whole).abs().max() < 1e-5


@pytest.mark.parametrize("shape", [(2, 3, 64, 80), (1, 3, 100, 77)])
def test_style_encoder_in_tiles(shape):
    torch.manual_seed(3)
    encoder = StyleEncoder(style_dim=4, ndf=4).eval()
    image = torch.rand(*shape)
    with torch.no_grad():
        whole = encoder(image)
        for tile in (32, 48, 64):
            assert torch.allclose(layer_tiling.encode_style(encoder, image, tile), whole,
                                  rtol=1e-5, atol=1e-6)


def test_progress_names_the_layer_passes(generator, inputs, capsys):
    content, params = inputs
    with torch.no_grad():
        layer_tiling.render(generator, content[:1], params[:1], 32, progress=True)
    err = capsys.readouterr().err
    # 3 encoder convolutions, 2 residual and 2 AdaIN blocks of 2, 2 upsamplings, the last conv
    assert "stylise, layer 14/14: tile" in err


def test_smallest_tiles_and_bad_tiles(generator):
    assert layer_tiling.smallest_tile(generator) == 16
    assert layer_tiling.check_tile(23, generator) == 20
    with pytest.raises(ValueError, match="^tile: expected at least 16 pixels"):
        layer_tiling.check_tile(12, generator)
    with pytest.raises(ValueError, match="^tile:"):
        layer_tiling.check_tile(0, generator)
    with pytest.raises(TypeError, match="^tile: expected an int"):
        layer_tiling.check_tile(16.5, generator)
    with pytest.raises(ValueError, match="^tile: cannot tile a Linear"):
        layer_tiling.check_tile(64, torch.nn.Linear(2, 2))


def test_norms_that_cannot_be_tiled_are_named(inputs):
    content, _ = inputs
    generator = _generator(norm_layer=torch.nn.BatchNorm2d)
    params = generator.style_params(torch.randn(2, generator.style_dim), 2).detach()
    with pytest.raises(ValueError, match="^tile: the generator's norm layer 0 .* \\(BatchNorm2d\\)"):
        layer_tiling.render(generator, content, params, 32)


# -- through StyleTransferGAN ---------------------------------------------------


@pytest.fixture(scope="module")
def munit():
    from fastgram import StyleTransferGAN

    from test_issue16_mixing_regions import MUNIT_TINY

    torch.manual_seed(4)
    return StyleTransferGAN(device="cpu", **{**MUNIT_TINY, "n_res_blocks": 2})


def test_stylize_in_tiles_equals_whole_for_the_munit_design(munit):
    torch.manual_seed(5)
    content, style, other = torch.rand(3, 70, 90), torch.rand(3, 32, 32), torch.rand(3, 40, 40)
    soft = torch.rand(1, 70, 90)
    cases = [dict(), dict(alpha=0.4), dict(preserve_color=True),
             dict(style=[style, other], style_weights=[0.7, 0.3]),
             dict(style=[style, other], masks=[soft, 1 - soft]),
             dict(style=[style, other], masks=[soft, 1 - soft], alpha=0.6)]
    for case in cases:
        kwargs = {"style": style, **case}
        whole = munit.stylize(content, **kwargs)
        for tile in (16, 44):
            tiled = munit.stylize(content, tile=tile, **kwargs)
            assert tiled.shape == whole.shape == (3, 70, 90)
            assert (tiled - whole).abs().max() < 1e-5, (case, tile)


def test_encode_style_in_tiles_for_the_munit_design(munit, monkeypatch):
    style = torch.rand(3, 96, 80)
    monkeypatch.setattr(munit.config, "style_size", 96)
    whole = munit.encode_style(style)
    tiled = munit.encode_style(style, tile=32)
    assert torch.allclose(tiled, whole, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="^tile: expected at least 32 pixels"):
        munit.encode_style(style, tile=16)


def test_munit_design_is_tiled_when_the_image_does_not_fit(munit, monkeypatch, capsys):
    from fastgram import memory

    content, style = torch.rand(3, 64, 96), torch.rand(3, 32, 32)
    whole = munit.stylize(content, style=style)
    estimate = memory.estimate_generate_bytes(munit.generator, (1, 3, 64, 96))
    monkeypatch.setattr(tiling, "IN_MEMORY_FEATURE_BYTES", 0)  # nothing kept in memory
    monkeypatch.setenv(memory.ENV_VAR, str(int(estimate * 0.8)))
    auto = munit.stylize(content, style=style, progress=True)
    assert (auto - whole).abs().max() < 1e-5
    assert "stylise, layer 1/" in capsys.readouterr().err


def test_a_style_encoder_that_cannot_be_tiled_is_named():
    from fastgram import StyleTransferGAN

    from test_issue16_mixing_regions import MUNIT_TINY

    gan = StyleTransferGAN(device="cpu", style_encoder="vgg", **MUNIT_TINY)
    content, style = torch.rand(3, 32, 32), torch.rand(3, 32, 32)
    with pytest.raises(ValueError, match="^tile: cannot tile a VGGStyleEncoder"):
        gan.encode_style(style, tile=32)
    with pytest.raises(ValueError, match="^alpha, tile: alpha < 1 in tiles needs a style encoder"):
        gan.stylize(content, style=style, alpha=0.5, tile=16)
    assert gan.stylize(content, style=style, tile=16).shape == (3, 32, 32)  # alpha = 1 tiles
