"""Tiled stylisation with the whole image's AdaIN statistics (small sizes:
scripts/measure_tiling.py measures 1024² and 2048²)."""

import pytest
import torch

from fastgram import StyleTransferGAN, data, tiling

from test_issue16_mixing_regions import MUNIT_TINY


@pytest.fixture(scope="module")
def starter():
    from fastgram import precision

    with pytest.MonkeyPatch.context() as patch:  # float32: comparisons to 1e-5
        patch.setattr(precision, "cpu_has_native_bf16", lambda: False)
        yield StyleTransferGAN.pretrained(device="cpu")


def test_tiles_equal_the_whole_image(starter):
    content = data.load_image("coffee", (120, 150))  # padded to the stride, cropped back
    style = data.image_path("retina")
    whole = starter.stylize(content, style=style)
    for tile in (20, 36, 64, 100):  # none divides the image
        tiled = starter.stylize(content, style=style, tile=tile)
        assert tiled.shape == whole.shape
        assert (tiled - whole).abs().max() < 1e-4, tile
    # alpha < 1 blends with the content's own statistics, summed over tiles
    half = starter.stylize(content, style=style, alpha=0.4)
    assert (starter.stylize(content, style=style, alpha=0.4, tile=48) - half).abs().max() < 1e-4
    # colour preservation and mixing work in tiles too
    kept = starter.stylize(content, style=style, preserve_color=True)
    assert (starter.stylize(content, style=style, preserve_color=True, tile=48) - kept).abs().max() < 1e-4


def test_features_kept_in_a_temporary_file_give_the_same_result(starter, monkeypatch):
    content = data.load_image("coffee", (64, 96))
    code = starter.encode_style(data.image_path("retina"))
    whole = starter.stylize(content, style_code=code)
    monkeypatch.setattr(tiling, "IN_MEMORY_FEATURE_BYTES", 0)
    assert (starter.stylize(content, style_code=code, tile=40) - whole).abs().max() < 1e-4


def test_naive_tiles_would_not_be_equal(starter):
    """The check above can fail: each tile normalised with its own
    statistics differs from the whole image."""
    content = data.load_image("coffee", (64, 128))
    code = starter.encode_style(data.image_path("retina"))
    whole = starter.stylize(content, style_code=code)
    halves = torch.cat([starter.stylize(content[..., :64], style_code=code),
                        starter.stylize(content[..., 64:], style_code=code)], dim=-1)
    assert (halves - whole).abs().max() > 1e-2


def test_encode_style_in_tiles_equals_the_whole_image(starter, monkeypatch):
    style = data.load_image("retina", (96, 112))
    monkeypatch.setattr(starter.config, "style_size", 96)  # no resize to the default
    whole = starter.encode_style(style)
    tiled = starter.encode_style(style, tile=40)
    assert torch.allclose(tiled, whole, rtol=1e-4, atol=1e-3)


def test_tiles_are_chosen_when_the_image_does_not_fit(starter, monkeypatch, capsys):
    content = data.load_image("coffee", (96, 128))
    code = starter.encode_style(data.image_path("retina"))
    whole = starter.stylize(content, style_code=code)
    from fastgram import memory

    estimate = memory.estimate_generate_bytes(starter.generator, (1, 3, 96, 128))
    monkeypatch.setenv(memory.ENV_VAR, str(int(estimate * 0.8)))
    auto = starter.stylize(content, style_code=code, progress=True)
    assert (auto - whole).abs().max() < 1e-4
    assert "tile" in capsys.readouterr().err


def test_bad_tiles(starter):
    x = torch.rand(3, 64, 64)
    with pytest.raises(ValueError, match="^tile: expected at least 20 pixels"):
        starter.stylize(x, style=x, tile=16)
    with pytest.raises(ValueError, match="^tile:"):
        starter.stylize(x, style=x, tile=0)
    with pytest.raises(ValueError, match="^tile:"):
        starter.encode_style(x, tile=4)
    with pytest.raises(ValueError, match="^masks: expected 2 masks"):  # regions tile (see
        starter.stylize(x, style=[x, x], masks=[torch.ones(64, 64)], tile=32)  # tiled_regions)
    munit = StyleTransferGAN(device="cpu", **MUNIT_TINY)
    with pytest.raises(ValueError, match="^tile: expected at least 16 pixels"):  # layer tiles
        munit.stylize(x, style=x, tile=8)


def test_receptive_field_of_the_starter(starter):
    assert tiling.halos(starter.generator) == (16, 5)
    assert tiling.receptive_field(starter.generator) == 20


def test_stylize_command_tile(tmp_path, capsys):
    from fastgram import cli

    status = cli.main(["stylize", str(data.image_path("camera")), "--style",
                       str(data.image_path("gravel")), "--size", "48", "--tile", "24",
                       "--out", str(tmp_path), "--device", "cpu"])
    assert status == 0, capsys.readouterr().err
    assert (tmp_path / "camera_stylized.png").is_file()
    assert cli.main(["stylize", str(data.image_path("camera")), "--style",
                     str(data.image_path("gravel")), "--tile", "8", "--out", str(tmp_path),
                     "--device", "cpu"]) == 2
    assert "tile: expected at least" in capsys.readouterr().err
