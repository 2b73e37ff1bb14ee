"""Weighted style mixing and regional styles (masks)."""

import pytest
import torch
from PIL import Image

from fastgram import StyleTransferGAN, data
from fastgram.models.regions import masked_statistics, regional_adain

from test_adain_generator import TINY as ADAIN_TINY

MUNIT_TINY = dict(size=32, style_dim=4, ngf=4, ndf=4, n_res_blocks=1, num_scales=1,
                  vgg_weights=None)


@pytest.fixture(scope="module")
def adain():
    torch.manual_seed(0)
    return StyleTransferGAN(device="cpu", **ADAIN_TINY)


@pytest.fixture(scope="module")
def starter():
    """The shipped model in float32 (bf16 roundings would blur 1e-5 comparisons)."""
    from fastgram import precision

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(precision, "cpu_has_native_bf16", lambda: False)
        yield StyleTransferGAN.pretrained(device="cpu")


@pytest.fixture(scope="module")
def munit():
    torch.manual_seed(1)
    return StyleTransferGAN(device="cpu", **MUNIT_TINY)


def styles(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, 32, 32, generator=g) ** (k + 1) for k in range(n)]


# -- mixing ---------------------------------------------------------------------


def test_one_style_with_weight_one_is_the_plain_stylisation(adain, munit):
    content = torch.rand(3, 32, 40)
    for gan in (adain, munit):
        style = styles(1)
        plain = gan.stylize(content, style=style[0])
        assert torch.allclose(gan.stylize(content, style=style, style_weights=[1.0]), plain,
                              atol=1e-6)
        assert torch.allclose(gan.stylize(content, style=style, style_weights=[7]), plain,
                              atol=1e-6)


def test_mixing_equals_the_weighted_mean_code_for_the_starter_design(starter):
    adain = starter
    content, mix = data.load_image("camera", (32, 40)), styles(3)
    codes = adain.encode_style(mix)
    weights = [0.5, 0.3, 0.2]
    mixed = adain.stylize(content, style=mix, style_weights=[5, 3, 2])  # normalised
    expected = adain.stylize(content, style_code=(torch.tensor(weights)[:, None] * codes).sum(0))
    assert (mixed - expected).abs().max() < 1e-5
    # and a zero weight drops a style
    only_first = adain.stylize(content, style=mix, style_weights=[1, 0, 0])
    assert torch.allclose(only_first, adain.stylize(content, style=mix[0]), atol=1e-5)
    assert (mixed - only_first).abs().max() > 1e-3


def test_mixing_blends_the_adain_parameters_of_the_munit_decoder(munit):
    content = torch.rand(1, 3, 32, 32)
    codes = torch.randn(2, munit.config.style_dim)
    mixed = munit.stylize(content, style_code=codes, style_weights=[0.25, 0.75])
    g = munit.generator
    params = g.style_params(codes, 2)
    expected = g.render(g.encode(content), 0.25 * params[:1] + 0.75 * params[1:])
    assert (mixed - expected).abs().max() < 1e-5
    # the same list of contents all get the mix
    many = munit.stylize([content, content], style_code=codes, style_weights=[0.25, 0.75])
    assert torch.equal(many[0], many[1])


@pytest.mark.parametrize("weights, error, message", [
    ([1.0], ValueError, "expected 2 weights"),
    ([1.0, -0.5], ValueError, "^style_weights:"),
    ([0.0, 0.0], ValueError, "summing to a positive number"),
    ([1.0, float("nan")], ValueError, "^style_weights:"),
    ("0.5 0.5", TypeError, "^style_weights:"),
    ([1.0, "a"], TypeError, "^style_weights:"),
])
def test_bad_style_weights(adain, weights, error, message):
    with pytest.raises(error, match=message):
        adain.stylize(torch.rand(3, 16, 16), style=styles(2), style_weights=weights)


# -- regions ---------------------------------------------------------------------


def test_regional_adain_is_plain_adain_inside_each_hard_region():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8, 10) * 3 + 1
    masks = torch.zeros(2, 1, 8, 10)
    masks[0, :, :, :4] = 1
    masks[1, :, :, 4:] = 1
    weight, bias = torch.rand(2, 2, 5) + 0.5, torch.randn(2, 2, 5)
    out = regional_adain(x, masks, weight, bias, 1e-5)
    for k, cols in enumerate((slice(0, 4), slice(4, 10))):
        part = x[..., cols]
        mean = part.mean(dim=(2, 3), keepdim=True)
        var = part.var(dim=(2, 3), unbiased=False, keepdim=True)
        expected = (part - mean) / torch.sqrt(var + 1e-5) * weight[:, k, :, None, None] \
            + bias[:, k, :, None, None]
        assert torch.allclose(out[..., cols], expected, atol=1e-5)
    mean, var = masked_statistics(x, torch.ones(1, 1, 8, 10))
    assert torch.allclose(mean[:, 0], x.mean(dim=(2, 3)), atol=1e-6)
    assert torch.allclose(var[:, 0], x.var(dim=(2, 3), unbiased=False), atol=1e-5)


def test_a_mask_covering_everything_is_the_plain_stylisation(adain, munit):
    content = torch.rand(3, 30, 37)  # padded to the stride, masks with it
    a, b = styles(2)
    full, empty = torch.ones(30, 37), torch.zeros(1, 30, 37)
    for gan in (adain, munit):
        plain = gan.stylize(content, style=a)
        placed = gan.stylize(content, style=[a, b], masks=[full, empty])
        assert (placed - plain).abs().max() < 1e-4


def test_two_regions_take_their_own_styles(starter, tmp_path):
    adain = starter
    content = data.load_image("camera", (32, 64))
    a, b = styles(2)
    left = torch.zeros(32, 64)
    left[:, :32] = 1
    right_image = Image.fromarray(((1 - left).numpy() * 255).astype("uint8"))
    path = tmp_path / "left.png"
    Image.fromarray((left.numpy() * 255).astype("uint8")).save(path)
    placed = adain.stylize(content, style=[a, b], masks=[path, right_image])
    only_a = adain.stylize(content, style=a)
    only_b = adain.stylize(content, style=b)
    # away from the seam each half looks like its own style, not the other
    near = lambda x, y: (x - y).abs().mean().item()
    assert near(placed[..., :20], only_a[..., :20]) < near(placed[..., :20], only_b[..., :20])
    assert near(placed[..., 44:], only_b[..., 44:]) < near(placed[..., 44:], only_a[..., 44:])
    # masks follow a resize of the content
    resized = adain.stylize(content, style=[a, b], masks=[left, 1 - left], size=16)
    assert resized.shape[-2:] == (16, 32)


def test_bad_masks(adain):
    x = torch.rand(3, 16, 16)
    a, b = styles(2)
    ones, zeros = torch.ones(16, 16), torch.zeros(16, 16)
    cases = [
        (dict(masks=[ones]), ValueError, "^masks: expected 2 masks"),
        (dict(masks=[ones, torch.ones(16, 17)]), ValueError, r"^masks\[1\]: expected the content"),
        (dict(masks=[zeros, zeros]), ValueError, "^masks: 256 pixel"),
        (dict(masks=[ones * 2, zeros]), ValueError, r"^masks\[0\]: expected values in \[0, 1\]"),
        (dict(masks=[ones, torch.ones(2, 16, 16)]), ValueError, r"^masks\[1\]:"),
        (dict(masks=[ones, 3]), TypeError, r"^masks\[1\]:"),
        (dict(masks=[ones, "missing.png"]), FileNotFoundError, r"^masks\[1\]:"),
        (dict(masks=[ones, zeros], style_weights=[1, 1]), ValueError, "^style_weights, masks:"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            adain.stylize(x, style=[a, b], **kwargs)
    with pytest.raises(ValueError, match="^masks: expected one content"):
        adain.stylize([x, x], style=[a, b], masks=[ones, zeros])


# -- the command line ----------------------------------------------------------------


def test_stylize_command_mixes_and_places_styles(tmp_path, capsys):
    from fastgram import cli

    photo = data.load_image("camera", (32, 48))
    content = tmp_path / "photo.png"
    Image.fromarray((photo[0].permute(1, 2, 0).numpy() * 255).astype("uint8")).save(content)
    styles_ = [str(data.image_path(name)) for name in ("gravel", "retina")]
    mask = torch.zeros(32, 48)
    mask[:, :24] = 1
    masks = []
    for i, m in enumerate((mask, 1 - mask)):
        masks.append(str(tmp_path / f"m{i}.png"))
        Image.fromarray((m.numpy() * 255).astype("uint8")).save(masks[-1])
    base = ["stylize", str(content), "--device", "cpu"]
    for style in styles_:
        base += ["--style", style]
    assert cli.main([*base, "--style-weights", "0.7", "0.3", "--out", str(tmp_path / "mix")]) == 0
    assert (tmp_path / "mix" / "photo_stylized.png").is_file()
    mask_args = ["--mask", masks[0], "--mask", masks[1]]
    assert cli.main([*base, *mask_args, "--out", str(tmp_path / "regions")]) == 0
    assert (tmp_path / "regions" / "photo_stylized.png").is_file()
    capsys.readouterr()
    for extra, message in ((["--style-weights", "1"], "--style-weights: expected 2 values"),
                           ([], "--style: 2 styles given"),
                           ([*mask_args, "--style-weights", "1", "1"], "give one of them")):
        assert cli.main([*base, *extra, "--out", str(tmp_path / "bad")]) == 2
        assert message in capsys.readouterr().err
