"""``gram_matrix``: the public, validated entry point of the Gram op."""

from __future__ import annotations

import math
from typing import Optional

import torch

from fastgram import dispatch, validation


def resolve_scale(x: torch.Tensor, normalize, scale, prefix: str = "") -> float:
    """The factor applied to ``F F^T``: ``scale`` if given, else ``1 / (C*N)``
    when ``normalize`` is true, else 1."""
    if scale is not None:
        return validation.real_number(scale, f"{prefix}scale")
    if validation.boolean(normalize, f"{prefix}normalize"):
        return 1.0 / math.prod(x.shape[1:])
    return 1.0


def gram_matrix(
    x: torch.Tensor,
    normalize: bool = True,
    *,
    scale: Optional[float] = None,
    backend: Optional[str] = None,
) -> torch.Tensor:
    """Gram matrices ``G[b] = s * F[b] @ F[b]^T`` of feature maps.

    Args:
        x: features of shape (B, C, H, W) or (B, C, N); any memory layout.
        normalize: when true, ``s = 1 / (C * H * W)`` (the usual
            style-transfer convention); when false, ``s = 1``.
        scale: an explicit factor ``s``; replaces the one ``normalize`` picks.
        backend: ``"reference"``, ``"triton"``, ``"ext"`` or ``"auto"``;
            ``None`` uses the backend in force (:func:`fastgram.get_backend`).

    Returns:
        (B, C, C) tensor in the dtype of ``x``. float16/bfloat16 inputs are
        accumulated in float32, on every backend and under autocast too
        (autocast does not lower the product: a float32 ``x`` gives a
        float32 Gram computed in float32).
    """
    validation.tensor(x, "x", (3, 4))
    s = resolve_scale(x, normalize, scale)
    impl = dispatch.select("gram_matrix", x.device, (x, s), backend)
    return impl(x, s)
