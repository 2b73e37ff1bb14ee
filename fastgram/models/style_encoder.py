"""Style encoder: image -> style code, for any input size."""

from __future__ import annotations

import torch

from fastgram.models.blocks import ConvNormAct, NormFactory, check_norm_layer
from fastgram import validation


class StyleEncoder(torch.nn.Module):
    """Image (B, input_nc, H, W) -> style code (B, style_dim).

    Convolutions (the first ``min(n_downsampling, 2)`` stride-2 ones double
    the channels, the rest keep them), then global average pooling and a
    linear layer, so any H, W >= ``2**n_downsampling`` works. No norm by
    default: normalising per instance would remove the very statistics that
    carry the style (MUNIT's choice).

    Args:
        input_nc: channels of the image.
        style_dim: length of the style code.
        ndf: channels after the first convolution.
        n_downsampling: stride-2 convolutions.
        norm_layer: callable ``channels -> Module`` or ``None``.
    """

    def __init__(
        self,
        input_nc: int = 3,
        style_dim: int = 8,
        ndf: int = 64,
        n_downsampling: int = 4,
        norm_layer: NormFactory = None,
    ):
        super().__init__()
        self.input_nc = validation.integer(input_nc, "input_nc")
        self.style_dim = validation.integer(style_dim, "style_dim")
        validation.integer(ndf, "ndf")
        self.n_downsampling = validation.integer(n_downsampling, "n_downsampling", minimum=0)
        check_norm_layer(norm_layer)

        layers = [
            ConvNormAct(input_nc, ndf, 7, padding=3, padding_mode="reflect", norm_layer=norm_layer)
        ]
        channels = ndf
        for i in range(n_downsampling):
            out_channels = channels * 2 if i < 2 else channels
            layers.append(
                ConvNormAct(
                    channels,
                    out_channels,
                    4,
                    stride=2,
                    padding=1,
                    padding_mode="reflect",
                    norm_layer=norm_layer,
                )
            )
            channels = out_channels
        layers.append(torch.nn.AdaptiveAvgPool2d(1))
        self.features = torch.nn.Sequential(*layers)
        self.fc = torch.nn.Linear(channels, style_dim)

    @property
    def min_size(self) -> int:
        # Reflect padding of 1 needs at least 2 pixels before every stride-2 conv,
        # and 4 for the 7x7 input conv.
        return max(4, 2**self.n_downsampling)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        validation.tensor(image, "image", (4,))
        if image.shape[1] != self.input_nc:
            raise ValueError(
                f"image: expected {self.input_nc} channels (input_nc), "
                f"got shape {tuple(image.shape)}"
            )
        if min(image.shape[2:]) < self.min_size:
            raise ValueError(
                f"image: expected height and width of at least {self.min_size} "
                f"(n_downsampling={self.n_downsampling}), got shape {tuple(image.shape)}"
            )
        return self.fc(self.features(image).flatten(1))
