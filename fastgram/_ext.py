"""Loader of the compiled extension ``fastgram._C`` (the ``ext`` backend).

The extension is looked for as an ahead-of-time build installed beside this
file. :func:`load_error` answers whether it could be loaded and, if not, why;
the dispatch layer turns that answer into the ``ext`` backend's status.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Optional

_CSRC = Path(__file__).resolve().parent.parent / "csrc"


def _source_files() -> list:
    if not _CSRC.is_dir():
        return []
    return sorted(p for p in _CSRC.iterdir() if p.suffix in (".cpp", ".cu"))


def load_error() -> Optional[str]:
    """``None`` when the extension is loaded, else the reason it is not.

    The dispatch layer caches the answer; :func:`fastgram.dispatch.refresh`
    asks again.
    """
    try:
        importlib.import_module("fastgram._C")
    except ImportError as exc:
        if _source_files():
            return f"fastgram._C is not built ({exc}); rebuild with pip install -e ."
        return (
            "fastgram._C is not built and this checkout has no C++/CUDA "
            "sources in csrc/ to build it from"
        )
    return None
