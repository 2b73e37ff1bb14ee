"""Models built from ``fastgram.nn`` and standard torch layers.

Images are RGB in [0, 1] throughout (:data:`OUTPUT_RANGE`).
"""

from fastgram.models.adain_generator import AdaINDecoder, AdaINGenerator, VGGStatisticsEncoder
from fastgram.models.discriminator import Discriminator, PatchDiscriminator
from fastgram.models.generator import OUTPUT_RANGE, ContentEncoder, Decoder, Generator
from fastgram.models.style_encoder import StyleEncoder
from fastgram.models.vgg_style_encoder import VGGStyleEncoder

__all__ = [
    "AdaINGenerator",
    "AdaINDecoder",
    "VGGStatisticsEncoder",
    "Generator",
    "ContentEncoder",
    "Decoder",
    "StyleEncoder",
    "VGGStyleEncoder",
    "Discriminator",
    "PatchDiscriminator",
    "OUTPUT_RANGE",
]
