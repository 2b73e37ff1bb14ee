"""Regional styles (masks) in tiles: each region normalised with its
mask-weighted statistics over the whole image, as untiled."""

import pytest
import torch

from fastgram import data, memory, tiling
from fastgram.models.regions import masked_statistics

from test_issue16_tiling import starter  # noqa: F401 (the shipped model in float32)


def soft_masks(height, width):
    """Three soft regions summing to 1: a left-right ramp split by a blob."""
    ramp = torch.linspace(0, 1, width).expand(height, width)
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    blob = torch.exp(-((yy - height / 2) ** 2 + (xx - width / 3) ** 2) / (0.1 * height * width))
    return [(1 - ramp) * (1 - blob), ramp * (1 - blob), blob]


@pytest.fixture(scope="module")
def scene(starter):  # noqa: F811
    content = data.load_image("coffee", (70, 90))  # padded to the stride, masks with it
    codes = starter.encode_style([data.image_path(name) for name in ("retina", "gravel")])
    codes = torch.cat([codes, codes.mean(dim=0, keepdim=True)])
    return content, codes, soft_masks(70, 90)


def test_tiled_regions_equal_the_whole_image(starter, scene):  # noqa: F811
    content, codes, masks = scene
    whole = starter.stylize(content, style_code=codes, masks=masks)
    for tile in (20, 36, 52):  # none divides the image
        tiled = starter.stylize(content, style_code=codes, masks=masks, tile=tile)
        assert tiled.shape == whole.shape
        assert (tiled - whole).abs().max() < 1e-4, tile
    # the regions matter: the first style alone differs
    assert (starter.stylize(content, style_code=codes[:1]) - whole).abs().max() > 1e-2


def test_tiled_regions_with_alpha(starter, scene):  # noqa: F811
    content, codes, masks = scene
    whole = starter.stylize(content, style_code=codes, masks=masks, alpha=0.3)
    tiled = starter.stylize(content, style_code=codes, masks=masks, alpha=0.3, tile=36)
    assert (tiled - whole).abs().max() < 1e-4


def test_tiled_regions_with_features_in_a_file(starter, scene, monkeypatch):  # noqa: F811
    content, codes, masks = scene
    whole = starter.stylize(content, style_code=codes, masks=masks)
    monkeypatch.setattr(tiling, "IN_MEMORY_FEATURE_BYTES", 0)
    tiled = starter.stylize(content, style_code=codes, masks=masks, tile=40)
    assert (tiled - whole).abs().max() < 1e-4


def test_an_empty_region_and_a_full_one_are_the_plain_stylisation(starter, scene):  # noqa: F811
    content, codes, _ = scene
    full, empty = torch.ones(70, 90), torch.zeros(70, 90)
    plain = starter.stylize(content, style_code=codes[:1])
    placed = starter.stylize(content, style_code=codes[:2], masks=[full, empty], tile=36)
    assert (placed - plain).abs().max() < 1e-4


def test_regions_are_tiled_when_the_image_does_not_fit(starter, scene, monkeypatch):  # noqa: F811
    content, codes, masks = scene
    whole = starter.stylize(content, style_code=codes, masks=masks)
    estimate = memory.estimate_generate_bytes(starter.generator, (1, 3, 72, 92))
    monkeypatch.setenv(memory.ENV_VAR, str(int(estimate * 0.8)))
    auto = starter.stylize(content, style_code=codes, masks=masks)
    assert (auto - whole).abs().max() < 1e-4


def test_tiled_features_sum_the_masked_statistics(starter):  # noqa: F811
    generator = starter.generator
    batch = data.load_image("camera", (48, 64)).repeat(2, 1, 1, 1)
    batch[1] = batch[1].flip(-1)
    masks = torch.stack(soft_masks(12, 16)).unsqueeze(1)  # at the features' resolution
    features = generator.encode(batch)
    want_mean, want_var = masked_statistics(features.double(), masks.double())
    _, mean, var = tiling.tiled_features(generator, batch, 20, keep=False, masks=masks)
    assert mean.shape == var.shape == (2, 3, features.shape[1])
    assert torch.allclose(mean, want_mean, rtol=1e-5, atol=1e-6)
    assert torch.allclose(var, want_var, rtol=1e-4, atol=1e-6)
    # without masks: the whole image's statistics
    _, mean, var = tiling.tiled_features(generator, batch, 20, keep=False)
    assert torch.allclose(mean, features.double().mean(dim=(2, 3)), rtol=1e-5, atol=1e-6)


def test_bad_tiled_regions(starter):  # noqa: F811
    generator = starter.generator
    batch = torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match=r"^masks: expected \(K, 1, 8, 8\)"):
        tiling.tiled_features(generator, batch, 20, masks=torch.ones(2, 1, 32, 32))
    with pytest.raises(TypeError, match="^masks:"):
        tiling.tiled_features(generator, batch, 20, masks=torch.ones(2, 1, 8, 8).long())
    with pytest.raises(TypeError, match="^masks:"):
        tiling.tiled_render(generator, batch, torch.rand(1, 1, 512), 20, masks=[[1.0]])
    params = torch.rand(1, generator.style_dim)
    with pytest.raises(ValueError, match=r"^params: expected shape \(1, 2, 512\)"):
        tiling.tiled_render(generator, batch, params, 20, masks=torch.ones(2, 1, 8, 8) / 2)
    with pytest.raises(ValueError, match="^params:"):
        tiling.tiled_render(generator, batch, params[:, :10], 20)
