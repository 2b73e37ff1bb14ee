"""``torch.nn`` modules running on fastgram's ops (and so on its kernels)."""

from fastgram.nn.normalization import AdaIN, InstanceNorm2d
from fastgram.nn.style import GramMatrix, MomentLoss, StyleLoss

__all__ = ["InstanceNorm2d", "AdaIN", "GramMatrix", "StyleLoss", "MomentLoss"]

from fastgram.nn.adaptive_norm import AdaptiveInstanceNorm2d
from fastgram.nn.norm_activation import NormActivation
from fastgram.nn.vgg import VGG19Features

__all__ += ["AdaptiveInstanceNorm2d", "NormActivation", "VGG19Features"]

# MUNIT's protocol (weight/bias assigned as attributes); its class name is
# AdaptiveInstanceNorm2d, which MUNIT's code looks up, hence the alias.
from fastgram.nn.munit import AdaptiveInstanceNorm2d as MUNITAdaptiveInstanceNorm2d

__all__ += ["MUNITAdaptiveInstanceNorm2d"]
