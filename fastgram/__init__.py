"""fastgram: GAN-based image style transfer on fused Gram, instance-norm and
AdaIN kernels.

>>> import fastgram
>>> from fastgram.ops import gram_matrix, style_loss
>>> fastgram.backends()          # which backends run here, and why not
>>> with fastgram.use_backend("reference"):
...     loss = style_loss(features, targets)
"""

from fastgram import functional, nn, ops
from fastgram._version import __version__
from fastgram.dispatch import (
    BackendStatus,
    BackendUnavailableError,
    FastgramFallbackWarning,
    backends,
    get_backend,
    set_backend,
    use_backend,
)
from fastgram import models
from fastgram.models import Discriminator, Generator, StyleEncoder
from fastgram.nn import VGG19Features
from fastgram.patch import PatchReport, patch, unpatch
from fastgram import train
from fastgram.transfer import StyleTransferGAN

__all__ = [
    "__version__",
    "ops",
    "nn",
    "functional",
    "backends",
    "get_backend",
    "set_backend",
    "use_backend",
    "BackendStatus",
    "BackendUnavailableError",
    "FastgramFallbackWarning",
    "models",
    "Generator",
    "StyleEncoder",
    "Discriminator",
    "VGG19Features",
    "patch",
    "unpatch",
    "PatchReport",
    "train",
    "StyleTransferGAN",
]
