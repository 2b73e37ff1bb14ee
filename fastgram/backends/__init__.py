"""fastgram's backends: one module or package each, one contract for all.

A backend module exposes data, and nothing else is asked of it:

* ``NAME``: its name (``"reference"``, ``"triton"`` or ``"ext"``).
* ``OPS``: the ops it implements when it can run, declared statically so
  that ``auto`` and ``fastgram info`` can name them without loading it.
* ``probe()``: ``None`` when it can run on this machine, else the reason it
  cannot. It may be slow (the extension builds on first use); the caller
  caches the answer.
* ``table()``: ``{op: OpImpl}``, called only once ``probe()`` returned None.

Every implementation takes the canonical arguments of the function of the
same name in :mod:`fastgram.backends.reference` (validated and resolved by
:mod:`fastgram.ops`). :mod:`fastgram.dispatch` imports the backend modules
and reads their tables; no backend imports it, and this package's own module
imports no backend.

Registered operators follow one naming scheme on every compiled backend,
``fastgram::<backend>_<op>`` and ``fastgram::<backend>_<op>_backward``; see
:mod:`fastgram.backends.autograd` for the autograd pattern they share.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

NAMES = ("reference", "triton", "ext")
OP_NAMES = ("gram_matrix", "style_loss", "content_loss", "instance_norm", "adain", "moment_loss")


def _always(*args) -> Optional[str]:
    return None


@dataclasses.dataclass(frozen=True)
class OpImpl:
    """One backend's implementation of one op.

    ``supports`` takes the arguments ``fn`` takes and returns ``None`` when
    ``fn`` can handle them, else a short reason (dispatch then falls back).
    """

    fn: Callable
    supports: Callable[..., Optional[str]] = _always
