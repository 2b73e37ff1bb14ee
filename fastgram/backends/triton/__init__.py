"""The ``triton`` backend: fastgram's Triton kernels (``kernels/``, installed
as ``fastgram.kernels``) registered as custom operators.

One module per op, each holding the op's registered forward and backward
operators (``fastgram::triton_<op>``, ``fastgram::triton_<op>_backward``),
their shared argument check, their autograd and the function the dispatch
table points at: :mod:`.gram_matrix`, :mod:`.style_loss`,
:mod:`.instance_norm`, :mod:`.adain`, :mod:`.moment_loss`. Importing this package imports
neither triton nor the kernels; :func:`table` does, once :func:`probe` has
passed.

The kernels run on CUDA tensors, and on CPU tensors under
``TRITON_INTERPRET=1`` (set before triton is imported), which is a testing
aid far slower than PyTorch.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from typing import Optional

NAME = "triton"
OPS = ("gram_matrix", "style_loss", "instance_norm", "adain", "moment_loss")


def probe() -> Optional[str]:
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (pip install triton; Linux only)"
    import torch

    interpreted = os.environ.get("TRITON_INTERPRET") == "1"
    if not interpreted and not torch.cuda.is_available():
        return (
            "no CUDA device is visible (set TRITON_INTERPRET=1 before importing "
            "triton to run the kernels on the CPU, for testing)"
        )
    try:
        importlib.import_module("triton")
    except Exception as exc:  # a broken install must not break fastgram
        return f"importing triton failed: {type(exc).__name__}: {exc}"
    return None


def table() -> dict:
    from fastgram.backends import tables

    return tables.from_op_modules(__name__, OPS)
