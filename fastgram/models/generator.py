"""Style-code-conditioned generator: content encoder + AdaIN decoder.

Follows the MUNIT design (Huang et al., 2018): the content encoder maps an
image to a spatial content code with instance-normalised convolutions,
downsampling and residual blocks; the decoder renders a content code in a
given style through residual blocks whose instance norms take their scale and
shift, per sample, from an MLP applied to the style code, then upsamples back
to an image.

Images are RGB in [0, 1] everywhere in fastgram (:data:`OUTPUT_RANGE`): the
generator's output goes through a sigmoid, and the VGG19 feature extractor
takes the same range.
"""

from __future__ import annotations

import functools
from typing import Optional

import torch

from fastgram.models.blocks import (
    AdaINResidualBlock,
    ConvNormAct,
    NormFactory,
    ResidualBlock,
    StyleMLP,
    check_norm_layer,
)
from fastgram.nn.normalization import InstanceNorm2d
from fastgram import validation

OUTPUT_RANGE = (0.0, 1.0)

# Layer norm over (C, H, W) with a per-channel affine step, as MUNIT's
# decoder uses after upsampling: an instance norm there would wash out the
# style statistics the AdaIN blocks just set.
layer_norm_2d = functools.partial(torch.nn.GroupNorm, 1)


class ContentEncoder(torch.nn.Module):
    """Image (B, input_nc, H, W) -> content code (B, ngf * 2**n, H / 2**n, W / 2**n)."""

    def __init__(
        self,
        input_nc: int,
        ngf: int,
        norm_layer: NormFactory,
        n_downsampling: int,
        n_res_blocks: int,
    ):
        super().__init__()
        layers = [
            ConvNormAct(input_nc, ngf, 7, padding=3, padding_mode="reflect", norm_layer=norm_layer)
        ]
        channels = ngf
        for _ in range(n_downsampling):
            layers.append(
                ConvNormAct(
                    channels,
                    channels * 2,
                    4,
                    stride=2,
                    padding=1,
                    padding_mode="reflect",
                    norm_layer=norm_layer,
                )
            )
            channels *= 2
        layers += [ResidualBlock(channels, norm_layer) for _ in range(n_res_blocks)]
        self.model = torch.nn.Sequential(*layers)
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Decoder(torch.nn.Module):
    """Content code + AdaIN parameters -> image in [0, 1]."""

    def __init__(
        self,
        channels: int,
        output_nc: int,
        n_upsampling: int,
        n_adain_blocks: int,
        upsample_norm_layer: NormFactory,
    ):
        super().__init__()
        self.adain_blocks = torch.nn.ModuleList(
            AdaINResidualBlock(channels) for _ in range(n_adain_blocks)
        )
        layers = []
        for _ in range(n_upsampling):
            layers += [
                torch.nn.Upsample(scale_factor=2, mode="nearest"),
                ConvNormAct(
                    channels,
                    channels // 2,
                    5,
                    padding=2,
                    padding_mode="reflect",
                    norm_layer=upsample_norm_layer,
                ),
            ]
            channels //= 2
        layers += [
            torch.nn.Conv2d(channels, output_nc, 7, padding=3, padding_mode="reflect"),
            torch.nn.Sigmoid(),
        ]
        self.upsample = torch.nn.Sequential(*layers)

    @property
    def num_adain_params(self) -> int:
        return sum(block.num_params for block in self.adain_blocks)

    def forward(self, code: torch.Tensor, adain_params: torch.Tensor) -> torch.Tensor:
        offset = 0
        for block in self.adain_blocks:
            code = block(code, adain_params[:, offset : offset + block.num_params])
            offset += block.num_params
        return self.upsample(code)

    def forward_regions(self, code: torch.Tensor, adain_params: torch.Tensor,
                        masks: torch.Tensor) -> torch.Tensor:
        """``forward`` with (B, K, P) parameters, one set per region of
        ``masks`` (K, 1, h, w) at the code's resolution."""
        offset = 0
        for block in self.adain_blocks:
            code = block.forward_regions(code, adain_params[..., offset : offset + block.num_params],
                                         masks)
            offset += block.num_params
        return self.upsample(code)


class Generator(torch.nn.Module):
    """Content image + style code -> stylised image in [0, 1].

    Args:
        input_nc: channels of the content image.
        output_nc: channels of the generated image.
        ngf: channels after the first convolution; doubled at each
            downsampling.
        norm_layer: callable ``channels -> Module`` for the content encoder's
            norms (default :class:`fastgram.nn.InstanceNorm2d`, no affine);
            ``torch.nn.InstanceNorm2d`` works too (then
            :func:`fastgram.patch` swaps it), ``None`` means no norm.
        style_dim: length of the style code.
        noise_dim: length of an optional noise vector concatenated to the
            style code before the MLP (0: none).
        n_downsampling: stride-2 convolutions in the encoder (and 2x
            upsamplings in the decoder); H and W must be multiples of
            ``2**n_downsampling``.
        n_res_blocks: residual blocks in the content encoder.
        n_adain_blocks: AdaIN residual blocks in the decoder (default
            ``n_res_blocks``).
        mlp_dim, mlp_layers: width and depth of the style MLP.
        upsample_norm_layer: norm after each upsampling convolution (default
            a layer norm, ``GroupNorm(1, C)``).

    ``forward(content, style_code, noise=None)``: ``content`` (B, input_nc,
    H, W); ``style_code`` (B, style_dim), or (1, style_dim) for one style for
    the whole batch; ``noise`` (B, noise_dim) when ``noise_dim > 0``, drawn
    from N(0, 1) in training mode and zero in eval mode when not given.
    Returns (B, output_nc, H, W) in [0, 1].
    """

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 64,
        norm_layer: NormFactory = InstanceNorm2d,
        *,
        style_dim: int = 8,
        noise_dim: int = 0,
        n_downsampling: int = 2,
        n_res_blocks: int = 4,
        n_adain_blocks: Optional[int] = None,
        mlp_dim: int = 256,
        mlp_layers: int = 3,
        upsample_norm_layer: NormFactory = layer_norm_2d,
    ):
        super().__init__()
        self.input_nc = validation.integer(input_nc, "input_nc")
        self.output_nc = validation.integer(output_nc, "output_nc")
        validation.integer(ngf, "ngf")
        check_norm_layer(norm_layer)
        check_norm_layer(upsample_norm_layer, "upsample_norm_layer")
        self.style_dim = validation.integer(style_dim, "style_dim")
        self.noise_dim = validation.integer(noise_dim, "noise_dim", minimum=0)
        self.n_downsampling = validation.integer(n_downsampling, "n_downsampling", minimum=0)
        validation.integer(n_res_blocks, "n_res_blocks", minimum=0)
        n_adain_blocks = n_res_blocks if n_adain_blocks is None else n_adain_blocks
        validation.integer(n_adain_blocks, "n_adain_blocks")
        validation.integer(mlp_dim, "mlp_dim")
        validation.integer(mlp_layers, "mlp_layers")

        self.encoder = ContentEncoder(input_nc, ngf, norm_layer, n_downsampling, n_res_blocks)
        self.decoder = Decoder(
            self.encoder.out_channels,
            output_nc,
            n_downsampling,
            n_adain_blocks,
            upsample_norm_layer,
        )
        self.mlp = StyleMLP(
            style_dim + noise_dim, mlp_dim, self.decoder.num_adain_params, mlp_layers
        )
        # Added to the MLP output: scales are predicted as offsets from 1.
        # Every block's parameters are laid out (w1, b1, w2, b2), C each.
        channels = self.encoder.out_channels
        offset = torch.tensor([1.0, 0.0]).repeat_interleave(channels).repeat(2 * n_adain_blocks)
        self.register_buffer("adain_offset", offset, persistent=False)

    @property
    def stride(self) -> int:
        """Height and width must be multiples of this."""
        return 2**self.n_downsampling

    @property
    def min_size(self) -> int:
        # Reflect padding needs more pixels than it pads: 4 for the 7x7 input
        # convolution, 2 for the 3x3 ones at the bottleneck.
        return max(4, 2 ** (self.n_downsampling + 1))

    def _check_content(self, content: torch.Tensor, name: str = "content") -> None:
        validation.tensor(content, name, (4,))
        if content.shape[1] != self.input_nc:
            raise ValueError(
                f"{name}: expected {self.input_nc} channels (input_nc), "
                f"got shape {tuple(content.shape)}"
            )
        factor = 2**self.n_downsampling
        height, width = content.shape[2:]
        if height % factor or width % factor or min(height, width) < self.min_size:
            raise ValueError(
                f"{name}: expected height and width multiples of {factor} and at least "
                f"{self.min_size} (n_downsampling={self.n_downsampling}), "
                f"got shape {tuple(content.shape)}"
            )

    def encode(self, content: torch.Tensor) -> torch.Tensor:
        """The content code of ``content``."""
        self._check_content(content)
        return self.encoder(content)

    def adain_params(
        self, style_code: torch.Tensor, batch: int, noise: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """(batch, P) AdaIN parameters: per block, scale and shift of its two
        norms; scales are ``1 + MLP output``."""
        validation.tensor(style_code, "style_code", (2,))
        if style_code.shape[1] != self.style_dim or style_code.shape[0] not in (1, batch):
            raise ValueError(
                f"style_code: expected shape ({batch}, {self.style_dim}) or (1, {self.style_dim}), "
                f"got {tuple(style_code.shape)}"
            )
        style_code = style_code.expand(batch, -1)
        if self.noise_dim:
            if noise is None:
                if self.training:
                    noise = torch.randn(
                        batch, self.noise_dim, device=style_code.device, dtype=style_code.dtype
                    )
                else:
                    noise = style_code.new_zeros(batch, self.noise_dim)
            else:
                validation.tensor(noise, "noise", (2,))
                validation.same_device(noise, "noise", style_code, "style_code")
                if tuple(noise.shape) != (batch, self.noise_dim):
                    raise ValueError(
                        f"noise: expected shape ({batch}, {self.noise_dim}), "
                        f"got {tuple(noise.shape)}"
                    )
            style_code = torch.cat([style_code, noise.to(style_code.dtype)], dim=1)
        elif noise is not None:
            raise ValueError("noise: this generator was built with noise_dim=0 and takes no noise")
        return self.mlp(style_code) + self.adain_offset.to(style_code.dtype)

    def style_params(self, style_code: torch.Tensor, batch: int) -> torch.Tensor:
        """The per-sample parameters :meth:`render` takes (the AdaIN
        parameters; blending two of them blends the styles)."""
        return self.adain_params(style_code, batch)

    def render(self, content_code: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """The image of ``content_code`` given :meth:`style_params`."""
        return self.decoder(content_code, params)

    def render_regions(self, content_code: torch.Tensor, params: torch.Tensor,
                       masks: torch.Tensor) -> torch.Tensor:
        """:meth:`render` with one set of :meth:`style_params` per region:
        ``params`` (B, K, P), ``masks`` (K, 1, h, w) at the content code's
        resolution, summing to 1 over K (every AdaIN norm of the decoder
        takes per-region statistics, :mod:`fastgram.models.regions`)."""
        return self.decoder.forward_regions(content_code, params, masks)

    def decode(
        self,
        content_code: torch.Tensor,
        style_code: torch.Tensor,
        noise: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Render ``content_code`` (from :meth:`encode`) in the style ``style_code``."""
        validation.tensor(content_code, "content_code", (4,))
        if content_code.shape[1] != self.encoder.out_channels:
            raise ValueError(
                f"content_code: expected {self.encoder.out_channels} channels, "
                f"got shape {tuple(content_code.shape)}"
            )
        if min(content_code.shape[2:]) < 2:
            raise ValueError(
                "content_code: expected height and width of at least 2, "
                f"got shape {tuple(content_code.shape)}"
            )
        validation.tensor(style_code, "style_code", (2,))
        validation.same_device(style_code, "style_code", content_code, "content_code")
        params = self.adain_params(style_code, content_code.shape[0], noise)
        return self.decoder(content_code, params)

    def forward(
        self, content: torch.Tensor, style_code: torch.Tensor, noise: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        return self.decode(self.encode(content), style_code, noise)
