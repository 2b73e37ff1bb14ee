"""Style encoder on the frozen, pretrained VGG19: image -> style code.

A style encoder learned from scratch on a handful of images maps every style
it never saw to somewhere arbitrary. This one describes an image by what the
AdaIN and Gram-loss literature found carries style, the per-channel means
and standard deviations of VGG19's relu1_1 ... relu4_1 activations, and only
learns a small MLP from those statistics to the generator's style code. The
statistics of an unseen painting are then close to those of similar
training styles, so its code is too.

The VGG trunk is pretrained and frozen (see
:class:`fastgram.models.frozen_trunk.FrozenTrunkModule`); it is rebuilt from
the weights named by ``vgg_weights``.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from fastgram import validation
from fastgram.models.frozen_trunk import FrozenTrunkModule
from fastgram.nn.vgg import VGG19Features, layer_channels

STATISTICS_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


def channel_statistics(
    features: Sequence[torch.Tensor], eps: float = 1e-5
) -> torch.Tensor:
    """(B, 2 * sum C_l): per layer the channel means then the channel
    standard deviations (biased), taken over H x W."""
    parts = []
    for f in features:
        flat = f.float().flatten(2)
        var, mean = torch.var_mean(flat, dim=2, correction=0)
        parts += [mean, (var + eps).sqrt()]
    return torch.cat(parts, dim=1)


class VGGStyleEncoder(FrozenTrunkModule):
    """Image (B, 3, H, W) in [0, 1] -> style code (B, style_dim).

    Args:
        style_dim: length of the style code.
        hidden: width of the MLP's hidden layer.
        layers: the VGG19 layers whose statistics describe the style.
        vgg_weights: the VGG19 weights (see :class:`fastgram.nn.VGG19Features`);
            ``None`` gives random weights drawn from a fixed seed (for tests).

    The statistics go through ``log1p`` (they span four orders of magnitude
    at the Caffe weights' 0-255 scale) before the MLP.
    """

    def __init__(
        self,
        style_dim: int = 8,
        hidden: int = 256,
        layers: Sequence[str] = STATISTICS_LAYERS,
        vgg_weights: Optional[str] = "imagenet",
    ):
        super().__init__()
        self.style_dim = validation.integer(style_dim, "style_dim")
        validation.integer(hidden, "hidden")
        # Random weights (vgg_weights=None) come from a fixed seed: the trunk
        # is not saved, so a reloaded encoder must rebuild the same one.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            vgg = VGG19Features(layers=tuple(layers), weights=vgg_weights, output="list")
        self._hold_trunk(vgg)
        self.layers = vgg.layers
        width = 2 * sum(layer_channels(name) for name in vgg.layers)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(width, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, style_dim)
        )

    @property
    def min_size(self) -> int:
        return self.vgg.min_size

    def statistics(self, image: torch.Tensor) -> torch.Tensor:
        """The (B, 2 * sum C_l) VGG statistics of ``image``; differentiable
        with respect to ``image`` when it requires grad (the style
        reconstruction loss on generated images), else computed without a
        graph."""
        validation.tensor(image, "image", (4,))
        if image.shape[1] != 3:
            raise ValueError(f"image: expected RGB images (B, 3, H, W), got shape {tuple(image.shape)}")
        if min(image.shape[2:]) < self.min_size:
            raise ValueError(
                f"image: expected height and width of at least {self.min_size}, "
                f"got shape {tuple(image.shape)}"
            )
        with torch.set_grad_enabled(torch.is_grad_enabled() and image.requires_grad):
            return channel_statistics(self.vgg(image.float()))

    @property
    def statistics_width(self) -> int:
        return self.mlp[0].in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Style codes (B, style_dim) of images (B, 3, H, W), or of their
        precomputed :meth:`statistics` (B, :attr:`statistics_width`) (a
        trainer that already ran the same VGG19 passes those)."""
        validation.tensor(x, "x", (2, 4))
        if x.dim() == 4:
            x = self.statistics(x)
        elif x.shape[1] != self.statistics_width:
            raise ValueError(f"x: expected statistics of width {self.statistics_width}, "
                             f"got shape {tuple(x.shape)}")
        return self.mlp(torch.log1p(x.float()))

    def extra_repr(self) -> str:
        return f"layers={list(self.layers)}, vgg_weights={self.vgg.weights!r}"

