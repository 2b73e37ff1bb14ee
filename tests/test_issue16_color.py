"""Colour preservation: the stylised luminance with the content's chroma."""

import pytest
import torch

from fastgram import StyleTransferGAN, color, data

from test_adain_generator import TINY as ADAIN_TINY  # the adain model with random VGG


@pytest.fixture(scope="module")
def gan():
    torch.manual_seed(0)
    return StyleTransferGAN(device="cpu", **ADAIN_TINY)


def test_ycbcr_round_trip_and_grey_has_no_chroma():
    x = torch.rand(2, 3, 5, 7)
    assert torch.allclose(color.ycbcr_to_rgb(color.rgb_to_ycbcr(x)), x, atol=1e-6)
    grey = torch.full((3, 4, 4), 0.3)
    ycc = color.rgb_to_ycbcr(grey)
    assert torch.allclose(ycc[0], torch.full((4, 4), 0.3), atol=1e-6)
    assert ycc[1:].abs().max() < 1e-6


def test_preserve_color_keeps_the_content_chroma_and_the_output_luminance(gan):
    # moderate colours, so the clamp to [0, 1] leaves most pixels alone
    content = 0.25 + 0.5 * torch.rand(1, 3, 32, 40)
    style = torch.rand(1, 3, 32, 32)
    plain = gan.stylize(content, style=style)
    kept = gan.stylize(content, style=style, preserve_color=True)
    assert kept.shape == plain.shape and 0 <= kept.min() and kept.max() <= 1
    inside = ((kept > 0) & (kept < 1)).all(dim=1, keepdim=True).expand(-1, 2, -1, -1)
    assert inside.float().mean() > 0.5
    ycc_kept, ycc_content = color.rgb_to_ycbcr(kept), color.rgb_to_ycbcr(content)
    assert (ycc_kept[:, 1:][inside] - ycc_content[:, 1:][inside]).abs().max() < 1e-5
    luma_in = inside[:, :1]
    assert (ycc_kept[:, :1][luma_in] - color.rgb_to_ycbcr(plain)[:, :1][luma_in]).abs().max() < 1e-5
    # the plain output does not keep the chroma
    assert (color.rgb_to_ycbcr(plain)[:, 1:] - ycc_content[:, 1:]).abs().mean() > 1e-3


def whole_image_swap(stylized, content):
    """The conversion of whole images: Y of one, Cb and Cr of the other."""
    luma = color.rgb_to_ycbcr(stylized)[..., :1, :, :]
    chroma = color.rgb_to_ycbcr(content)[..., 1:, :, :]
    return color.ycbcr_to_rgb(torch.cat([luma, chroma], dim=-3)).clamp(0, 1)


@pytest.mark.parametrize("shape", [(2, 3, 23, 17), (3, 23, 17)])
def test_preserve_color_in_bands_equals_the_whole_image(shape, monkeypatch):
    torch.manual_seed(0)
    stylized, content = torch.rand(shape), torch.rand(shape)
    expected = whole_image_swap(stylized, content)
    whole = color.preserve_color(stylized, content)  # one band
    assert (whole - expected).abs().max() < 1e-6
    row_bytes = 3 * 17 * 4 * (shape[0] if len(shape) == 4 else 1)
    for rows in (1, 5, 22):  # 5 and 22 do not divide the 23 rows
        monkeypatch.setattr(color, "BAND_BYTES", rows * row_bytes)
        banded = color.preserve_color(stylized, content)
        # equal up to the matrix products' last bit (their kernels vary with the band's size)
        assert (banded - whole).abs().max() < 1e-6 and (banded - expected).abs().max() < 1e-6
    # in place: the result is written into ``stylized``, here a cropped view
    kept = torch.cat([stylized, torch.rand(shape)], dim=-1)[..., :17]
    assert color.preserve_color(kept, content, out=kept) is kept
    assert (kept - expected).abs().max() < 1e-6


def test_preserve_color_bad_arguments(gan):
    x = torch.rand(3, 16, 16)
    with pytest.raises(TypeError, match="^preserve_color:"):
        gan.stylize(x, style=x, preserve_color="yes")
    with pytest.raises(ValueError, match="^content:"):
        color.preserve_color(torch.rand(3, 4, 4), torch.rand(3, 4, 5))
    with pytest.raises(ValueError, match="^out:"):
        color.preserve_color(x, x, out=torch.rand(3, 16, 15))
    with pytest.raises(TypeError, match="^out:"):
        color.preserve_color(x, x, out=x.long())
    with pytest.raises(ValueError, match="^image:"):
        color.rgb_to_ycbcr(torch.rand(4, 4, 4))


def test_stylize_command_preserve_color(tmp_path, capsys):
    from fastgram import cli

    status = cli.main(["stylize", str(data.image_path("camera")), "--style",
                       str(data.image_path("gravel")), "--size", "32", "--out", str(tmp_path),
                       "--device", "cpu", "--preserve-color"])
    assert status == 0, capsys.readouterr().err
    assert (tmp_path / "camera_stylized.png").is_file()
