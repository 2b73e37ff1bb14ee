"""``style_loss`` and ``content_loss``: public, validated entry points."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

from fastgram import dispatch, validation
from fastgram.ops.gram import resolve_scale

TensorOrList = Union[torch.Tensor, Sequence[torch.Tensor]]


def _layer_weights(weights, count: int) -> list:
    if weights is None:
        return [1.0] * count
    if isinstance(weights, torch.Tensor):
        if weights.dim() != 1:
            raise ValueError(
                f"weights: expected a 1-dimensional tensor, got shape {tuple(weights.shape)}"
            )
        weights = weights.detach().tolist()
    if not isinstance(weights, (list, tuple)):
        raise TypeError(
            f"weights: expected a sequence of numbers or a 1-D tensor, got {type(weights).__name__}"
        )
    if len(weights) != count:
        raise ValueError(f"weights: expected {count} weights (one per layer), got {len(weights)}")
    return [validation.real_number(w, f"weights[{i}]") for i, w in enumerate(weights)]


def _weights_need_grad(weights) -> bool:
    return isinstance(weights, torch.Tensor) and weights.requires_grad and torch.is_grad_enabled()


def _check_layer(f: torch.Tensor, t: torch.Tensor, i: int, first: torch.Tensor) -> None:
    fname, tname = f"features[{i}]", f"targets[{i}]"
    validation.tensor(f, fname, (3, 4))
    validation.same_device(f, fname, first, "features[0]")
    validation.same_dtype(f, fname, first, "features[0]")
    validation.tensor(t, tname, (2, 3))
    validation.same_device(t, tname, first, "features[0]")
    batch, channels = f.shape[0], f.shape[1]
    if t.shape[-2:] != (channels, channels):
        raise ValueError(
            f"{tname}: expected a ({channels}, {channels}) Gram matrix for {fname} with "
            f"{channels} channels, got shape {tuple(t.shape)}"
        )
    if t.dim() == 3 and t.shape[0] != batch:
        raise ValueError(
            f"{tname}: expected batch size {batch} like {fname} (or a 2-D target that "
            f"broadcasts over the batch), got shape {tuple(t.shape)}"
        )


def style_loss(
    features: TensorOrList,
    targets: TensorOrList,
    weights: Optional[Union[Sequence[float], torch.Tensor]] = None,
    normalize: bool = True,
    *,
    backend: Optional[str] = None,
) -> torch.Tensor:
    """Multi-layer Gram style loss ``sum_l w_l * mean((gram(F_l) - T_l)^2)``.

    Args:
        features: one feature map or a sequence of them, each (B, C_l, H_l, W_l)
            or (B, C_l, N_l); all of one dtype and device.
        targets: the matching target Gram matrices, each (C_l, C_l)
            (broadcast over the batch) or (B, C_l, C_l).
        weights: one number per layer (default 1 each), or a 1-D tensor of
            them; any finite values. A tensor that requires grad gets its
            gradient, ``d loss / d w_l = mean((gram(F_l) - T_l)^2)``: the
            layers then run as one backend call each and are weighted
            outside the kernels.
        normalize: Gram normalisation as in :func:`gram_matrix`.
        backend: see :func:`gram_matrix`.

    Returns:
        A scalar: float32 for float16/bfloat16 features, else their dtype.
        The mean runs over all B * C_l * C_l entries of layer l.

    Precision: computed from the features' dtype on every backend, under
    autocast too (autocast does not lower the Gram products): float32
    accumulation for float16/bfloat16 features, else their own dtype.
    """
    feats = validation.tensor_list(features, "features")
    targs = validation.tensor_list(targets, "targets")
    if len(targs) != len(feats):
        raise ValueError(
            f"targets: expected {len(feats)} target Gram matrices (one per feature map), "
            f"got {len(targs)}"
        )
    for i, (f, t) in enumerate(zip(feats, targs)):
        _check_layer(f, t, i, feats[0])
    layer_weights = _layer_weights(weights, len(feats))
    scales = [resolve_scale(f, normalize, None) for f in feats]
    args = (feats, targs, layer_weights, scales)
    impl = dispatch.select("style_loss", feats[0].device, args, backend)
    if _weights_need_grad(weights):
        # The fused operators take the weights as numbers (no gradient), so
        # each layer's loss comes from the backend with weight 1 and the
        # weighted sum is taken here, where autograd sees the weights.
        per_layer = torch.stack([
            impl([f], [t], [1.0], [s]) for f, t, s in zip(feats, targs, scales)
        ])
        return (per_layer * weights.to(per_layer.device, per_layer.dtype)).sum()
    return impl(*args)


def content_loss(
    features: torch.Tensor, target: torch.Tensor, *, backend: Optional[str] = None
) -> torch.Tensor:
    """Mean squared error between ``features`` and ``target`` (same shape).

    Returns a scalar: float32 for float16/bfloat16 inputs, else their dtype.
    """
    validation.tensor(features, "features", None)
    validation.tensor(target, "target", None)
    validation.same_device(target, "target", features, "features")
    if target.shape != features.shape:
        raise ValueError(
            f"target: expected shape {tuple(features.shape)} like features, "
            f"got {tuple(target.shape)}"
        )
    impl = dispatch.select("content_loss", features.device, (features, target), backend)
    return impl(features, target)
