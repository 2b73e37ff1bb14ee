"""Argument checks of the registered operators, one per operator schema.

The ``triton`` and ``ext`` backends register operators with the same schema
for the same op (``fastgram::<backend>_<op>``), so each schema has one check
here. It runs before every Triton launch (the Triton ops' fakes are derived
from the same Python body, so fake and kernel check alike) and in every fake
of the extension's operators, whose C++ kernels repeat it with
``TORCH_CHECK``. A direct ``torch.ops.fastgram.*`` call with bad arguments
therefore raises a ``ValueError``/``TypeError`` naming the argument (or the
C++ ``RuntimeError``), and never reads out of bounds.

Device support is not checked here: it belongs to each backend.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
ACTIVATION_CODES = {None: 0, "relu": 1, "leaky_relu": 2}


def _shape(t) -> tuple:
    return tuple(t.shape)


def features(x, name: str) -> None:
    """A non-empty (B, C, N) or (B, C, H, W) floating-point tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name}: expected a float16, bfloat16, float32 or float64 tensor, got dtype {x.dtype}"
        )
    if x.dim() not in (3, 4):
        raise ValueError(f"{name}: expected a (B, C, N) or (B, C, H, W) tensor, got shape {_shape(x)}")
    if x.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty tensor, got shape {_shape(x)}")


def like(t, name: str, x: torch.Tensor, x_name: str, shape: Optional[tuple] = None,
         dtype: Optional[torch.dtype] = None) -> None:
    """A tensor on the device of ``x`` with the given shape and dtype."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.device != x.device:
        raise ValueError(f"{name}: expected a tensor on {x.device} like {x_name}, got {t.device}")
    if shape is not None and _shape(t) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {_shape(t)}")
    if dtype is not None and t.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, got {t.dtype}")


def stats_dtype(dtype: torch.dtype) -> torch.dtype:
    """dtype of saved statistics and accumulators: float64 for float64 data,
    float32 for everything else."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


def eps(value, name: str = "eps") -> None:
    if _number(value, name) <= 0:
        raise ValueError(f"{name}: expected a positive number, got {value!r}")


def alpha(value, name: str = "alpha") -> None:
    if not 0.0 <= _number(value, name) <= 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")


def activation(code, negative_slope) -> None:
    if isinstance(code, bool) or code not in ACTIVATION_CODES.values():
        raise ValueError(
            f"activation: expected a code in {sorted(ACTIVATION_CODES.values())} "
            f"(none, relu, leaky_relu), got {code!r}"
        )
    _number(negative_slope, "negative_slope")


def channel_param(p, name: str, x: torch.Tensor, same_dtype: bool) -> None:
    """None, or a floating-point (C,) / per-sample (B, C) parameter; in the
    dtype of ``x`` when ``same_dtype`` (the extension's kernels; the Triton
    kernels read any float dtype)."""
    if p is None:
        return
    batch, channels = x.shape[0], x.shape[1]
    if not isinstance(p, torch.Tensor) or _shape(p) not in ((channels,), (batch, channels)):
        got = _shape(p) if isinstance(p, torch.Tensor) else type(p).__name__
        raise ValueError(f"{name}: expected shape ({channels},) or ({batch}, {channels}), got {got}")
    if p.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {p.dtype}")
    like(p, name, x, "x", dtype=x.dtype if same_dtype else None)


def row_stats(t, name: str, x: torch.Tensor, rows: int) -> None:
    """Saved per-(sample, channel) statistics of ``x``: (rows, C)."""
    like(t, name, x, "x", (rows, x.shape[1]), stats_dtype(x.dtype))


# --------------------------------------------------------------------------
# one check per operator schema


def instance_norm(x, weight, bias, eps_, activation_, negative_slope, same_dtype=False) -> None:
    features(x, "x")
    channel_param(weight, "weight", x, same_dtype)
    channel_param(bias, "bias", x, same_dtype)
    eps(eps_)
    activation(activation_, negative_slope)


def instance_norm_backward(grad_y, x, weight, bias, mean, rstd, activation_, negative_slope,
                           same_dtype=False) -> None:
    features(x, "x")
    like(grad_y, "grad_y", x, "x", _shape(x), x.dtype)
    channel_param(weight, "weight", x, same_dtype)
    channel_param(bias, "bias", x, same_dtype)
    row_stats(mean, "mean", x, x.shape[0])
    row_stats(rstd, "rstd", x, x.shape[0])
    activation(activation_, negative_slope)


def _style_of(content: torch.Tensor, style) -> None:
    features(style, "style")
    like(style, "style", content, "content", dtype=content.dtype)
    if style.dim() != content.dim() or style.shape[1] != content.shape[1] or (
        style.shape[0] not in (1, content.shape[0])
    ):
        raise ValueError(
            f"style: expected a {content.dim()}-D tensor with {content.shape[1]} channels and "
            f"batch {content.shape[0]} or 1 like content {_shape(content)}, got {_shape(style)}"
        )


def unbiased(flag, tensors: dict) -> None:
    """``unbiased`` is a bool, and when true each tensor of ``{name: tensor}``
    has the 2 spatial positions the divisor H*W - 1 needs."""
    if not isinstance(flag, bool):
        raise TypeError(f"unbiased: expected True or False, got {flag!r}")
    if flag:
        for name, t in tensors.items():
            if math.prod(t.shape[2:]) < 2:
                raise ValueError(
                    f"{name}: the unbiased variance needs at least 2 spatial positions, "
                    f"got shape {_shape(t)}"
                )


def adain(content, style, eps_, alpha_, unbiased_=False) -> None:
    features(content, "content")
    _style_of(content, style)
    eps(eps_)
    alpha(alpha_)
    unbiased(unbiased_, {"content": content, "style": style})


def adain_backward(grad_out, content, style, c_mean, c_rstd, s_mean, s_sigma, alpha_,
                   unbiased_=False) -> None:
    features(content, "content")
    _style_of(content, style)
    unbiased(unbiased_, {"content": content, "style": style})
    like(grad_out, "grad_out", content, "content", _shape(content), content.dtype)
    row_stats(c_mean, "c_mean", content, content.shape[0])
    row_stats(c_rstd, "c_rstd", content, content.shape[0])
    row_stats(s_mean, "s_mean", content, style.shape[0])
    row_stats(s_sigma, "s_sigma", content, style.shape[0])
    alpha(alpha_)


def gram_target(t, name: str, x: torch.Tensor) -> None:
    """A (C, C) target broadcast over the batch, or (B, C, C)."""
    batch, channels = x.shape[0], x.shape[1]
    if not isinstance(t, torch.Tensor) or t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected a floating-point tensor")
    if _shape(t) not in ((channels, channels), (batch, channels, channels)):
        raise ValueError(
            f"{name}: expected shape ({channels}, {channels}) or ({batch}, {channels}, "
            f"{channels}), got {_shape(t)}"
        )
    like(t, name, x, "the features")


def gram_matrix(x, scale) -> None:
    features(x, "x")
    _number(scale, "scale")


def gram_matrix_backward(grad, x, scale) -> None:
    features(x, "x")
    batch, channels = x.shape[0], x.shape[1]
    like(grad, "grad", x, "x", (batch, channels, channels))
    _number(scale, "scale")


def _layers(features_: Sequence, others: dict) -> None:
    if not isinstance(features_, (list, tuple)) or not features_:
        raise ValueError("features: expected a non-empty list of tensors")
    for name, seq in others.items():
        if len(seq) != len(features_):
            raise ValueError(f"{name}: expected {len(features_)} entries (one per layer), got {len(seq)}")
    first = features_[0]
    for i, f in enumerate(features_):
        features(f, f"features[{i}]")
        if f.dtype != first.dtype or f.device != first.device:
            raise ValueError(f"features[{i}]: expected the dtype and device of features[0]")
    for i, (w, s) in enumerate(zip(others.get("weights", ()), others.get("scales", ()))):
        _number(w, f"weights[{i}]")
        _number(s, f"scales[{i}]")


def style_loss(features_, targets, weights, scales) -> None:
    _layers(features_, {"targets": targets, "weights": weights, "scales": scales})
    for i, (f, t) in enumerate(zip(features_, targets)):
        gram_target(t, f"targets[{i}]", f)


def style_loss_backward(grad, features_, saved, weights, scales, targets=None) -> None:
    """``saved``: the per-layer (B, C, C) tensors the forward returned;
    ``targets`` where the backward reads them too."""
    layers = {"saved": saved, "weights": weights, "scales": scales}
    if targets is not None:
        layers["targets"] = targets
    _layers(features_, layers)
    first = features_[0]
    like(grad, "grad", first, "features[0]", ())
    for i, (f, m) in enumerate(zip(features_, saved)):
        like(m, f"saved[{i}]", f, f"features[{i}]", (f.shape[0], f.shape[1], f.shape[1]))
        if targets is not None:
            gram_target(targets[i], f"targets[{i}]", f)


def _target_stat(t, name: str, f: torch.Tensor) -> None:
    """A (1, C) or (B, C) target statistic of feature map ``f``, in its
    statistics dtype (float32, float64 for float64 features)."""
    like(t, name, f, "the features", dtype=stats_dtype(f.dtype))
    if t.dim() != 2 or t.shape[1] != f.shape[1] or t.shape[0] not in (1, f.shape[0]):
        raise ValueError(
            f"{name}: expected shape (1, {f.shape[1]}) or ({f.shape[0]}, {f.shape[1]}), "
            f"got {_shape(t)}"
        )


def moment_loss(features_, target_means, target_sigmas, weights, eps_, unbiased_) -> None:
    _layers(features_, {"target_means": target_means, "target_sigmas": target_sigmas,
                        "weights": weights})
    for i, (f, m, s, w) in enumerate(zip(features_, target_means, target_sigmas, weights)):
        _number(w, f"weights[{i}]")
        _target_stat(m, f"target_means[{i}]", f)
        _target_stat(s, f"target_sigmas[{i}]", f)
    eps(eps_)
    unbiased(unbiased_, {f"features[{i}]": f for i, f in enumerate(features_)})


def moment_loss_backward(grad, features_, means, sigmas, target_means, target_sigmas, weights,
                         unbiased_) -> None:
    moment_loss(features_, target_means, target_sigmas, weights, 1.0, unbiased_)
    _layers(features_, {"means": means, "sigmas": sigmas})
    like(grad, "grad_loss", features_[0], "features[0]", ())
    for i, (f, m, s) in enumerate(zip(features_, means, sigmas)):
        like(m, f"means[{i}]", f, f"features[{i}]", (f.shape[0], f.shape[1]), stats_dtype(f.dtype))
        like(s, f"sigmas[{i}]", f, f"features[{i}]", (f.shape[0], f.shape[1]), stats_dtype(f.dtype))
