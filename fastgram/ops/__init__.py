"""Functional API: validated ops that dispatch to the fastest backend.

Signatures follow ``torch.nn.functional``; every op also takes a keyword
``backend=`` (``"reference"``, ``"triton"``, ``"ext"`` or ``"auto"``).
``fastgram.ops.reference`` is the pure-PyTorch ground truth
(:mod:`fastgram.backends.reference`).
"""

from fastgram.backends import reference
from fastgram.ops.gram import gram_matrix
from fastgram.ops.losses import content_loss, style_loss
from fastgram.ops.moments import moment_loss
from fastgram.ops.normalization import adain, instance_norm

__all__ = ["gram_matrix", "style_loss", "content_loss", "instance_norm", "adain", "moment_loss",
           "reference"]
