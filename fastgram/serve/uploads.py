"""Checks of an uploaded image: size in bytes, type, pixels. Each failure
is an :class:`UploadError` whose message names the field and the fix."""

from __future__ import annotations

import io
from typing import Optional

from PIL import Image

# Formats every browser shows and PIL reads without extra libraries.
ALLOWED_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP", "BMP": "BMP"}
ALLOWED_TEXT = "PNG, JPEG, WebP or BMP"
# Beyond this PIL's own decompression-bomb guard would stop it anyway; a
# photo of 40 megapixels is not refused.
MAX_PIXELS = 40_000_000


class UploadError(ValueError):
    """A bad upload: the message is shown to the user as it is."""


def read_image(field: str, name: str, payload: bytes, max_bytes: int) -> Image.Image:
    """The RGB image in ``payload`` (the bytes of the file ``name`` sent as
    ``field``), or an :class:`UploadError` saying what is wrong with it."""
    label = f"{field}: {name!r}" if name else f"{field}:"
    if not payload:
        raise UploadError(f"{label} is empty; choose an image file")
    if len(payload) > max_bytes:
        raise UploadError(f"{label} is too large ({_megabytes(len(payload))}); "
                          f"upload at most {_megabytes(max_bytes)}")
    try:
        with Image.open(io.BytesIO(payload)) as probe:
            kind: Optional[str] = probe.format
            width, height = probe.size
    except Image.DecompressionBombError:
        raise UploadError(f"{label} has too many pixels; upload a smaller image") from None
    except Exception:
        raise UploadError(f"{label} is not an image (or a damaged one); upload a "
                          f"{ALLOWED_TEXT} file") from None
    if kind not in ALLOWED_FORMATS:
        raise UploadError(f"{label} is a {kind or 'unknown'} image, a type the page does not "
                          f"take; upload a {ALLOWED_TEXT} file")
    if width * height > MAX_PIXELS:
        raise UploadError(f"{label} is too large ({width} x {height} pixels); upload at most "
                          f"{MAX_PIXELS // 1_000_000} megapixels")
    try:
        with Image.open(io.BytesIO(payload)) as image:
            return image.convert("RGB")
    except Exception as exc:  # the header was fine, the data is not
        raise UploadError(f"{label} cannot be decoded ({exc}); upload another file") from None


def fit_within(image: Image.Image, max_side: int) -> Image.Image:
    """``image`` scaled down so that its longer side is at most ``max_side``."""
    if max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(8, round(image.width * scale)), max(8, round(image.height * scale)))
    return image.resize(size, Image.BICUBIC)


def _megabytes(count: int) -> str:
    return f"{count / 1_000_000:.1f} MB"
