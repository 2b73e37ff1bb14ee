"""Tiled stylisation with the statistics of the whole image.

AdaIN normalises a feature map with the mean and variance of *all* its
positions. Stylising tiles one by one would normalise each with its own
statistics: seams and colours drifting from tile to tile. Here the any-style
generator (:class:`fastgram.models.AdaINGenerator`, the starter model) runs
in two passes over tiles:

1. the frozen VGG19 runs on each tile with a halo that covers its receptive
   field; the features of the tile's own part (no halo) are kept, and their
   per-channel sums and sums of squares are added up in float64;
2. the global mean and variance give AdaIN exactly what the untiled forward
   computes; the decoder then runs tile by tile on the kept features, each
   with a halo covering the decoder's receptive field, and the tile's own
   part of its output is written into the image.

Halos make every kept value equal to the untiled one: tile origins are
multiples of the network's stride (the poolings and upsamplings see the same
grid), and near an image border a tile's edge *is* the border, so zero and
reflect padding see what they see untiled.

What persists between the passes is the features at the AdaIN layer
(C channels at 1/stride of the resolution: 256 x H/4 x W/4 for the starter,
16 values per input pixel, 1 GiB in float32 for a 4096² photo). They are
kept in float32, so the result is exact at every size: in host memory up to
:data:`IN_MEMORY_FEATURE_BYTES`, above that in an unlinked temporary file
(the operating system's page cache holds it while memory is free, outside
the process's resident memory, and writes it to disk when memory is short).
Everything else held at once is one tile with its halo, so the peak of the
network work depends on the tile size, not the image size; the input and
output images themselves are whole (float32, 12 bytes per pixel each).
"""

from __future__ import annotations

import math
import os
import sys
from typing import Callable, Optional, Tuple

import numpy as np
import torch

from fastgram import validation

# Features kept between the passes up to this size stay in memory; larger
# ones go to a temporary file.
IN_MEMORY_FEATURE_BYTES = 256 * 2**20


def _radius(modules, scale: float = 1.0) -> float:
    """Receptive-field radius, in units of the input of ``modules``, of a
    chain of convolutions, poolings and upsamplings (any other module is
    point-wise)."""
    radius = 0.0
    for module in modules:
        if isinstance(module, torch.nn.Conv2d):
            radius += (module.kernel_size[0] // 2) * module.dilation[0] * scale
            scale *= module.stride[0]
        elif isinstance(module, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)):
            kernel = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
            stride = module.stride if isinstance(module.stride, int) else module.stride[0]
            radius += (kernel - 1) * scale
            scale *= stride
        elif isinstance(module, torch.nn.Upsample):
            radius += scale  # bilinear reads one neighbour at the lower resolution
            scale /= module.scale_factor
    return radius


def _vgg_halo(vgg) -> int:
    """Input pixels around a tile for the VGG trunk, in whole strides."""
    stride = vgg.min_size  # 2 ** the poolings: the stride of its last layer
    return stride * math.ceil(_radius(vgg.features) / stride)


def halos(generator) -> Tuple[int, int]:
    """(input pixels around a tile for the VGG pass, feature positions
    around a tile for the decoder pass)."""
    return _vgg_halo(generator.vgg), math.ceil(_radius(generator.decoder)) + 1


def receptive_field(generator) -> int:
    """The smallest tile side (input pixels) accepted: the larger halo."""
    vgg, decoder = halos(generator)
    return max(vgg, decoder * generator.stride)


def check_tile(tile, generator) -> int:
    """``tile`` as a multiple of the network's stride, or a ValueError
    naming the receptive field it must cover (``generator``: an AdaIN
    generator or the statistics style encoder)."""
    validation.integer(tile, "tile")
    smallest = receptive_field(generator) if hasattr(generator, "decoder") else \
        _vgg_halo(generator.vgg)
    if tile < smallest:
        raise ValueError(f"tile: expected at least {smallest} pixels (the receptive field of "
                         f"the {generator.layer} network around each tile), got {tile}")
    return tile - tile % generator.vgg.min_size


def _spans(length: int, tile: int):
    for start in range(0, length, tile):
        yield start, min(length, start + tile)


class _Progress:
    """``tiles k/n`` on stderr, rewritten in place."""

    def __init__(self, total: int, label: str, enabled: bool):
        self.total, self.label, self.enabled, self.done = total, label, enabled, 0

    def step(self) -> None:
        self.done += 1
        if self.enabled:
            sys.stderr.write(f"\r{self.label}: tile {self.done}/{self.total}")
            if self.done == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()


class _MemoryStore:
    """The kept features as one float32 tensor in host memory."""

    def __init__(self, count: int, channels: int, height: int, width: int):
        self.data = torch.empty(count, channels, height, width, dtype=torch.float32)

    def write(self, y0: int, x0: int, values: torch.Tensor) -> None:
        self.data[:, :, y0:y0 + values.shape[2], x0:x0 + values.shape[3]] = values.cpu()

    def read(self, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
        return self.data[:, :, top:bottom, left:right]

    def close(self) -> None:
        self.data = None


class _FileStore:
    """The kept features in an unlinked temporary file, float32, laid out
    (B, H, W, C) so that a tile's row is one contiguous read. Pages of the
    file live in the kernel's page cache (not in this process's resident
    memory) or on disk."""

    def __init__(self, count: int, channels: int, height: int, width: int):
        import tempfile

        self.shape = (count, channels, height, width)
        self.file = tempfile.TemporaryFile(prefix="fastgram-tiles-")
        self.file.truncate(count * height * width * channels * 4)
        self.fd = self.file.fileno()

    def _offset(self, b: int, y: int, x: int) -> int:
        _, channels, height, width = self.shape
        return (((b * height) + y) * width + x) * channels * 4

    def write(self, y0: int, x0: int, values: torch.Tensor) -> None:
        rows = values.float().permute(0, 2, 3, 1).contiguous().cpu().numpy()
        for b in range(rows.shape[0]):
            for i in range(rows.shape[1]):
                os.pwrite(self.fd, rows[b, i].tobytes(), self._offset(b, y0 + i, x0))

    def read(self, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
        count, channels = self.shape[:2]
        out = np.empty((count, bottom - top, right - left, channels), dtype=np.float32)
        size = (right - left) * channels * 4
        for b in range(count):
            for i, y in enumerate(range(top, bottom)):
                out[b, i] = np.frombuffer(os.pread(self.fd, size, self._offset(b, y, left)),
                                          dtype=np.float32).reshape(right - left, channels)
        return torch.from_numpy(out).permute(0, 3, 1, 2)

    def close(self) -> None:
        self.file.close()


def tiled_features(network, batch: torch.Tensor, tile: int, keep: bool = True,
                   progress: bool = False, label: str = "features"):
    """Pass 1: the features of ``network.vgg`` (an AdaIN generator or the
    statistics style encoder: one layer) of ``batch`` (B, 3, H, W; H, W
    multiples of the stride) tile by tile, and their per-channel mean and
    biased variance over the whole image (float64). Returns
    ``(features or None, mean, var)``; ``features`` live on the CPU."""
    stride = network.vgg.min_size
    halo = _vgg_halo(network.vgg)
    count, _, height, width = batch.shape
    channels = network.style_dim // 2
    fh, fw = height // stride, width // stride
    features = None
    if keep:
        in_memory = count * channels * fh * fw * 4 <= IN_MEMORY_FEATURE_BYTES
        features = (_MemoryStore if in_memory else _FileStore)(count, channels, fh, fw)
    total = torch.zeros(count, channels, dtype=torch.float64)
    squares = torch.zeros(count, channels, dtype=torch.float64)
    bar = _Progress(len(range(0, height, tile)) * len(range(0, width, tile)), label, progress)
    for y0, y1 in _spans(height, tile):
        for x0, x1 in _spans(width, tile):
            top, left = max(0, y0 - halo), max(0, x0 - halo)
            bottom, right = min(height, y1 + halo), min(width, x1 + halo)
            part = network.vgg(batch[:, :, top:bottom, left:right])[0].float()
            own = part[:, :, (y0 - top) // stride:(y1 - top) // stride,
                       (x0 - left) // stride:(x1 - left) // stride]
            flat = own.flatten(2).double()
            total += flat.sum(dim=2).cpu()
            squares += (flat * flat).sum(dim=2).cpu()
            if features is not None:
                features.write(y0 // stride, x0 // stride, own)
            bar.step()
    positions = fh * fw
    mean = total / positions
    var = (squares / positions - mean * mean).clamp_min(0.0)
    return features, mean, var


def tiled_render(generator, batch: torch.Tensor, params: torch.Tensor, tile: int,
                 own_style: Optional[Callable] = None, progress: bool = False) -> torch.Tensor:
    """The generator's output for ``batch`` with AdaIN statistics ``params``
    (B, 2C), computed in tiles (see the module docstring). ``own_style``, if
    given, maps the content's own statistics (B, 2C) to the params to use
    instead (the ``alpha`` blend)."""
    stride = generator.stride
    _, halo = halos(generator)
    device = batch.device
    features, mean, var = tiled_features(generator, batch, tile, progress=progress,
                                         label="stylise, pass 1/2")
    if own_style is not None:
        params = own_style(torch.cat([mean, (var + generator.eps).sqrt()], dim=1).float().to(device))
    style_mean, style_std = params.float().chunk(2, dim=1)
    scale = style_std.double().cpu() * torch.rsqrt(var + generator.eps)
    shift = style_mean.double().cpu() - mean * scale
    scale = (scale * generator.feature_scale).float().to(device)[..., None, None]
    shift = (shift * generator.feature_scale).float().to(device)[..., None, None]
    count, _, height, width = batch.shape
    fh, fw = height // stride, width // stride
    out = torch.empty(count, 3, height, width, dtype=torch.float32, device=device)
    ftile = tile // stride
    bar = _Progress(len(range(0, fh, ftile)) * len(range(0, fw, ftile)), "stylise, pass 2/2",
                    progress)
    for y0, y1 in _spans(fh, ftile):
        for x0, x1 in _spans(fw, ftile):
            top, left = max(0, y0 - halo), max(0, x0 - halo)
            bottom, right = min(fh, y1 + halo), min(fw, x1 + halo)
            part = features.read(top, bottom, left, right).to(device, torch.float32)
            image = generator.decoder(part * scale + shift).float()
            out[:, :, y0 * stride:y1 * stride, x0 * stride:x1 * stride] = image[
                :, :, (y0 - top) * stride:(y1 - top) * stride,
                (x0 - left) * stride:(x1 - left) * stride]
            bar.step()
    features.close()
    return out


__all__ = ["IN_MEMORY_FEATURE_BYTES", "check_tile", "halos", "receptive_field", "tiled_features",
           "tiled_render"]
