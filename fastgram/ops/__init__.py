"""Functional API: validated ops that dispatch to the fastest backend.

Signatures follow ``torch.nn.functional``; every op also takes a keyword
``backend=`` (``"reference"``, ``"triton"``, ``"ext"`` or ``"auto"``).
"""

from fastgram import dispatch
from fastgram.ops import reference
from fastgram.ops.gram import gram_matrix
from fastgram.ops.losses import content_loss, style_loss
from fastgram.ops.normalization import adain, instance_norm

__all__ = ["gram_matrix", "style_loss", "content_loss", "instance_norm", "adain", "reference"]

for _name in ("gram_matrix", "style_loss", "content_loss", "instance_norm", "adain"):
    dispatch.register(_name, "reference", getattr(reference, _name))
del _name
