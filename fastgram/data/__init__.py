"""Sample content and style images shipped with fastgram (licences in
``LICENSES.md`` beside them).

>>> from fastgram.data import load_image
>>> cat = load_image("chelsea", size=128)      # (1, 3, H, W) RGB in [0, 1]
"""

from __future__ import annotations

import importlib.resources
import pathlib
from typing import Optional, Tuple, Union

import torch

CONTENT_IMAGES = ("astronaut", "chelsea", "coffee")
STYLE_IMAGES = ("brick", "hubble_deep_field")

_FILES = {
    "astronaut": "content/astronaut.png",
    "chelsea": "content/chelsea.png",
    "coffee": "content/coffee.png",
    "brick": "style/brick.jpg",
    "hubble_deep_field": "style/hubble_deep_field.jpg",
}

__all__ = ["CONTENT_IMAGES", "STYLE_IMAGES", "image_path", "load_image"]


def image_path(name: str) -> pathlib.Path:
    """Path of the sample image ``name`` (one of CONTENT_IMAGES or STYLE_IMAGES)."""
    if not isinstance(name, str):
        raise TypeError(f"name: expected a str, got {type(name).__name__}")
    if name not in _FILES:
        raise ValueError(f"name: expected one of {sorted(_FILES)}, got {name!r}")
    return pathlib.Path(str(importlib.resources.files(__name__).joinpath(_FILES[name])))


def load_image(name: str, size: Optional[Union[int, Tuple[int, int]]] = None) -> torch.Tensor:
    """A sample image as a float32 (1, 3, H, W) tensor, RGB in [0, 1].

    Args:
        name: one of :data:`CONTENT_IMAGES` or :data:`STYLE_IMAGES`.
        size: ``None`` keeps the stored size; an int resizes so that the
            shorter side has that length (aspect ratio kept); a pair
            ``(height, width)`` resizes to exactly that.
    """
    from PIL import Image  # imported here: only the sample loader needs it

    path = image_path(name)
    with Image.open(path) as image:
        image = image.convert("RGB")
        width, height = image.size
        if size is not None:
            target = _target_size(size, height, width)
            if target != (height, width):
                image = image.resize((target[1], target[0]), Image.BICUBIC)
        data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
        height, width = image.size[1], image.size[0]
    return data.view(height, width, 3).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def _target_size(size, height: int, width: int) -> Tuple[int, int]:
    if isinstance(size, bool):
        raise TypeError(f"size: expected an int or a (height, width) pair, got {size!r}")
    if isinstance(size, int):
        if size <= 0:
            raise ValueError(f"size: expected a positive int, got {size}")
        scale = size / min(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))
    if (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) for s in size)
    ):
        if min(size) <= 0:
            raise ValueError(f"size: expected positive sides, got {tuple(size)}")
        return int(size[0]), int(size[1])
    raise TypeError(f"size: expected an int or a (height, width) pair, got {size!r}")
