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
# Images the starter model never saw in training: its evaluation and the
# demo's "unseen styles" use them.
HELD_OUT_CONTENT_IMAGES = ("camera", "rocket")
HELD_OUT_STYLE_IMAGES = ("gravel", "grass", "retina")

_FILES = {
    "astronaut": "content/astronaut.png",
    "chelsea": "content/chelsea.png",
    "coffee": "content/coffee.png",
    "brick": "style/brick.jpg",
    "hubble_deep_field": "style/hubble_deep_field.jpg",
    "camera": "content/camera.png",
    "rocket": "content/rocket.png",
    "gravel": "style/gravel.jpg",
    "grass": "style/grass.jpg",
    "retina": "style/retina.jpg",
}

# Models shipped as package data (how each was trained: data/LICENSES.md
# and the README's "The starter model").
PRETRAINED_MODELS = {"starter": "models/starter.pt"}

__all__ = ["CONTENT_IMAGES", "STYLE_IMAGES", "HELD_OUT_CONTENT_IMAGES", "HELD_OUT_STYLE_IMAGES",
           "PRETRAINED_MODELS", "image_path", "load_image",
           "model_path"]


def model_path(name: str = "starter") -> pathlib.Path:
    """Path of the shipped model ``name`` (one of PRETRAINED_MODELS)."""
    if not isinstance(name, str):
        raise TypeError(f"name: expected a str, got {type(name).__name__}")
    if name not in PRETRAINED_MODELS:
        raise ValueError(f"name: expected one of {sorted(PRETRAINED_MODELS)}, got {name!r}")
    path = pathlib.Path(str(importlib.resources.files(__name__).joinpath(PRETRAINED_MODELS[name])))
    if not path.is_file():
        raise FileNotFoundError(f"name: the {name!r} model is not in this installation "
                                f"(expected {str(path)!r}); reinstall fastgram")
    return path


def image_path(name: str) -> pathlib.Path:
    """Path of the sample image ``name`` (one of CONTENT_IMAGES, STYLE_IMAGES
    or the HELD_OUT ones)."""
    if not isinstance(name, str):
        raise TypeError(f"name: expected a str, got {type(name).__name__}")
    if name not in _FILES:
        raise ValueError(f"name: expected one of {sorted(_FILES)}, got {name!r}")
    return pathlib.Path(str(importlib.resources.files(__name__).joinpath(_FILES[name])))


def load_image(name: str, size: Optional[Union[int, Tuple[int, int]]] = None) -> torch.Tensor:
    """A sample image as a float32 (1, 3, H, W) tensor, RGB in [0, 1].

    Args:
        name: one of :data:`CONTENT_IMAGES`, :data:`STYLE_IMAGES` or the held-out ones.
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
