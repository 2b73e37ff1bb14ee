"""Multi-scale PatchGAN discriminator (pix2pixHD), returning logits."""

from __future__ import annotations

from typing import List

import torch

from fastgram.models.blocks import ConvNormAct, NormFactory, check_norm_layer
from fastgram.nn.normalization import InstanceNorm2d
from fastgram import validation

OUTPUTS = ("patch", "image")


class PatchDiscriminator(torch.nn.Module):
    """One scale: stride-2 convolutions with leaky ReLU, then a logit map
    (``output="patch"``, (B, 1, h, w)) or one logit per image
    (``output="image"``, (B, 1): global average pooling and a 1x1
    convolution). Padding 2 on the 4x4 convolutions keeps every map at least
    1x1, so any input size works."""

    def __init__(
        self,
        input_nc: int,
        ndf: int,
        n_layers: int,
        norm_layer: NormFactory,
        spectral_norm: bool,
        output: str,
        negative_slope: float,
    ):
        super().__init__()
        wrap = torch.nn.utils.parametrizations.spectral_norm if spectral_norm else None
        common = dict(
            kernel_size=4,
            padding=2,
            activation="leaky_relu",
            negative_slope=negative_slope,
            conv_wrapper=wrap,
        )
        # No norm on the first layer (it would normalise the raw image away).
        layers = [ConvNormAct(input_nc, ndf, stride=2, **common)]
        channels = ndf
        for n in range(1, n_layers + 1):
            out_channels = ndf * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers.append(
                ConvNormAct(channels, out_channels, stride=stride, norm_layer=norm_layer, **common)
            )
            channels = out_channels
        if output == "image":
            layers.append(torch.nn.AdaptiveAvgPool2d(1))
            head = torch.nn.Conv2d(channels, 1, kernel_size=1)
        else:
            head = torch.nn.Conv2d(channels, 1, kernel_size=4, padding=2)
        layers.append(head if wrap is None else wrap(head))
        self.model = torch.nn.Sequential(*layers)
        self.output = output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        return logits.flatten(1) if self.output == "image" else logits


class Discriminator(torch.nn.Module):
    """Multi-scale PatchGAN: the same architecture at ``num_scales`` scales.

    Scale k sees the input average-pooled k times by 2. ``forward(x)``
    returns a list of ``num_scales`` logit tensors, finest scale first:
    (B, 1, h_k, w_k) maps for ``output="patch"``, (B, 1) for
    ``output="image"``. No sigmoid: losses take logits (e.g.
    ``binary_cross_entropy_with_logits`` or hinge/least-squares losses).

    ``Discriminator(num_scales=1, output="image")`` is the single-scale
    DCGAN-style discriminator with one logit per image.

    Args:
        input_nc: channels of the images judged.
        ndf: channels of the first convolution; doubled per layer up to 8x.
        n_layers: stride-2 layers after the first (3 gives the 70x70
            PatchGAN).
        num_scales: how many scales.
        norm_layer: callable ``channels -> Module`` or ``None`` (default
            :class:`fastgram.nn.InstanceNorm2d`; ``None`` is the usual choice
            with spectral normalisation).
        spectral_norm: wrap every convolution in spectral normalisation.
        output: ``"patch"`` or ``"image"``.
        negative_slope: slope of the leaky ReLUs.
    """

    def __init__(
        self,
        input_nc: int = 3,
        ndf: int = 64,
        n_layers: int = 3,
        num_scales: int = 3,
        norm_layer: NormFactory = InstanceNorm2d,
        spectral_norm: bool = False,
        output: str = "patch",
        negative_slope: float = 0.2,
    ):
        super().__init__()
        self.input_nc = validation.integer(input_nc, "input_nc")
        validation.integer(ndf, "ndf")
        validation.integer(n_layers, "n_layers")
        self.num_scales = validation.integer(num_scales, "num_scales")
        check_norm_layer(norm_layer)
        validation.boolean(spectral_norm, "spectral_norm")
        if output not in OUTPUTS:
            raise ValueError(f"output: expected one of {OUTPUTS}, got {output!r}")
        negative_slope = validation.real_number(negative_slope, "negative_slope")
        self.output = output
        self.scales = torch.nn.ModuleList(
            PatchDiscriminator(
                input_nc, ndf, n_layers, norm_layer, spectral_norm, output, negative_slope
            )
            for _ in range(num_scales)
        )
        self.downsample = torch.nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        validation.tensor(x, "x", (4,))
        if x.shape[1] != self.input_nc:
            raise ValueError(
                f"x: expected {self.input_nc} channels (input_nc), got shape {tuple(x.shape)}"
            )
        logits = []
        for k, scale in enumerate(self.scales):
            if k:
                x = self.downsample(x)
            logits.append(scale(x))
        return logits
