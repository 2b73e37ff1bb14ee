"""The ``ext`` backend: the compiled C++/CUDA extension ``fastgram._C``
(sources in ``csrc/``, one file per op family and device).

* :mod:`.build` builds and finds the library (ahead of time or just in time),
* :mod:`.load` loads it once per process,
* one module per op registers the fakes and autograd of its operators
  (``fastgram::ext_<op>``, ``fastgram::ext_<op>_backward``, defined in C++)
  and holds the function the dispatch table points at: :mod:`.gram_matrix`,
  :mod:`.style_loss`, :mod:`.instance_norm`, :mod:`.adain`,
* :mod:`.support` says which devices and dtypes the library covers.

Importing this package loads nothing; :func:`probe` loads (and if needed
builds) the library, :func:`table` registers the operators' Python side.
"""

from __future__ import annotations

from typing import Optional

from fastgram.backends.ext.support import OPS

NAME = "ext"


def probe() -> Optional[str]:
    from fastgram.backends.ext import load

    return load.load_error()


def table() -> dict:
    from fastgram.backends import tables

    return tables.from_op_modules(__name__, OPS)
