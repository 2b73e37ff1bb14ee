"""The ``table()`` of a compiled backend package: one module per op, each
with ``run`` (the implementation) and ``supports`` (whether it takes the
arguments); importing the module registers its operators."""

from __future__ import annotations

import importlib
from typing import Sequence

from fastgram.backends import OpImpl


def from_op_modules(package: str, ops: Sequence[str]) -> dict:
    table = {}
    for op in ops:
        module = importlib.import_module(f"{package}.{op}")
        table[op] = OpImpl(module.run, module.supports)
    return table
