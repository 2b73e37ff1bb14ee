"""Building blocks shared by the generator, style encoder and discriminator.

Only ``fastgram.nn`` layers and standard torch layers; no kernel code.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from fastgram.nn.adaptive_norm import AdaptiveInstanceNorm2d
from fastgram.models.regions import regional_adain
from fastgram.nn.norm_activation import NormActivation

NormFactory = Optional[Callable[[int], torch.nn.Module]]


def check_norm_layer(norm_layer, name: str = "norm_layer") -> NormFactory:
    """``norm_layer`` must be ``None`` or a callable ``channels -> Module``."""
    if norm_layer is not None and not callable(norm_layer):
        raise TypeError(
            f"{name}: expected a callable taking a channel count (e.g. "
            f"fastgram.nn.InstanceNorm2d) or None, got {type(norm_layer).__name__}"
        )
    return norm_layer


def make_norm(norm_layer: NormFactory, channels: int) -> Optional[torch.nn.Module]:
    if norm_layer is None:
        return None
    norm = norm_layer(channels)
    if not isinstance(norm, torch.nn.Module):
        raise TypeError(
            f"norm_layer: expected it to return a torch.nn.Module, got {type(norm).__name__}"
        )
    return norm


class ConvNormAct(torch.nn.Sequential):
    """Conv2d -> normalisation -> activation (the last two as one
    :class:`fastgram.nn.NormActivation`, fused for fastgram instance norms)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        padding_mode: str = "zeros",
        norm_layer: NormFactory = None,
        activation: Optional[str] = "relu",
        negative_slope: float = 0.2,
        conv_wrapper: Optional[Callable[[torch.nn.Module], torch.nn.Module]] = None,
    ):
        norm = make_norm(norm_layer, out_channels)
        conv = torch.nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            padding_mode=padding_mode,
            # A bias in front of an instance/group norm is subtracted away again.
            bias=norm is None,
        )
        if conv_wrapper is not None:
            conv = conv_wrapper(conv)
        super().__init__()
        self.conv = conv
        self.norm_act = NormActivation(norm, activation, negative_slope)


class ResidualBlock(torch.nn.Module):
    """``x + (conv -> norm -> relu -> conv -> norm)(x)``, reflect padding."""

    def __init__(self, channels: int, norm_layer: NormFactory):
        super().__init__()
        self.block = torch.nn.Sequential(
            ConvNormAct(
                channels, channels, 3, padding=1, padding_mode="reflect", norm_layer=norm_layer
            ),
            ConvNormAct(
                channels,
                channels,
                3,
                padding=1,
                padding_mode="reflect",
                norm_layer=norm_layer,
                activation=None,
            ),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class AdaINResidualBlock(torch.nn.Module):
    """Residual block whose two norms are AdaIN with per-sample parameters.

    ``forward(x, params)`` takes ``params`` of shape (B, 4 * C): scale and
    shift of the first norm, then of the second (see :attr:`num_params`).
    The first norm has the ReLU fused in.
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.channels = channels
        self.conv1 = torch.nn.Conv2d(
            channels, channels, 3, padding=1, padding_mode="reflect", bias=False
        )
        self.norm1 = AdaptiveInstanceNorm2d(channels, eps, activation="relu")
        self.conv2 = torch.nn.Conv2d(
            channels, channels, 3, padding=1, padding_mode="reflect", bias=False
        )
        self.norm2 = AdaptiveInstanceNorm2d(channels, eps, activation=None)

    @property
    def num_params(self) -> int:
        return 4 * self.channels

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, b2 = params.split(self.channels, dim=1)
        h = self.norm1(self.conv1(x), w1, b1)
        h = self.norm2(self.conv2(h), w2, b2)
        return x + h

    def forward_regions(self, x: torch.Tensor, params: torch.Tensor,
                        masks: torch.Tensor) -> torch.Tensor:
        """``forward`` with one parameter set per region: ``params``
        (B, K, 4 * C), ``masks`` (K, 1, H, W) (see
        :func:`fastgram.models.regions.regional_adain`)."""
        w1, b1, w2, b2 = params.split(self.channels, dim=2)
        h = regional_adain(self.conv1(x), masks, w1, b1, self.norm1.eps, "relu")
        h = regional_adain(self.conv2(h), masks, w2, b2, self.norm2.eps)
        return x + h.to(x.dtype)


class StyleMLP(torch.nn.Sequential):
    """Style code (plus optional noise) -> all AdaIN parameters of a decoder.

    The last layer predicts the scales as offsets from 1 (see
    :meth:`Generator.adain_params`), so a freshly initialised decoder starts
    close to plain instance normalisation.
    """

    def __init__(self, in_features: int, hidden: int, out_features: int, num_layers: int):
        layers = []
        width = in_features
        for _ in range(num_layers - 1):
            layers += [torch.nn.Linear(width, hidden), torch.nn.ReLU()]
            width = hidden
        layers.append(torch.nn.Linear(width, out_features))
        super().__init__(*layers)
