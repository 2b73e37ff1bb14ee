"""Tiled stylisation of the MUNIT-design generator, one layer at a time.

The default generator (:class:`fastgram.models.Generator`) normalises after
almost every convolution: instance norms in the content encoder, AdaIN in
the decoder's residual blocks, layer norms after the upsamplings. Each needs
the statistics of its whole input, so the two-pass scheme of
:mod:`fastgram.tiling` (one statistics pass, then the rest of the network
per tile) does not apply: every norm needs a pass of its own. Here the
network runs as a sequence of *layer passes*:

* a pass runs one convolution (with the upsampling in front of it, if any)
  over the whole image tile by tile, each tile read with a halo of the
  convolution's reach; it writes the tile's own part of the raw output to a
  store and adds its per-channel sums and sums of squares (float64) to the
  layer's statistics;
* the norm and activation that follow are not applied then: the layer's
  output is a :class:`Plane`, the raw store plus the point-wise step the
  global statistics define (``x * scale + shift`` per channel, then the
  activation, plus a residual input where a residual block ends). The next
  pass applies that step to what it reads.

So each stored value is what the untiled network computes, and each norm
sees the statistics of the whole image. A residual block's input is written
to a store of its own by the block's first pass (it is needed again at the
block's end), so a plane never chains more than one residual.

Stores hold float32 values: in memory while the stores alive at once stay
under :data:`fastgram.tiling.IN_MEMORY_FEATURE_BYTES`, else in unlinked
temporary files (:class:`fastgram.tiling._FileStore`: page cache, then
disk, outside the process's resident memory). At most four stores live at
once (in a residual block's first pass: the previous block's output and
input, this block's copy of its input and its first convolution's output),
and one tile's work is held in memory, so the resident memory
depends on the tile size, not on the image size, apart from the input and
output images themselves (float32, 12 bytes per pixel each).

Regional styles (``masks``) give every AdaIN norm one set of statistics per
region, weighted by the masks (:mod:`fastgram.models.regions`), summed over
tiles the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from fastgram import tiling, validation
from fastgram.models.blocks import AdaINResidualBlock, ConvNormAct, ResidualBlock
from fastgram.nn.adaptive_norm import AdaptiveInstanceNorm2d
from fastgram.nn.normalization import InstanceNorm2d

# Point-wise modules a plane can apply lazily.
_POINTWISE = (torch.nn.ReLU, torch.nn.LeakyReLU, torch.nn.Sigmoid, torch.nn.Tanh,
              torch.nn.Identity)
# Instance-norm modules whose forward is known to be plain instance norm.
_INSTANCE_FORWARDS = (torch.nn.InstanceNorm2d.forward, InstanceNorm2d.forward)


# -- stores -------------------------------------------------------------------


class _TensorStore:
    """A whole tensor (the input image, or the output being written)."""

    def __init__(self, data: torch.Tensor):
        self.data = data

    def write(self, y0: int, x0: int, values: torch.Tensor) -> None:
        self.data[:, :, y0:y0 + values.shape[2], x0:x0 + values.shape[3]] = values

    def read(self, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
        return self.data[:, :, top:bottom, left:right]

    def close(self) -> None:
        pass


class _PooledMemoryStore(tiling._MemoryStore):
    """A memory store that gives its bytes back to its pool when closed."""

    def __init__(self, pool: "_StorePool", size: int, *shape: int):
        super().__init__(*shape)
        self.pool, self.size = pool, size
        pool.used += size

    def close(self) -> None:
        if self.data is not None:
            self.pool.used -= self.size
        super().close()


class _StorePool:
    """Makes stores: in memory while the live ones stay under ``budget``
    bytes, else in temporary files."""

    def __init__(self, budget: int):
        self.budget, self.used = budget, 0

    def new(self, count: int, channels: int, height: int, width: int):
        size = count * channels * height * width * 4
        if self.used + size <= self.budget:
            return _PooledMemoryStore(self, size, count, channels, height, width)
        return tiling._FileStore(count, channels, height, width)


# -- planes: stored values and the point-wise step that finishes them ------------


Step = Callable[[torch.Tensor, Tuple[int, int, int, int]], torch.Tensor]


@dataclass
class Plane:
    """A layer's output: ``residual + steps(store)`` at ``stride`` image
    pixels per position. ``steps`` take (values, box) where box is
    (top, bottom, left, right) in this plane's positions."""

    store: object
    stride: int
    channels: int
    steps: List[Step] = field(default_factory=list)
    residual: Optional["Plane"] = None

    def read(self, box: Tuple[int, int, int, int], device) -> torch.Tensor:
        x = self.store.read(*box).to(device, torch.float32)
        for step in self.steps:
            x = step(x, box)
        if self.residual is not None:
            x = x + self.residual.read(box, device)
        return x

    def close(self) -> None:
        self.store.close()
        if self.residual is not None:
            self.residual.close()


def _activation(name: Optional[str], slope: float,
                inplace: bool = True) -> Callable[[torch.Tensor], torch.Tensor]:
    """In place where the input is a tensor a step has just made (never a
    store's own memory)."""
    if name == "relu":
        return F.relu_ if inplace else F.relu
    if name == "leaky_relu":
        return lambda x: F.leaky_relu(x, slope, inplace=inplace)
    return lambda x: x


class _Sums:
    """Per-sample, per-channel mean and variance of a layer's raw output
    over all tiles, and per region when ``masks`` (K, 1, h, w) are given.

    Each tile's mean and variance come from one float32 ``var_mean`` call;
    tiles are merged in float64 with the pairwise update of Chan et al.
    (1979), which stays exact where sums of squares would cancel."""

    def __init__(self, count: int, channels: int, masks: Optional[torch.Tensor] = None):
        self.mean = torch.zeros(count, channels, dtype=torch.float64)
        self.m2 = torch.zeros(count, channels, dtype=torch.float64)  # sum of squared deviations
        self.positions = 0
        self.masks = masks
        if masks is not None:
            regions = masks.shape[0]
            self.region_total = torch.zeros(count, regions, channels, dtype=torch.float64)
            self.region_squares = torch.zeros(count, regions, channels, dtype=torch.float64)
            self.region_weight = torch.zeros(regions, dtype=torch.float64)

    def add(self, values: torch.Tensor, y0: int, x0: int) -> None:
        var, mean = torch.var_mean(values, dim=(2, 3), unbiased=False)
        count = values.shape[2] * values.shape[3]
        total = self.positions + count
        delta = mean.double().cpu() - self.mean
        self.mean += delta * (count / total)
        self.m2 += var.double().cpu() * count + delta * delta * (self.positions * count / total)
        self.positions = total
        if self.masks is not None:
            self._add_regions(values, y0, x0)

    def _add_regions(self, values: torch.Tensor, y0: int, x0: int) -> None:
        flat = values.flatten(2).double()
        height, width = values.shape[2:]
        for k, mask in enumerate(self.masks[:, 0, y0:y0 + height, x0:x0 + width]):
            weight = mask.to(flat.device, torch.float64).flatten()
            self.region_total[:, k] += (flat * weight).sum(dim=2).cpu()
            self.region_squares[:, k] += (flat * flat * weight).sum(dim=2).cpu()
            self.region_weight[k] += float(weight.sum())

    def moments(self):
        """Mean and biased variance per (sample, channel)."""
        return self.mean, self.m2 / self.positions

    def region_moments(self):
        """Mean and biased variance per (sample, region, channel)."""
        weight = self.region_weight.clamp_min(1e-12)[None, :, None]
        mean = self.region_total / weight
        return mean, (self.region_squares / weight - mean * mean).clamp_min(0.0)


def _affine_step(scale: torch.Tensor, shift: torch.Tensor, activation) -> Step:
    """``activation(x * scale + shift)`` with (B, C) scale and shift."""
    scale, shift = scale[..., None, None], shift[..., None, None]
    return lambda x, box: activation(torch.addcmul(shift, x, scale))


def _regional_step(scale: torch.Tensor, shift: torch.Tensor, masks: torch.Tensor,
                   activation) -> Step:
    """``activation(sum_k m_k * (x * scale_k + shift_k))`` with (B, K, C)
    scale and shift and (K, 1, h, w) masks at the plane's resolution."""

    def step(x, box):
        top, bottom, left, right = box
        window = masks[:, :, top:bottom, left:right].to(x.device, x.dtype)
        out = torch.zeros_like(x)
        for k in range(window.shape[0]):
            out += window[k] * torch.addcmul(shift[:, k, :, None, None], x,
                                             scale[:, k, :, None, None])
        return activation(out)

    return step


# -- norms: what a layer's statistics turn into ---------------------------------


@dataclass
class _Norm:
    """A norm that follows a convolution: ``kind`` "none", "instance",
    "group" or "adain", and its activation."""

    kind: str
    activation: Optional[str] = None
    slope: float = 0.2
    eps: float = 1e-5
    weight: Optional[torch.Tensor] = None
    bias: Optional[torch.Tensor] = None
    groups: int = 1

    def step(self, sums: Optional[_Sums], device, params=None, masks=None) -> Step:
        """The point-wise step for a layer with these ``sums``; ``params``:
        AdaIN (weight, bias), each (B, C), or (B, K, C) with ``masks``."""
        if self.kind == "none":  # x is the stored values themselves
            act = _activation(self.activation, self.slope, inplace=False)
            return lambda x, box: act(x)
        act = _activation(self.activation, self.slope)
        if self.kind == "adain" and masks is not None:
            mean, var = sums.region_moments()
            weight, bias = (p.double().cpu() for p in params)
            scale = weight * torch.rsqrt(var + self.eps)
            shift = bias - mean * scale
            return _regional_step(scale.float().to(device), shift.float().to(device), masks, act)
        mean, var = _pool_groups(sums, self.groups) if self.kind == "group" else sums.moments()
        rstd = torch.rsqrt(var + self.eps)
        if self.kind == "adain":
            weight, bias = (p.double().cpu() for p in params)
        else:
            ones = torch.ones_like(mean)
            weight = ones if self.weight is None else self.weight.detach().double().cpu() * ones
            bias = 0 * ones if self.bias is None else self.bias.detach().double().cpu() * ones
        scale = weight * rstd
        return _affine_step(scale.float().to(device), (bias - mean * scale).float().to(device), act)


def _pool_groups(sums: _Sums, groups: int):
    """Group norm's mean and variance, per channel (each channel gets its
    group's): the channels' moments pooled, all with the same count."""
    mean, var = sums.moments()
    count, channels = mean.shape
    per_group = channels // groups
    mean, var = mean.view(count, groups, per_group), var.view(count, groups, per_group)
    group_mean = mean.mean(dim=2, keepdim=True)
    group_var = (var + (mean - group_mean) ** 2).mean(dim=2, keepdim=True)
    return (group_mean.expand_as(mean).reshape(count, channels),
            group_var.expand_as(var).reshape(count, channels))


def _norm_of(norm_act, name: str) -> _Norm:
    """The :class:`_Norm` of a :class:`fastgram.nn.NormActivation`, or a
    ValueError naming the layer that cannot be tiled."""
    norm = norm_act.norm
    activation, slope = norm_act.activation, norm_act.negative_slope
    if norm is None:
        return _Norm("none", activation, slope)
    if (isinstance(norm, torch.nn.InstanceNorm2d) and type(norm).forward in _INSTANCE_FORWARDS
            and not norm.track_running_stats):
        return _Norm("instance", activation, slope, norm.eps, norm.weight, norm.bias)
    if type(norm) is torch.nn.GroupNorm:
        return _Norm("group", activation, slope, norm.eps, norm.weight, norm.bias,
                     norm.num_groups)
    raise ValueError(f"tile: the generator's norm {name} ({type(norm).__name__}) cannot be "
                     "tiled; tiles support instance norms, group/layer norms and AdaIN")


def _adain_norm(norm: AdaptiveInstanceNorm2d) -> _Norm:
    return _Norm("adain", norm.activation, norm.negative_slope, norm.eps)


# -- layer passes -----------------------------------------------------------------


@dataclass
class _Conv:
    """One pass's operation: an optional upsampling, then a convolution."""

    conv: torch.nn.Conv2d
    upsample: Optional[torch.nn.Upsample] = None

    def __post_init__(self):
        conv = self.conv
        if (conv.kernel_size[0] != conv.kernel_size[1] or conv.stride[0] != conv.stride[1]
                or conv.stride[0] not in (1, 2) or conv.dilation != (1, 1)
                or not isinstance(conv.padding, tuple) or conv.padding[0] != conv.padding[1]):
            raise ValueError(f"tile: cannot tile the convolution {conv} (square kernels, "
                             "stride 1 or 2, no dilation)")
        if self.upsample is not None and (self.upsample.scale_factor not in (2, 2.0)
                                          or conv.stride[0] != 1):
            raise ValueError(f"tile: cannot tile {self.upsample} (2x upsampling before a "
                             "stride-1 convolution only)")

    @property
    def factor(self) -> float:
        """Output positions per input position, per side."""
        return 2.0 if self.upsample is not None else 1.0 / self.conv.stride[0]

    @property
    def halo(self) -> int:
        """Input positions read around a tile: the convolution's reach
        (rounded up to its stride, so tiles start on its grid; at the lower
        resolution, plus one, for an upsampling)."""
        kernel, padding, stride = self.conv.kernel_size[0], self.conv.padding[0], self.conv.stride[0]
        reach = max(padding, kernel - 1 - padding)
        if self.upsample is not None:
            return math.ceil(reach / 2) + 1
        return stride * math.ceil(reach / stride)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample is not None:
            x = self.upsample(x)
        return self.conv(x)


def _tile_boxes(height: int, width: int, tile: int):
    for y0, y1 in tiling._spans(height, tile):
        for x0, x1 in tiling._spans(width, tile):
            yield y0, y1, x0, x1


class _Runner:
    """Runs layer passes over one batch; holds what every pass shares."""

    def __init__(self, batch: torch.Tensor, tile: int, masks: Optional[torch.Tensor],
                 total_passes: int, progress: bool, label: str):
        self.count, _, self.height, self.width = batch.shape
        self.device = batch.device
        self.tile = tile
        self.masks = masks
        self.pool = _StorePool(tiling.IN_MEMORY_FEATURE_BYTES)
        self.total_passes, self.done_passes = total_passes, 0
        self.progress, self.label = progress, label

    def _bar(self, tiles: int) -> tiling._Progress:
        self.done_passes += 1
        return tiling._Progress(tiles, f"{self.label}, layer {self.done_passes}/"
                                f"{self.total_passes}", self.progress)

    def mean(self, plane: Plane) -> torch.Tensor:
        """The (B, C) mean of ``plane`` over all its positions (float64)."""
        height, width = self.size(plane.stride)
        tile = max(1, self.tile // plane.stride)
        boxes = list(_tile_boxes(height, width, tile))
        bar = self._bar(len(boxes))
        total = torch.zeros(self.count, plane.channels, dtype=torch.float64)
        for y0, y1, x0, x1 in boxes:
            total += plane.read((y0, y1, x0, x1), self.device).sum(dim=(2, 3)).double().cpu()
            bar.step()
        return total / (height * width)

    def size(self, stride: int) -> Tuple[int, int]:
        return self.height // stride, self.width // stride

    def run(self, source: Plane, op: _Conv, *, sums_masks: bool = False,
            keep_source: bool = False, out=None):
        """One pass of ``op`` over ``source``: returns (raw output store,
        its sums, the stored copy of ``source`` if ``keep_source``). ``out``:
        write into this tensor (the final image) instead of a new store,
        without sums."""
        stride = round(source.stride / op.factor)
        height, width = self.size(stride)
        channels = op.conv.out_channels
        store = _TensorStore(out) if out is not None else \
            self.pool.new(self.count, channels, height, width)
        sums = None
        if out is None:
            sums = _Sums(self.count, channels, self.masks if sums_masks else None)
        kept = None
        if keep_source:  # residual blocks only: stride-1 passes
            kept = self.pool.new(self.count, source.channels, height, width)
        src_height, src_width = self.size(source.stride)
        halo, factor = op.halo, op.factor
        tile = max(1, self.tile // stride)
        boxes = list(_tile_boxes(height, width, tile))
        bar = self._bar(len(boxes))
        for y0, y1, x0, x1 in boxes:
            # the input box: the tile's own inputs plus the halo, clamped
            top, left = max(0, int(y0 / factor) - halo), max(0, int(x0 / factor) - halo)
            bottom = min(src_height, math.ceil(y1 / factor) + halo)
            right = min(src_width, math.ceil(x1 / factor) + halo)
            values = source.read((top, bottom, left, right), self.device)
            if kept is not None:
                kept.write(y0, x0, values[:, :, y0 - top:y1 - top, x0 - left:x1 - left])
            result = op(values).float()
            oy, ox = y0 - round(top * factor), x0 - round(left * factor)
            own = result[:, :, oy:oy + y1 - y0, ox:ox + x1 - x0]
            if sums is not None:
                sums.add(own, y0, x0)
            store.write(y0, x0, own)
            bar.step()
        kept_plane = None
        if kept is not None:
            kept_plane = Plane(kept, source.stride, source.channels)
        return store, sums, kept_plane, stride


# -- the generator, layer by layer ----------------------------------------------


def _passes(modules: Sequence[torch.nn.Module]) -> int:
    """How many layer passes ``modules`` take (for the progress label)."""
    total = 0
    for module in modules:
        if isinstance(module, (ResidualBlock, AdaINResidualBlock)):
            total += 2
        elif isinstance(module, (ConvNormAct, torch.nn.Conv2d)) or _is_global_mean(module):
            total += 1
    return total


class _Walker:
    """Walks the generator's modules in order, turning each into passes
    and planes."""

    def __init__(self, runner: _Runner, params: torch.Tensor, regional: bool):
        self.runner = runner
        self.params, self.regional = params, regional
        self.offset = 0
        self.upsample: Optional[torch.nn.Upsample] = None

    def _op(self, conv: torch.nn.Conv2d) -> _Conv:
        op, self.upsample = _Conv(conv, self.upsample), None
        return op

    def conv_norm(self, plane: Plane, module: ConvNormAct, name: str) -> Plane:
        norm = _norm_of(module.norm_act, name)
        store, sums, _, stride = self.runner.run(plane, self._op(module.conv))
        plane.close()
        step = norm.step(sums, self.runner.device)
        return Plane(store, stride, module.conv.out_channels, [step])

    def residual(self, plane: Plane, block: ResidualBlock, name: str) -> Plane:
        first, second = block.block
        store, sums, kept, stride = self.runner.run(plane, self._op(first.conv), keep_source=True)
        plane.close()
        hidden = Plane(store, stride, first.conv.out_channels,
                       [_norm_of(first.norm_act, f"{name}.block.0").step(sums, self.runner.device)])
        store, sums, _, stride = self.runner.run(hidden, self._op(second.conv))
        hidden.close()
        step = _norm_of(second.norm_act, f"{name}.block.1").step(sums, self.runner.device)
        return Plane(store, stride, second.conv.out_channels, [step], residual=kept)

    def _adain_params(self, channels: int):
        chunk = self.params[..., self.offset:self.offset + 2 * channels]
        self.offset += 2 * channels
        return chunk.split(channels, dim=-1)

    def adain_residual(self, plane: Plane, block: AdaINResidualBlock) -> Plane:
        runner, masks = self.runner, self.runner.masks if self.regional else None
        params1, params2 = self._adain_params(block.channels), self._adain_params(block.channels)
        store, sums, kept, stride = runner.run(plane, self._op(block.conv1), keep_source=True,
                                               sums_masks=self.regional)
        plane.close()
        step = _adain_norm(block.norm1).step(sums, runner.device, params1, masks)
        hidden = Plane(store, stride, block.channels, [step])
        store, sums, _, stride = runner.run(hidden, self._op(block.conv2),
                                            sums_masks=self.regional)
        hidden.close()
        step = _adain_norm(block.norm2).step(sums, runner.device, params2, masks)
        return Plane(store, stride, block.channels, [step], residual=kept)

    def walk(self, plane: Plane, modules: Sequence[torch.nn.Module],
             out: Optional[torch.Tensor] = None):
        """Runs ``modules`` from ``plane``. With ``out``, the last bare
        convolution writes into it and the point-wise modules after it run
        on it; a last ``AdaptiveAvgPool2d(1)`` returns the (B, C) mean of
        its input plane."""
        convs = [i for i, m in enumerate(modules) if type(m) is torch.nn.Conv2d]
        last_conv = convs[-1] if out is not None and convs else None
        for index, module in enumerate(modules):
            name = f"layer {index} ({type(module).__name__})"
            if isinstance(module, ConvNormAct):
                plane = self.conv_norm(plane, module, name)
            elif isinstance(module, ResidualBlock):
                plane = self.residual(plane, module, name)
            elif isinstance(module, AdaINResidualBlock):
                plane = self.adain_residual(plane, module)
            elif isinstance(module, torch.nn.Upsample):
                self.upsample = module
            elif index == last_conv:
                self.runner.run(plane, self._op(module), out=out)
                plane.close()
                plane = None
            elif isinstance(module, _POINTWISE) and plane is None:
                _in_bands(out, module)
            elif isinstance(module, _POINTWISE) and plane.residual is None:
                plane.steps.append(_pointwise_step(module))
            elif _is_global_mean(module) and index == len(modules) - 1:
                mean = self.runner.mean(plane)
                plane.close()
                return mean
            else:
                raise ValueError(f"tile: the network's {name} cannot be tiled")
        return None


def _pointwise_step(module: torch.nn.Module) -> Step:
    """``module`` as a plane's step; an in-place one gets a copy, as the
    values it reads may be the store's own memory."""
    if getattr(module, "inplace", False):
        return lambda x, box: module(x.clone())
    return lambda x, box: module(x)


def _is_global_mean(module: torch.nn.Module) -> bool:
    return isinstance(module, torch.nn.AdaptiveAvgPool2d) and module.output_size in (1, (1, 1))


def _in_bands(image: torch.Tensor, module: torch.nn.Module, rows: int = 256) -> None:
    """``image = module(image)`` in place, a band of rows at a time."""
    for top in range(0, image.shape[2], rows):
        band = image[:, :, top:top + rows]
        band.copy_(module(band))


# -- the networks tiles run -----------------------------------------------------


def _network(network):
    """(modules in order, stride: image sizes must be multiples of it) of
    a MUNIT-design generator or style encoder, or a ValueError."""
    from fastgram.models.generator import Generator
    from fastgram.models.style_encoder import StyleEncoder

    if isinstance(network, Generator):
        modules = (list(network.encoder.model) + list(network.decoder.adain_blocks)
                   + list(network.decoder.upsample))
        return modules, network.stride
    if isinstance(network, StyleEncoder):
        return list(network.features), 2 ** network.n_downsampling
    raise ValueError(f"tile: cannot tile a {type(network).__name__} layer by layer")


def smallest_tile(network) -> int:
    """Twice the widest halo of any one layer pass, in image pixels, and at
    least two strides; a multiple of the stride."""
    modules, stride = _network(network)
    widest, scale, upsample = 0, 1, None
    for module in modules:
        convs = []
        if isinstance(module, ConvNormAct):
            convs = [module.conv]
        elif isinstance(module, ResidualBlock):
            convs = [c.conv for c in module.block]
        elif isinstance(module, AdaINResidualBlock):
            convs = [module.conv1, module.conv2]
        elif type(module) is torch.nn.Conv2d:
            convs = [module]
        elif isinstance(module, torch.nn.Upsample):
            upsample = module
        for conv in convs:
            op, upsample = _Conv(conv, upsample), None
            widest = max(widest, op.halo * scale)
            scale = round(scale / op.factor)
    smallest = max(2 * widest, 2 * stride)
    return stride * math.ceil(smallest / stride)


def check_tile(tile, network) -> int:
    """``tile`` rounded down to a multiple of the network's stride, or a
    ValueError when it is smaller than :func:`smallest_tile`."""
    validation.integer(tile, "tile")
    smallest = smallest_tile(network)
    if tile < smallest:
        raise ValueError(f"tile: expected at least {smallest} pixels (twice the widest halo "
                         f"of one layer of the {type(network).__name__}), got {tile}")
    return tile - tile % _network(network)[1]


def render(generator, batch: torch.Tensor, params: torch.Tensor, tile: int,
           masks: Optional[torch.Tensor] = None, progress: bool = False) -> torch.Tensor:
    """``generator.render(generator.encode(batch), params)`` in tiles of
    ``tile`` image pixels, layer by layer (see the module docstring).

    ``batch`` (B, 3, H, W) with H, W multiples of the generator's stride;
    ``params`` (B, P) from ``generator.style_params``, or (B, K, P) with
    ``masks`` (K, 1, H / stride, W / stride) summing to 1 over K (regional
    styles, as ``render_regions``). Returns (B, 3, H, W) float32."""
    tile = check_tile(tile, generator)
    modules, _ = _network(generator)
    runner = _Runner(batch, tile, None if masks is None else masks.cpu().float(),
                     _passes(modules), progress, "stylise")
    walker = _Walker(runner, params.float(), regional=masks is not None)
    out = torch.empty(batch.shape[0], generator.output_nc, *batch.shape[2:],
                      dtype=torch.float32, device=batch.device)
    walker.walk(Plane(_TensorStore(batch), 1, batch.shape[1]), modules, out)
    return out


def encode_style(encoder, batch: torch.Tensor, tile: int, progress: bool = False) -> torch.Tensor:
    """``encoder(batch)`` for a MUNIT-design style encoder
    (:class:`fastgram.models.StyleEncoder`) in tiles of ``tile`` pixels:
    its convolutions layer by layer, the global average pooled over all
    tiles. Returns (B, style_dim)."""
    tile = check_tile(tile, encoder)
    modules, _ = _network(encoder)
    runner = _Runner(batch, tile, None, _passes(modules), progress, "style")
    pooled = _Walker(runner, None, regional=False).walk(
        Plane(_TensorStore(batch), 1, batch.shape[1]), modules)
    return encoder.fc(pooled.to(batch.device, encoder.fc.weight.dtype))


__all__ = ["Plane", "check_tile", "encode_style", "render", "smallest_tile"]
