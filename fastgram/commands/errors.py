"""What the ``fastgram`` command prints for an exception: one line naming
the problem and the fix, and the exit status.

Errors a user can cause and fix (a bad argument, a checkpoint that does not
fit, a missing GPU, an unwritable folder, a full disk, too little memory)
exit with status 2. Anything else is a bug: it still prints one line (exit
status 1) and says how to get the traceback (``--debug`` or
``FASTGRAM_DEBUG=1``).
"""

from __future__ import annotations

import errno
import os
import re
from typing import Tuple

from fastgram.commands import CommandError

USER_ERROR = 2
INTERNAL_ERROR = 1
DEBUG_ENV = "FASTGRAM_DEBUG"

_OUT_OF_MEMORY = ("out of memory", "can't allocate memory", "not enough memory",
                  "cannot allocate memory")
_NO_CUDA = ("found no nvidia driver", "torch not compiled with cuda enabled",
            "no cuda gpus are available", "cuda driver initialization failed")


# fastgram's own checks start with the argument's name: "size: ...",
# "style, style_code: ...", "FASTGRAM_BACKEND: ...", "models.generator: ...".
_NAMED = re.compile(r"^[A-Za-z_][\w.\[\]-]*(, [A-Za-z_][\w.\[\]-]*)*: ")


def debug_requested(flag: bool = False) -> bool:
    return flag or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _os_error(exc: OSError) -> str:
    where = f" {exc.filename!r}" if exc.filename else ""
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full{' writing' + where if where else ''}; free some space and run again"
    if code == errno.EROFS:
        return f"read-only file system:{where}; choose an output folder on a writable disk"
    if code in (errno.EACCES, errno.EPERM):
        return f"permission denied:{where}; choose a folder you can write to"
    if code == errno.ENOTDIR:
        return f"not a directory:{where} (a part of the path is a file); choose another path"
    if code == errno.EEXIST or code == errno.EISDIR:
        return f"{exc.strerror.lower() if exc.strerror else 'exists'}:{where}; choose another path"
    if code == errno.ENOENT:
        return f"no such file or directory:{where}"
    return f"{exc.strerror or exc}:{where}" if exc.strerror else str(exc)


def describe(exc: BaseException) -> Tuple[str, int]:
    """``(one-line message, exit status)`` for ``exc``."""
    import torch

    from fastgram import memory
    from fastgram.dispatch import BackendUnavailableError

    text = " ".join(str(exc).split())  # one line, whatever the exception held
    lowered = text.lower()
    if isinstance(exc, CommandError):
        return text, USER_ERROR
    if isinstance(exc, BackendUnavailableError):
        return (f"{text}; choose another backend with FASTGRAM_BACKEND (e.g. auto)",
                USER_ERROR)
    if isinstance(exc, memory.MemoryBudgetError):  # refused before allocating: its own advice
        return " ".join(exc.describe(size_option="--size ").split()), USER_ERROR
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(exc, RuntimeError) and any(s in lowered for s in _OUT_OF_MEMORY)
    ):
        detail = f" ({text})" if text else ""
        return (f"out of memory{detail}; use a smaller --size (or --batch-size when training)",
                USER_ERROR)
    if isinstance(exc, RuntimeError) and any(s in lowered for s in _NO_CUDA):
        return f"no usable CUDA device ({text}); use --device cpu", USER_ERROR
    if isinstance(exc, OSError):
        if type(exc).__str__ is not OSError.__str__:  # carries its own message
            return text, USER_ERROR
        return _os_error(exc), USER_ERROR
    if isinstance(exc, (ValueError, TypeError)) and _NAMED.match(text):
        return text, USER_ERROR
    return (f"internal error: {type(exc).__name__}: {text} (run again with --debug or "
            f"{DEBUG_ENV}=1 for the traceback, and please report it)", INTERNAL_ERROR)
