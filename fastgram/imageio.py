"""Conversions between image files, PIL images and tensors.

Tensors are float32 RGB in [0, 1], (3, H, W) for one image and (B, 3, H, W)
for a batch.
"""

from __future__ import annotations

import os
import pathlib
from typing import Sequence, Union

import numpy as np
import torch
from PIL import Image

PathLike = Union[str, os.PathLike]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode as 8-bit RGB; 16-bit and float greyscale are rescaled,
    transparency is composited on white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        high = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        array = np.clip(array / high * 255.0, 0, 255).astype(np.uint8)
        image = Image.fromarray(array, mode="L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def read_image(path: PathLike) -> Image.Image:
    """Open ``path`` and return it as an RGB PIL image, fully loaded."""
    with Image.open(path) as image:
        image.load()
        return to_rgb(image)


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float32 (3, H, W) in [0, 1]."""
    array = np.asarray(to_rgb(image), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    """(3, H, W) tensor in [0, 1] (values outside are clipped) -> RGB PIL image."""
    if tensor.dim() != 3 or tensor.shape[0] != 3:
        raise ValueError(f"tensor: expected shape (3, H, W), got {tuple(tensor.shape)}")
    # a band of rows at a time: no float copies of a whole large image
    height, width = tensor.shape[1:]
    array = np.empty((height, width, 3), dtype=np.uint8)
    band = max(1, 2**22 // max(1, width))
    for top in range(0, height, band):
        rows = tensor[:, top:top + band].detach().float().clamp(0, 1).mul_(255).round_().byte()
        array[top:top + band] = rows.permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, mode="RGB")


def save_image(tensor: torch.Tensor, path: PathLike) -> pathlib.Path:
    """Write a (3, H, W) tensor to ``path`` (format from the suffix)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensor_to_pil(tensor).save(path)
    return path


def image_grid(rows: Sequence[Sequence[torch.Tensor]], pad: int = 2) -> torch.Tensor:
    """Tile rows of equally sized (3, H, W) images into one (3, H', W') image
    with ``pad`` white pixels between tiles."""
    if not rows or not rows[0]:
        raise ValueError("rows: expected at least one row with one image")
    height, width = rows[0][0].shape[1:]
    columns = max(len(row) for row in rows)
    grid = torch.ones(
        3, len(rows) * (height + pad) + pad, columns * (width + pad) + pad
    )
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            if tuple(image.shape) != (3, height, width):
                raise ValueError(
                    f"rows[{r}][{c}]: expected shape (3, {height}, {width}), got {tuple(image.shape)}"
                )
            top, left = pad + r * (height + pad), pad + c * (width + pad)
            grid[:, top : top + height, left : left + width] = image.detach().float().cpu()
    return grid.clamp_(0, 1)


def list_images(directory: PathLike) -> list:
    """Image files under ``directory``, recursively, sorted by path."""
    root = pathlib.Path(directory)
    return sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
