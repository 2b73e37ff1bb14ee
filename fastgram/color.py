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
* YCbCr is linear in RGB, so the swap is two 3x3 matrix products (one for
  the stylised pixel, one for the content's), and Y is the luminance the
  eye reads structure and strokes from.

Large photos are converted in horizontal bands of rows (at most
:data:`BAND_BYTES` per band-sized tensor) written into the output, which
may be ``stylized`` itself (``out=stylized``), through one band-sized
buffer: the memory beyond the images is one band, not copies of the whole
image (converting a 4096x4096 pair at once took 776 MiB more).

The only pixels whose chroma is not exactly the content's are those the
clamp touches: a dark stylised luminance with a strongly coloured content
pixel can leave the RGB cube.
"""

from __future__ import annotations

from typing import Optional

import torch

from fastgram import validation

# The largest band-sized tensor of :func:`preserve_color`, in bytes.
BAND_BYTES = 16 * 2**20

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


def _swap_matrices(reference: torch.Tensor):
    """(luma, chroma): 3x3 matrices with ``luma @ s + chroma @ c`` the RGB
    of the stylised pixel ``s``'s Y with the content pixel ``c``'s Cb, Cr
    (YCbCr -> RGB of the Y row of one and the chroma rows of the other)."""
    forward = _matrix(reference)
    inverse = torch.linalg.inv(forward)
    return inverse[:, :1] @ forward[:1], inverse[:, 1:] @ forward[1:]


def _band_rows(shape, dtype: torch.dtype) -> int:
    """Rows per band so that a band of an image of ``shape`` (..., 3, H, W)
    in ``dtype`` holds at most :data:`BAND_BYTES` (one row at least)."""
    row_bytes = shape[-1] * dtype.itemsize
    for size in shape[:-2]:
        row_bytes *= size
    return max(1, BAND_BYTES // row_bytes)


def _check_out(out: torch.Tensor, stylized: torch.Tensor) -> None:
    validation.tensor(out, "out", (3, 4))
    if out.shape != stylized.shape:
        raise ValueError(f"out: expected the shape of stylized {tuple(stylized.shape)}, "
                         f"got {tuple(out.shape)}")
    validation.same_device(out, "out", stylized, "stylized")


def _as_batch(image: torch.Tensor) -> torch.Tensor:
    return image if image.dim() == 4 else image.unsqueeze(0)


def _band(image: torch.Tensor, top: int, bottom: int, dtype: torch.dtype) -> torch.Tensor:
    """Rows ``top:bottom`` of (B, 3, H, W) as (B, 3, positions) in ``dtype``
    (a view when the rows are contiguous)."""
    return image[:, :, top:bottom].to(dtype).flatten(2)


def preserve_color(stylized: torch.Tensor, content: torch.Tensor, *,
                   out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``stylized``'s luminance with ``content``'s chroma, in [0, 1] RGB.

    Both (B, 3, H, W) or (3, H, W) of the same shape, on the same device.
    The result goes to ``out`` if given (of their shape; ``stylized``
    itself converts in place), else to a new tensor (float32 at least).
    Computed band by band: see the module docstring.
    """
    validation.tensor(stylized, "stylized", (3, 4))
    validation.tensor(content, "content", (3, 4))
    if stylized.shape != content.shape:
        raise ValueError(f"content: expected the shape of stylized {tuple(stylized.shape)}, "
                         f"got {tuple(content.shape)}")
    validation.same_device(content, "content", stylized, "stylized")
    dtype = torch.promote_types(stylized.dtype, torch.float32)
    if out is None:
        out = torch.empty(stylized.shape, dtype=dtype, device=stylized.device)
    else:
        _check_out(out, stylized)
    styled, source, target = _as_batch(stylized), _as_batch(content), _as_batch(out)
    count, _, height, width = styled.shape
    luma, chroma = (m.to(dtype).expand(count, 3, 3) for m in _swap_matrices(stylized))
    rows = _band_rows(stylized.shape, dtype)
    # one band-sized buffer for every band: fresh temporaries per band would
    # be kept by the C allocator, several bands' worth
    work = torch.empty(count * 3 * min(rows, height) * width, dtype=dtype, device=stylized.device)
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        mixed = work[:count * 3 * (bottom - top) * width].view(count, 3, -1)
        torch.bmm(luma, _band(styled, top, bottom, dtype), out=mixed)
        mixed.baddbmm_(chroma, _band(source, top, bottom, dtype))
        # both bands are read before ``out``'s band is written: ``out`` may
        # be ``stylized`` or ``content``
        target[:, :, top:bottom] = mixed.view(count, 3, bottom - top, width).clamp_(0.0, 1.0)
    return out


__all__ = ["BAND_BYTES", "preserve_color", "rgb_to_ycbcr", "ycbcr_to_rgb"]
