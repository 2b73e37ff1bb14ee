"""Any-style generator: the frozen VGG19 as content encoder, AdaIN on its
features, a learned decoder back to pixels (Huang & Belongie, 2017).

A style is described by the per-channel means and standard deviations of
one VGG19 activation (``relu3_1`` by default; Huang & Belongie use
``relu4_1``, which transfers larger structures but whose decoder learns far
more slowly): that pair *is* the style
code, computed by :class:`VGGStatisticsEncoder` with nothing learned, so a
style never seen in training gets a code as meaningful as any other. The
generator normalises the content's activation of the same layer and gives
it the style's statistics (AdaIN); the decoder, the only trained part,
renders those features as an image. What the decoder learns is largely how
to invert VGG19 features, which does not depend on the training styles.

The decoder mirrors VGG19 from the layer back to the input: the same number
of 3x3 convolutions per resolution, reflect padding, and bilinear 2x
upsampling. Nearest-neighbour upsampling and transposed convolutions both
leave a lattice at the upsampling period that the VGG losses do not punish;
bilinear upsampling has no such pattern to start from.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from fastgram import ops, validation
from fastgram.models.frozen_trunk import FrozenTrunkModule
from fastgram.models.regions import regional_adain
from fastgram.models.vgg_style_encoder import channel_statistics
from fastgram.nn.vgg import VGG19Features, layer_channels, layer_stride

# Layers the generator can work at (relu1_1 leaves nothing to decode).
ADAIN_LAYERS = ("relu2_1", "relu3_1", "relu4_1", "relu5_1")
# VGG19's 3x3 convolutions per block, mirrored by the decoder.
_BLOCK_CONVS = (2, 2, 4, 4, 4)


def _check_layer(layer: str) -> str:
    return validation.one_of(layer, "layer", ADAIN_LAYERS)


def _trunk(layer: str, vgg_weights) -> VGG19Features:
    # Random weights (vgg_weights=None, for tests) come from a fixed seed:
    # the trunk is not saved, so a reloaded module must rebuild the same one.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return VGG19Features(layers=(layer,), weights=vgg_weights, output="list")


def _split(params: torch.Tensor):
    """(B, 2C) statistics -> means (B, C), standard deviations (B, C)."""
    return params.chunk(2, dim=1)


class VGGStatisticsEncoder(FrozenTrunkModule):
    """Image (B, 3, H, W) in [0, 1] -> style code (B, 2C): the per-channel
    means, then the standard deviations (biased, ``sqrt(var + eps)``), of
    the VGG19 activation ``layer``. Nothing is learned.

    ``forward`` also takes those statistics precomputed (B, 2C), as a
    trainer whose loss network already ran the same VGG19 pass has them,
    and returns them unchanged.
    """

    def __init__(self, layer: str = "relu3_1", vgg_weights: Optional[str] = "imagenet"):
        super().__init__()
        self.layer = _check_layer(layer)
        self._hold_trunk(_trunk(layer, vgg_weights))
        self.layers = (layer,)
        self.style_dim = 2 * layer_channels(layer)

    @property
    def min_size(self) -> int:
        return self.vgg.min_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        validation.tensor(x, "x", (2, 4))
        if x.dim() == 2:
            if x.shape[1] != self.style_dim:
                raise ValueError(f"x: expected statistics of width {self.style_dim}, "
                                 f"got shape {tuple(x.shape)}")
            return x.float()
        if x.shape[1] != 3:
            raise ValueError(f"x: expected RGB images (B, 3, H, W), got shape {tuple(x.shape)}")
        if min(x.shape[2:]) < self.min_size:
            raise ValueError(f"x: expected height and width of at least {self.min_size}, "
                             f"got shape {tuple(x.shape)}")
        return channel_statistics(self.vgg(x))

    def extra_repr(self) -> str:
        return f"layer={self.layer!r}, vgg_weights={self.vgg.weights!r}"


class AdaINDecoder(torch.nn.Sequential):
    """VGG19 activation ``layer`` (B, C, H/s, W/s) -> image (B, 3, H, W) in
    [0, 1]; ``width`` channels at full resolution, doubled per halving (64
    mirrors VGG19 exactly; 32 costs a quarter)."""

    def __init__(self, layer: str = "relu3_1", width: int = 64):
        levels = int(math.log2(layer_stride(_check_layer(layer))))
        validation.integer(width, "width")
        channels = width * 2 ** (levels - 1)
        layers = [_conv(layer_channels(layer), channels), torch.nn.ReLU()]
        for level in reversed(range(levels)):
            layers.append(torch.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            count = _BLOCK_CONVS[level]
            for index in range(count):
                last = index == count - 1
                out = (channels // 2 if level else 3) if last else channels
                layers.append(_conv(channels, out))
                if not (last and level == 0):
                    layers.append(torch.nn.ReLU())
                channels = out
        layers.append(torch.nn.Sigmoid())
        super().__init__(*layers)


def _conv(in_channels: int, out_channels: int) -> torch.nn.Conv2d:
    return torch.nn.Conv2d(in_channels, out_channels, 3, padding=1, padding_mode="reflect")


class AdaINGenerator(FrozenTrunkModule):
    """Content image + style code -> stylised image in [0, 1].

    Args:
        layer: the VGG19 activation where the style is applied (one of
            :data:`ADAIN_LAYERS`): deeper layers transfer larger structures
            of a style, shallower ones keep more of the content.
        width: the decoder's channels at full resolution.
        vgg_weights: the frozen encoder's VGG19 weights (see
            :class:`fastgram.nn.VGG19Features`; ``None``: random, for tests).
        eps: added to the variance before the square root, as everywhere in
            fastgram.

    The style code is what :class:`VGGStatisticsEncoder` of the same layer
    returns: (B, 2C) channel means then standard deviations, or (1, 2C) for
    one style for the whole batch. Codes can be averaged or interpolated.
    ``forward(content, style_code)`` takes (B, 3, H, W) in [0, 1] with H and
    W multiples of :attr:`stride`.
    """

    def __init__(self, layer: str = "relu3_1", width: int = 64,
                 vgg_weights: Optional[str] = "imagenet", eps: float = 1e-5):
        super().__init__()
        self.layer = _check_layer(layer)
        self.eps = validation.positive(eps, "eps")
        self._hold_trunk(_trunk(layer, vgg_weights))
        self.decoder = AdaINDecoder(layer, width)
        self.style_dim = 2 * layer_channels(layer)
        self.stride = layer_stride(layer)
        # The decoder sees the features at the scale of a VGG19 fed [0, 1]
        # inputs: the Caffe weights take 0-255 pixels, and their relu4_1
        # activations (standard deviation about 670 on photos) would make
        # every Adam step of the first convolution hundreds of times too
        # large (measured: the content loss did not fall in 1000 steps).
        self.feature_scale = float(self.vgg.input_scale.mean())

    @property
    def min_size(self) -> int:
        # The decoder's first reflect-padded convolution needs 2 positions.
        return 2 * self.stride

    def encode(self, content: torch.Tensor) -> torch.Tensor:
        """The content code: the frozen VGG19's activation ``layer``."""
        validation.tensor(content, "content", (4,))
        if content.shape[1] != 3:
            raise ValueError(f"content: expected RGB images (B, 3, H, W), "
                             f"got shape {tuple(content.shape)}")
        height, width = content.shape[2:]
        if height % self.stride or width % self.stride or min(height, width) < self.min_size:
            raise ValueError(
                f"content: expected height and width multiples of {self.stride} and at least "
                f"{self.min_size} (layer={self.layer!r}), got shape {tuple(content.shape)}")
        return self.vgg(content)[0]

    def style_params(self, style_code: torch.Tensor, batch: int) -> torch.Tensor:
        """(batch, 2C) statistics the content features are given: the codes
        themselves (AdaIN takes a style's statistics as they are)."""
        validation.tensor(style_code, "style_code", (2,))
        if style_code.shape[1] != self.style_dim or style_code.shape[0] not in (1, batch):
            raise ValueError(
                f"style_code: expected shape ({batch}, {self.style_dim}) or (1, {self.style_dim}), "
                f"got {tuple(style_code.shape)}")
        return style_code.float().expand(batch, -1)

    def transfer(self, content_code: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """AdaIN: ``content_code`` normalised per channel, then scaled and
        shifted to the standard deviations and means in ``params``."""
        mean, std = _split(params)
        return ops.instance_norm(content_code.float(), weight=std, bias=mean, eps=self.eps)

    def render(self, content_code: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """The image of ``content_code`` given the statistics ``params``
        (from :meth:`style_params`, possibly blended)."""
        return self.decoder(self.transfer(content_code, params) * self.feature_scale)

    def render_regions(self, content_code: torch.Tensor, params: torch.Tensor,
                       masks: torch.Tensor) -> torch.Tensor:
        """:meth:`render` with one set of statistics per region: ``params``
        (B, K, 2C), ``masks`` (K, 1, h, w) at the content code's resolution,
        summing to 1 over K; each region is normalised with its own
        statistics (:mod:`fastgram.models.regions`)."""
        mean, std = params.chunk(2, dim=2)
        features = regional_adain(content_code.float(), masks, std, mean, self.eps)
        return self.decoder(features * self.feature_scale)

    def decode(self, content_code: torch.Tensor, style_code: torch.Tensor) -> torch.Tensor:
        validation.tensor(content_code, "content_code", (4,))
        channels = self.style_dim // 2
        if content_code.shape[1] != channels or min(content_code.shape[2:]) < 2:
            raise ValueError(f"content_code: expected ({channels}, H >= 2, W >= 2) per sample, "
                             f"got shape {tuple(content_code.shape)}")
        validation.same_device(style_code, "style_code", content_code, "content_code")
        return self.render(content_code, self.style_params(style_code, content_code.shape[0]))

    def forward(self, content: torch.Tensor, style_code: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(content), style_code)

    def extra_repr(self) -> str:
        return f"layer={self.layer!r}, vgg_weights={self.vgg.weights!r}, eps={self.eps}"
