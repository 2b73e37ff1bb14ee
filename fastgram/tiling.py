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

With region masks (several styles placed on one content, see
:mod:`fastgram.models.regions`), pass 1 also sums, per region and channel,
the mask-weighted sums sum(m x), sum(m x^2) and sum(m), and pass 2 gives
each region its own scale and shift, blended by the masks: again exactly
what the untiled forward computes.

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


class _Moments:
    """Float64 sums over the tiles of a feature map (B, C, h, w): per
    channel, sum(x) and sum(x^2) over all positions; with region masks
    (K, 1, h, w), also per region and channel sum(m x), sum(m x^2) and
    per region sum(m). Summed in float64 so that millions of positions add
    up without losing the variance to cancellation."""

    def __init__(self, count: int, channels: int, regions: int = 0):
        def zeros(*shape):
            return torch.zeros(*shape, dtype=torch.float64)

        self.positions = 0
        self.total, self.squares = zeros(count, channels), zeros(count, channels)
        self.weights = zeros(regions)
        self.region_total = zeros(count, channels, regions)
        self.region_squares = zeros(count, channels, regions)

    def add(self, values: torch.Tensor, masks: Optional[torch.Tensor] = None) -> None:
        """Add a tile's ``values`` (B, C, h, w), under ``masks`` (K, 1, h, w)
        of the same positions when regions are summed."""
        flat = values.flatten(2).double()
        squares = flat * flat
        self.positions += flat.shape[2]
        self.total += flat.sum(dim=2).cpu()
        self.squares += squares.sum(dim=2).cpu()
        if masks is not None:
            weights = masks.flatten(1).double().t()  # (positions, K): one product per sum
            self.weights += weights.sum(dim=0).cpu()
            self.region_total += (flat @ weights).cpu()
            self.region_squares += (squares @ weights).cpu()

    def whole(self):
        """Per-channel mean and biased variance over all positions, (B, C)."""
        return _mean_var(self.total, self.squares, self.positions)

    def regions(self):
        """Per region and channel mask-weighted mean and biased variance,
        (B, K, C), as :func:`fastgram.models.regions.masked_statistics`
        (an empty region gets 0 and 0)."""
        weights = self.weights.clamp_min(1e-12)
        mean, var = _mean_var(self.region_total, self.region_squares, weights)
        return mean.transpose(1, 2), var.transpose(1, 2)


def _mean_var(total: torch.Tensor, squares: torch.Tensor, weight):
    mean = total / weight
    return mean, (squares / weight - mean * mean).clamp_min(0.0)


def _check_masks(masks: torch.Tensor, batch: torch.Tensor, size: Tuple[int, int]) -> None:
    """Region masks must be (K, 1, h, w) at the features' resolution, on
    the batch's device."""
    validation.tensor(masks, "masks", (4,))
    if masks.shape[1] != 1 or tuple(masks.shape[2:]) != tuple(size):
        raise ValueError(f"masks: expected (K, 1, {size[0]}, {size[1]}) at the features' "
                         f"resolution, got shape {tuple(masks.shape)}")
    validation.same_device(masks, "masks", batch, "batch")


def _first_pass(network, batch: torch.Tensor, tile: int, keep: bool, progress: bool, label: str,
                masks: Optional[torch.Tensor]):
    """Pass 1 (see :func:`tiled_features`): the kept features (or None) and
    their :class:`_Moments`."""
    stride = network.vgg.min_size
    halo = _vgg_halo(network.vgg)
    count, _, height, width = batch.shape
    channels = network.style_dim // 2
    fh, fw = height // stride, width // stride
    if masks is not None:
        _check_masks(masks, batch, (fh, fw))
    features = None
    if keep:
        in_memory = count * channels * fh * fw * 4 <= IN_MEMORY_FEATURE_BYTES
        features = (_MemoryStore if in_memory else _FileStore)(count, channels, fh, fw)
    moments = _Moments(count, channels, 0 if masks is None else masks.shape[0])
    bar = _Progress(len(range(0, height, tile)) * len(range(0, width, tile)), label, progress)
    for y0, y1 in _spans(height, tile):
        for x0, x1 in _spans(width, tile):
            top, left = max(0, y0 - halo), max(0, x0 - halo)
            bottom, right = min(height, y1 + halo), min(width, x1 + halo)
            part = network.vgg(batch[:, :, top:bottom, left:right])[0].float()
            own = part[:, :, (y0 - top) // stride:(y1 - top) // stride,
                       (x0 - left) // stride:(x1 - left) // stride]
            rows, cols = slice(y0 // stride, y1 // stride), slice(x0 // stride, x1 // stride)
            moments.add(own, None if masks is None else masks[:, :, rows, cols])
            if features is not None:
                features.write(y0 // stride, x0 // stride, own)
            bar.step()
    return features, moments


def tiled_features(network, batch: torch.Tensor, tile: int, keep: bool = True,
                   progress: bool = False, label: str = "features",
                   masks: Optional[torch.Tensor] = None):
    """Pass 1: the features of ``network.vgg`` (an AdaIN generator or the
    statistics style encoder: one layer) of ``batch`` (B, 3, H, W; H, W
    multiples of the stride) tile by tile, and their per-channel mean and
    biased variance over the whole image (float64, (B, C)); with ``masks``
    (K, 1, H/stride, W/stride), the mask-weighted mean and variance of each
    region instead ((B, K, C), as
    :func:`fastgram.models.regions.masked_statistics`). Returns
    ``(features or None, mean, var)``; ``features`` live on the CPU."""
    validation.tensor(batch, "batch", (4,))
    features, moments = _first_pass(network, batch, tile, keep, progress, label, masks)
    mean, var = moments.whole() if masks is None else moments.regions()
    return features, mean, var


def _check_params(params: torch.Tensor, count: int, channels: int,
                  masks: Optional[torch.Tensor]) -> None:
    want = (count, 2 * channels) if masks is None else (count, masks.shape[0], 2 * channels)
    validation.tensor(params, "params", None)
    if tuple(params.shape) != want:
        raise ValueError(f"params: expected shape {want}, got {tuple(params.shape)}")


def _transfer(part: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
              masks: Optional[torch.Tensor]) -> torch.Tensor:
    """AdaIN with precomputed ``scale``, ``shift``: (B, C, 1, 1), or with
    ``masks`` (K, 1, h, w) over the tile one pair per region (B, K, C, 1, 1),
    blended by the masks (the formula of :mod:`fastgram.models.regions`)."""
    if masks is None:
        return part * scale + shift
    out = torch.zeros_like(part)
    for k, mask in enumerate(masks):
        out += mask * (part * scale[:, k] + shift[:, k])
    return out


def tiled_render(generator, batch: torch.Tensor, params: torch.Tensor, tile: int,
                 own_style: Optional[Callable] = None, progress: bool = False,
                 masks: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The generator's output for ``batch`` with AdaIN statistics ``params``
    (B, 2C), computed in tiles (see the module docstring). ``own_style``, if
    given, maps the content's own statistics (B, 2C) to the params to use
    instead (the ``alpha`` blend).

    With ``masks`` (K, 1, H/stride, W/stride, summing to 1 over K), each
    region gets its own statistics, as
    :meth:`fastgram.models.AdaINGenerator.render_regions`: ``params`` are
    (B, K, 2C), each region is normalised with its mask-weighted statistics
    over the whole image, and ``own_style`` receives the content's own
    whole-image statistics as (B, 1, 2C)."""
    validation.tensor(batch, "batch", (4,))
    stride = generator.stride
    _, halo = halos(generator)
    device = batch.device
    count, _, height, width = batch.shape
    fh, fw = height // stride, width // stride
    if masks is not None:
        _check_masks(masks, batch, (fh, fw))
    _check_params(params, count, generator.style_dim // 2, masks)
    features, moments = _first_pass(generator, batch, tile, True, progress,
                                    "stylise, pass 1/2", masks)
    if own_style is not None:
        mean, var = moments.whole()
        own = torch.cat([mean, (var + generator.eps).sqrt()], dim=1).float().to(device)
        params = own_style(own if masks is None else own.unsqueeze(1))
    mean, var = moments.whole() if masks is None else moments.regions()
    style_mean, style_std = params.float().chunk(2, dim=-1)
    scale = style_std.double().cpu() * torch.rsqrt(var + generator.eps)
    shift = style_mean.double().cpu() - mean * scale
    scale = (scale * generator.feature_scale).float().to(device)[..., None, None]
    shift = (shift * generator.feature_scale).float().to(device)[..., None, None]
    out = torch.empty(count, 3, height, width, dtype=torch.float32, device=device)
    ftile = tile // stride
    bar = _Progress(len(range(0, fh, ftile)) * len(range(0, fw, ftile)), "stylise, pass 2/2",
                    progress)
    for y0, y1 in _spans(fh, ftile):
        for x0, x1 in _spans(fw, ftile):
            top, left = max(0, y0 - halo), max(0, x0 - halo)
            bottom, right = min(fh, y1 + halo), min(fw, x1 + halo)
            part = features.read(top, bottom, left, right).to(device, torch.float32)
            regions = None if masks is None else masks[:, :, top:bottom, left:right]
            image = generator.decoder(_transfer(part, scale, shift, regions)).float()
            out[:, :, y0 * stride:y1 * stride, x0 * stride:x1 * stride] = image[
                :, :, (y0 - top) * stride:(y1 - top) * stride,
                (x0 - left) * stride:(x1 - left) * stride]
            bar.step()
    features.close()
    return out


__all__ = ["IN_MEMORY_FEATURE_BYTES", "check_tile", "halos", "receptive_field", "tiled_features",
           "tiled_render"]
