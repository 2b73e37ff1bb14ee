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
]
