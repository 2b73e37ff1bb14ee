"""Image datasets for training: folders or lists of image files, random
resized crops and flips, batches drawn with replacement from a seeded
generator (so a run is reproducible and can resume exactly)."""

from __future__ import annotations

import math
import os
import pathlib
import warnings
from typing import List, Sequence, Union

import torch
from PIL import Image

from fastgram import imageio

Source = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


def _readable(path: pathlib.Path) -> bool:
    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except Exception:  # PIL raises many types for corrupt or unknown files
        return False


def resolve_images(source: Source, name: str = "source") -> List[pathlib.Path]:
    """The readable image files of ``source`` (a directory, searched
    recursively, or a list of files). Unreadable files are skipped with one
    warning that counts them; no readable image at all is an error."""
    if isinstance(source, (str, os.PathLike)):
        root = pathlib.Path(source)
        if not root.is_dir():
            raise ValueError(f"{name}: {str(root)!r} is not a directory")
        candidates = imageio.list_images(root)
        where = f"directory {str(root)!r}"
    elif isinstance(source, (list, tuple)):
        candidates = [pathlib.Path(p) for p in source]
        missing = [str(p) for p in candidates if not p.is_file()]
        if missing:
            raise ValueError(f"{name}: no such file {missing[0]!r}")
        where = f"the {len(candidates)} files given"
    else:
        raise TypeError(
            f"{name}: expected a directory or a list of image paths, got {type(source).__name__}"
        )
    readable = [p for p in candidates if _readable(p)]
    skipped = len(candidates) - len(readable)
    if skipped:
        first = next(p for p in candidates if p not in set(readable))
        warnings.warn(
            f"{name}: skipped {skipped} unreadable image file(s) in {where} (first: {first})",
            RuntimeWarning,
            stacklevel=2,
        )
    if not readable:
        raise ValueError(f"{name}: no readable image in {where}")
    return readable


class ImageDataset:
    """Random crops of a set of images.

    Args:
        source: a directory (searched recursively for jpg, jpeg, png, bmp,
            webp, tif, tiff) or a list of image paths.
        size: side of the square crops.
        scale: range of the crop's area as a fraction of the image's.
        ratio: range of the crop's aspect ratio (width / height).
        flip: mirror half of the crops horizontally.
        cache: keep decoded images in memory (worth it for small sets).
        name: what error messages call ``source``.

    :meth:`sample` draws a batch with replacement, so fewer images than the
    batch size work; all randomness comes from the generator passed in.
    """

    def __init__(
        self,
        source: Source,
        size: int,
        *,
        scale=(0.5, 1.0),
        ratio=(3 / 4, 4 / 3),
        flip: bool = True,
        cache: bool = True,
        name: str = "source",
    ):
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValueError(f"size: expected a positive int, got {size!r}")
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale: expected 0 < low <= high <= 1, got {scale}")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio: expected 0 < low <= high, got {ratio}")
        self.paths = resolve_images(source, name)
        self.size = size
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.flip = flip
        self._cache = {} if cache else None

    def __len__(self) -> int:
        return len(self.paths)

    def _image(self, index: int) -> Image.Image:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        image = imageio.read_image(self.paths[index])
        if self._cache is not None:
            self._cache[index] = image
        return image

    def _uniform(self, generator: torch.Generator, low: float, high: float) -> float:
        return low + (high - low) * torch.rand((), generator=generator).item()

    def crop(self, index: int, generator: torch.Generator) -> torch.Tensor:
        """A random resized crop of image ``index`` as (3, size, size)."""
        image = self._image(index)
        width, height = image.size
        area = self._uniform(generator, *self.scale) * width * height
        log_ratio = self._uniform(generator, math.log(self.ratio[0]), math.log(self.ratio[1]))
        aspect = math.exp(log_ratio)
        crop_w = min(width, max(1, round(math.sqrt(area * aspect))))
        crop_h = min(height, max(1, round(math.sqrt(area / aspect))))
        left = int(torch.randint(0, width - crop_w + 1, (), generator=generator))
        top = int(torch.randint(0, height - crop_h + 1, (), generator=generator))
        mirror = self.flip and bool(torch.rand((), generator=generator) < 0.5)
        patch = image.crop((left, top, left + crop_w, top + crop_h))
        patch = patch.resize((self.size, self.size), Image.BICUBIC)
        if mirror:
            patch = patch.transpose(Image.FLIP_LEFT_RIGHT)
        return imageio.pil_to_tensor(patch)

    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """A (batch_size, 3, size, size) batch drawn with replacement."""
        indices = torch.randint(0, len(self.paths), (batch_size,), generator=generator)
        return torch.stack([self.crop(int(i), generator) for i in indices])
