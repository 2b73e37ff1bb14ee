"""Argument checks shared by every public surface of fastgram: the ops,
the modules, the models, the training configuration and the command line.

Each check raises ``TypeError`` (wrong kind of object or dtype) or
``ValueError`` (wrong value, shape or device) with a message that starts with
the argument's name, so the caller sees at once which argument is wrong, and
returns the checked value. Non-finite tensor values are not checked: NaN in
gives NaN out.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_FLOAT_NAMES = "float16, bfloat16, float32 or float64"


def tensor(value, name: str, ndims: Optional[Sequence[int]]) -> torch.Tensor:
    """A non-empty floating-point tensor with one of the ranks ``ndims``
    (any rank when ``ndims`` is None)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if value.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected a {_FLOAT_NAMES} tensor, got dtype {value.dtype}")
    if ndims is not None and value.dim() not in ndims:
        ranks = " or ".join(str(n) for n in ndims)
        raise ValueError(
            f"{name}: expected a {ranks}-dimensional tensor, got shape {tuple(value.shape)}"
        )
    if value.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty tensor, got shape {tuple(value.shape)}")
    return value


def same_device(value: torch.Tensor, name: str, reference: torch.Tensor, reference_name: str):
    if value.device != reference.device:
        raise ValueError(
            f"{name}: expected a tensor on {reference.device} like {reference_name}, "
            f"got one on {value.device}"
        )


def same_dtype(value: torch.Tensor, name: str, reference: torch.Tensor, reference_name: str):
    if value.dtype != reference.dtype:
        raise TypeError(
            f"{name}: expected dtype {reference.dtype} like {reference_name}, got {value.dtype}"
        )


def real_number(value, name: str) -> float:
    """A finite real Python or 0-d tensor number, returned as float."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and value.dtype in FLOAT_DTYPES:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")
    return value


def positive(value, name: str) -> float:
    value = real_number(value, name)
    if value <= 0:
        raise ValueError(f"{name}: expected a positive number, got {value}")
    return value


def non_negative(value, name: str) -> float:
    value = real_number(value, name)
    if value < 0:
        raise ValueError(f"{name}: expected a number >= 0, got {value}")
    return value


def integer(value, name: str, minimum: int = 1) -> int:
    """A Python int (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return value


def one_of(value, name: str, choices: Sequence) -> object:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {tuple(choices)}, got {value!r}")
    return value


def in_unit_interval(value, name: str) -> float:
    value = real_number(value, name)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1], got {value}")
    return value


def boolean(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return value


def unbiased_positions(x: torch.Tensor, name: str) -> None:
    """The unbiased variance divides by H*W - 1: it needs two positions."""
    positions = math.prod(x.shape[2:])
    if positions < 2:
        raise ValueError(
            f"{name}: the unbiased variance (unbiased=True) needs at least 2 spatial "
            f"positions per channel, got shape {tuple(x.shape)}"
        )


def channel_params(
    value: Optional[torch.Tensor], name: str, x: torch.Tensor, x_name: str
) -> Optional[torch.Tensor]:
    """Affine parameters of shape (C,) or per-sample (B, C) for ``x`` (B, C, ...)."""
    if value is None:
        return None
    tensor(value, name, (1, 2))
    same_device(value, name, x, x_name)
    batch, channels = x.shape[0], x.shape[1]
    expected = (channels,) if value.dim() == 1 else (batch, channels)
    if tuple(value.shape) != expected:
        raise ValueError(
            f"{name}: expected shape ({channels},) or ({batch}, {channels}) to match "
            f"{x_name} of shape {tuple(x.shape)}, got {tuple(value.shape)}"
        )
    return value


def tensor_list(value, name: str) -> list:
    """A single tensor (one layer) or a non-empty list/tuple of tensors."""
    if isinstance(value, torch.Tensor):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise TypeError(
            f"{name}: expected a tensor or a list/tuple of tensors, got {type(value).__name__}"
        )
    if len(value) == 0:
        raise ValueError(f"{name}: expected at least one tensor, got an empty sequence")
    return list(value)
