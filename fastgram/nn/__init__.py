"""``torch.nn`` modules running on fastgram's ops (and so on its kernels)."""

from fastgram.nn.normalization import AdaIN, InstanceNorm2d
from fastgram.nn.style import GramMatrix, StyleLoss

__all__ = ["InstanceNorm2d", "AdaIN", "GramMatrix", "StyleLoss"]
