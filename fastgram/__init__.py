"""fastgram: GAN-based image style transfer on fused Gram, instance-norm and
AdaIN kernels.

>>> import fastgram
>>> from fastgram.ops import gram_matrix, style_loss
>>> fastgram.backends()          # which backends run here, and why not
>>> with fastgram.use_backend("reference"):
...     loss = style_loss(features, targets)

The ops, the modules and the backend choice are imported with the package;
the models, the trainer and :class:`StyleTransferGAN` (which need PIL and
more) on first use.
"""

import importlib

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
from fastgram.nn import VGG19Features
from fastgram.patch import PatchReport, patch, unpatch

# public name -> (module, attribute or None for the module itself)
_LAZY = {
    "models": ("fastgram.models", None),
    "Generator": ("fastgram.models", "Generator"),
    "StyleEncoder": ("fastgram.models", "StyleEncoder"),
    "Discriminator": ("fastgram.models", "Discriminator"),
    "train": ("fastgram.train", None),
    "StyleTransferGAN": ("fastgram.transfer", "StyleTransferGAN"),
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'fastgram' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


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
