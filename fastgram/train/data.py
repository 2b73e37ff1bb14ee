"""Image datasets for training: folders or lists of image files, random
resized crops and flips, batches drawn with replacement from a seeded
generator (so a run is reproducible and can resume exactly)."""

from __future__ import annotations

import collections
import math
import os
import pathlib
import warnings
from typing import List, Sequence, Union

import torch
from PIL import Image

from fastgram import imageio

Source = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


# Images with a side below this teach nothing (a crop is one blurred colour)
# and a flat image (every pixel the same) makes every crop identical: a set
# of nothing else drives the losses to degenerate values (a Gram of a
# constant image) and training "diverges" for a reason that is in the data.
MIN_SIDE = 8
_FLAT_PROBE = 64  # the flatness check decodes at about this size (JPEG draft)


def _problem(path: pathlib.Path):
    """None if ``path`` is a usable image, else ``"unreadable"``,
    ``"too small"`` or ``"flat"``."""
    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            if min(image.size) < MIN_SIDE:
                return "too small"
            image.draft("RGB", (_FLAT_PROBE, _FLAT_PROBE))  # cheap for JPEG; no-op otherwise
            image = imageio.to_rgb(image)
            image.thumbnail((_FLAT_PROBE * 4, _FLAT_PROBE * 4))
            if all(low == high for low, high in image.getextrema()):
                return "flat"
        return None
    except Exception:  # PIL raises many types for corrupt or unknown files
        return "unreadable"


def resolve_images(source: Source, name: str = "source") -> List[pathlib.Path]:
    """The usable image files of ``source`` (a directory, searched
    recursively, or a list of files). Unreadable files, images with a side
    below :data:`MIN_SIDE` pixels and flat images (one colour) are skipped
    with one warning per kind that counts them; no usable image at all is an
    error naming the files that were found."""
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
    problems = {p: _problem(p) for p in candidates}
    usable = [p for p in candidates if problems[p] is None]
    for kind, why in (("unreadable", "unreadable image file(s)"),
                      ("too small", f"image(s) with a side below {MIN_SIDE} pixels"),
                      ("flat", "flat image(s) (one colour)")):
        bad = [p for p in candidates if problems[p] == kind]
        if bad:
            warnings.warn(f"{name}: skipped {len(bad)} {why} in {where} (first: {bad[0]})",
                          RuntimeWarning, stacklevel=2)
    if not candidates or all(problems[p] == "unreadable" for p in candidates):
        raise ValueError(f"{name}: no readable image in {where}")
    if not usable:
        listed = ", ".join(f"{p.name} ({problems[p]})" for p in candidates[:5])
        more = f" and {len(candidates) - 5} more" if len(candidates) > 5 else ""
        raise ValueError(
            f"{name}: no usable image in {where}: {listed}{more}; images need sides of at "
            f"least {MIN_SIDE} pixels and more than one colour"
        )
    return usable


DEFAULT_CACHE_BYTES = 512 * 2**20


def _cache_bytes(cache) -> int:
    if cache is True:
        return DEFAULT_CACHE_BYTES
    if cache is False or cache is None:
        return 0
    if isinstance(cache, int) and cache >= 0:
        return cache
    raise ValueError(f"cache: expected True, False or a number of bytes >= 0, got {cache!r}")


class _ByteBoundedCache:
    """Decoded RGB images by index, at most ``limit`` bytes (3 per pixel),
    least recently used evicted first. An image larger than the whole limit
    is not kept."""

    def __init__(self, limit: int):
        self.limit = limit
        self.bytes = 0
        self._items: "collections.OrderedDict[int, Image.Image]" = collections.OrderedDict()

    def get(self, index: int):
        image = self._items.get(index)
        if image is not None:
            self._items.move_to_end(index)
        return image

    def put(self, index: int, image: Image.Image) -> None:
        size = _image_bytes(image)
        if size > self.limit:
            return
        while self.bytes + size > self.limit:
            _, evicted = self._items.popitem(last=False)
            self.bytes -= _image_bytes(evicted)
        self._items[index] = image
        self.bytes += size

    def __len__(self) -> int:
        return len(self._items)


def _image_bytes(image: Image.Image) -> int:
    return image.width * image.height * len(image.getbands())


class ImageDataset:
    """Random crops of a set of images.

    Args:
        source: a directory (searched recursively for jpg, jpeg, png, bmp,
            webp, tif, tiff) or a list of image paths.
        size: side of the square crops.
        scale: range of the crop's area as a fraction of the image's.
        ratio: range of the crop's aspect ratio (width / height).
        flip: mirror half of the crops horizontally.
        cache: keep decoded images in memory, least recently used first
            out, up to a number of bytes: ``True`` for
            :data:`DEFAULT_CACHE_BYTES` (512 MiB), an int for that many
            bytes, ``False`` or 0 for none.
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
        cache: Union[bool, int] = True,
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
        self._cache = _ByteBoundedCache(_cache_bytes(cache))

    def __len__(self) -> int:
        return len(self.paths)

    def _image(self, index: int) -> Image.Image:
        image = self._cache.get(index)
        if image is None:
            image = imageio.read_image(self.paths[index])
            self._cache.put(index, image)
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
