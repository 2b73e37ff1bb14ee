"""Alias of :mod:`fastgram.ops`, named like ``torch.nn.functional``."""

from fastgram.ops import adain, content_loss, gram_matrix, instance_norm, moment_loss, style_loss

__all__ = ["gram_matrix", "style_loss", "content_loss", "instance_norm", "adain", "moment_loss"]
