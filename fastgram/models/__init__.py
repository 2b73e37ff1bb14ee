"""Models built from ``fastgram.nn`` and standard torch layers.

Images are RGB in [0, 1] throughout (:data:`OUTPUT_RANGE`).
"""

from fastgram.models.discriminator import Discriminator, PatchDiscriminator
from fastgram.models.generator import OUTPUT_RANGE, ContentEncoder, Decoder, Generator
from fastgram.models.style_encoder import StyleEncoder

__all__ = [
    "Generator",
    "ContentEncoder",
    "Decoder",
    "StyleEncoder",
    "Discriminator",
    "PatchDiscriminator",
    "OUTPUT_RANGE",
]
