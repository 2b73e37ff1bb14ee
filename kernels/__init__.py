"""Triton kernels of fastgram, installed as ``fastgram.kernels``.

Importing this package registers each kernel's launcher as the ``triton``
implementation of its op with :mod:`fastgram.dispatch`; the ops it provides
are declared in ``fastgram.dispatch.PROVIDES["triton"]``. It is imported by
the dispatch layer only once Triton can run (a CUDA device, or
``TRITON_INTERPRET=1`` on the CPU).
"""

from fastgram.kernels import gram_ops  # noqa: F401  (gram_matrix, style_loss)
from fastgram.kernels import norm_ops  # noqa: F401  (instance_norm, adain)
