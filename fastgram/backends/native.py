"""The eager PyTorch a user would write instead of fastgram, op by op.

``auto`` ends here, not at the reference, when no fused kernel takes a call
(no kernel for the device, dtype or layout, a backend that cannot run here,
or a problem below a kernel's measured crossover): so ``auto`` is never
slower than plain PyTorch. Not a backend of its own (``backend="native"`` is
not a choice); ``backend="reference"`` still selects the readable ground truth.

The numerics are fastgram's (see :mod:`fastgram.backends.reference`):
``torch.nn.functional.instance_norm`` uses the same statistics (biased
variance, eps inside the square root), and float16/bfloat16 inputs are
computed in float32, under autocast too (the Gram products run outside it,
:func:`fastgram.backends.reference.outside_autocast`). They differ from the reference only in being written
for speed (no redundant conversions, fused PyTorch calls).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from fastgram.backends import OpImpl, reference

OPS = ("gram_matrix", "style_loss", "content_loss", "instance_norm", "adain", "moment_loss")


def _in_compute_dtype(t: torch.Tensor) -> torch.Tensor:
    cdt = reference.compute_dtype(t.dtype)
    return t if t.dtype == cdt else t.to(cdt)


def gram_matrix(x, scale) -> torch.Tensor:
    """``scale * F @ F^T``: one bmm, scaled in place (bmm's backward does not
    need its output)."""
    f = _in_compute_dtype(x.flatten(2))
    with reference.outside_autocast(x.device):
        g = torch.bmm(f, f.transpose(1, 2)).mul_(scale)
    return g if g.dtype == x.dtype else g.to(x.dtype)


def style_loss(features, targets, weights, scales) -> torch.Tensor:
    """``sum_l w_l * mse(gram(F_l), T_l)``."""
    total = None
    for f, t, w, s in zip(features, targets, weights, scales):
        flat = _in_compute_dtype(f.flatten(2))
        with reference.outside_autocast(f.device):
            gram = torch.bmm(flat, flat.transpose(1, 2)).mul_(s)
        term = F.mse_loss(gram, t.to(gram.dtype).expand_as(gram)) * w
        total = term if total is None else total + term
    return total


def _shared_param(p: Optional[torch.Tensor]) -> bool:
    return p is None or p.dim() == 1


def _one_position(x: torch.Tensor) -> bool:
    # F.instance_norm refuses rows of one element; the reference handles them
    return x[0, 0].numel() == 1


def instance_norm(x, weight, bias, eps, activation, negative_slope) -> torch.Tensor:
    """``F.instance_norm`` with the affine step (per-sample parameters
    broadcast after it) and the activation."""
    if _one_position(x):
        return reference.instance_norm(x, weight, bias, eps, activation, negative_slope)
    cdt = reference.compute_dtype(x.dtype)
    xc = x.to(cdt)
    if _shared_param(weight) and _shared_param(bias):
        w = None if weight is None else weight.to(cdt)
        b = None if bias is None else bias.to(cdt)
        y = F.instance_norm(xc, weight=w, bias=b, eps=eps)
    else:
        y = F.instance_norm(xc, eps=eps)
        if weight is not None:
            y = y * reference.as_channel_param(weight.to(cdt), x.dim())
        if bias is not None:
            y = y + reference.as_channel_param(bias.to(cdt), x.dim())
    return reference.activate(y, activation, negative_slope).to(x.dtype)


def _normalized(c: torch.Tensor, eps: float, unbiased: bool) -> torch.Tensor:
    """(c - mu) / sqrt(var + eps); ``F.instance_norm`` for the biased variance."""
    if not unbiased:
        return F.instance_norm(c, eps=eps)
    dims = tuple(range(2, c.dim()))
    var, mean = torch.var_mean(c, dim=dims, unbiased=True, keepdim=True)
    return (c - mean) * torch.rsqrt(var + eps)


def adain(content, style, eps, alpha, unbiased=False) -> torch.Tensor:
    """``F.instance_norm`` of the content, scaled and shifted by the style's
    standard deviation and mean, blended with the content."""
    if _one_position(content):
        return reference.adain(content, style, eps, alpha, unbiased)
    cdt = reference.compute_dtype(content.dtype)
    c, s = content.to(cdt), style.to(cdt)
    dims = tuple(range(2, s.dim()))
    s_var, s_mean = torch.var_mean(s, dim=dims, unbiased=unbiased, keepdim=True)
    out = torch.addcmul(s_mean, _normalized(c, eps, unbiased), torch.sqrt(s_var + eps))
    if alpha != 1.0:
        out = torch.lerp(c, out, alpha)
    return out.to(content.dtype)


def table() -> dict:
    return {
        "gram_matrix": OpImpl(gram_matrix),
        "style_loss": OpImpl(style_loss),
        "content_loss": OpImpl(reference.content_loss),
        "instance_norm": OpImpl(instance_norm),
        "adain": OpImpl(adain),
        # torch.var_mean is already one pass per layer: the reference is what
        # a user would write
        "moment_loss": OpImpl(reference.moment_loss),
    }
