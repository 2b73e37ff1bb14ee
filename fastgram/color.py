"""Colour preservation: keep the content's colours, take the style's
light and texture.

Method: luminance-only transfer (Gatys et al., "Preserving Color in Neural
Artistic Style Transfer", 2016), applied to the stylised image. The output
and the content are converted to YCbCr (ITU-R BT.601, full range, on [0, 1]
RGB); the result keeps the output's luminance Y and the content's chroma
Cb, Cr, and is converted back to RGB (clamped to [0, 1]).

Why this method rather than restoring the content's colour statistics by
matching per-channel means and variances of the output to the content:

* it is exact per pixel: every pixel's chroma is the content's, so hues
  never shift locally (statistics matching keeps only the averages and can
  still paint a blue sky orange where the style put orange);
* it needs nothing but the two images and no retraining, so it works on
  every model, on tiles (a pixel-wise map gives the same result tile by
  tile) and on regions;
* YCbCr is linear in RGB, so the swap is one matrix product, and Y is the
  luminance the eye reads structure and strokes from.

The only pixels whose chroma is not exactly the content's are those the
clamp touches: a dark stylised luminance with a strongly coloured content
pixel can leave the RGB cube.
"""

from __future__ import annotations

import torch

from fastgram import validation

# BT.601 full-range RGB -> YCbCr (offsets 0.5 on the chroma rows are left
# out: they cancel in the swap).
_RGB_TO_YCBCR = (
    (0.299, 0.587, 0.114),
    (-0.168735892, -0.331264108, 0.5),
    (0.5, -0.418687589, -0.081312411),
)


def _matrix(reference: torch.Tensor) -> torch.Tensor:
    return torch.tensor(_RGB_TO_YCBCR, dtype=torch.float64, device=reference.device)


def _mix(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    # in the image's precision (float32 at least): a float64 copy of a
    # large photo would cost twice its memory
    dtype = torch.promote_types(image.dtype, torch.float32)
    return torch.einsum("ij,...jhw->...ihw", matrix.to(dtype), image.to(dtype))


def rgb_to_ycbcr(image: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB -> Y, Cb, Cr (chroma centred on 0, not 0.5)."""
    validation.tensor(image, "image", (3, 4))
    if image.shape[-3] != 3:
        raise ValueError(f"image: expected 3 (RGB) channels, got shape {tuple(image.shape)}")
    return _mix(_matrix(image), image)


def ycbcr_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (not clamped)."""
    validation.tensor(image, "image", (3, 4))
    if image.shape[-3] != 3:
        raise ValueError(f"image: expected 3 (Y, Cb, Cr) channels, got shape {tuple(image.shape)}")
    inverse = torch.linalg.inv(_matrix(image))
    return _mix(inverse, image)


def preserve_color(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """``stylized``'s luminance with ``content``'s chroma, in [0, 1] RGB.

    Both (B, 3, H, W) or (3, H, W) of the same shape, on the same device.
    """
    validation.tensor(stylized, "stylized", (3, 4))
    validation.tensor(content, "content", (3, 4))
    if stylized.shape != content.shape:
        raise ValueError(f"content: expected the shape of stylized {tuple(stylized.shape)}, "
                         f"got {tuple(content.shape)}")
    validation.same_device(content, "content", stylized, "stylized")
    luma = rgb_to_ycbcr(stylized)[..., :1, :, :]
    chroma = rgb_to_ycbcr(content.to(stylized.dtype))[..., 1:, :, :]
    return ycbcr_to_rgb(torch.cat([luma, chroma], dim=-3)).clamp_(0.0, 1.0)


__all__ = ["preserve_color", "rgb_to_ycbcr", "ycbcr_to_rgb"]
