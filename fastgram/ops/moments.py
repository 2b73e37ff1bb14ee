"""``moment_loss``: the multi-layer moment-matching style loss of AdaIN-family
models (mean and standard deviation per channel), public and validated."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

from fastgram import dispatch, validation
from fastgram.backends import reference
from fastgram.ops.losses import _layer_weights

Target = Union[torch.Tensor, Sequence[torch.Tensor]]


def _check_features(features) -> list:
    features = validation.tensor_list(features, "features")
    first = features[0]
    for i, f in enumerate(features):
        validation.tensor(f, f"features[{i}]", (3, 4))
        validation.same_device(f, f"features[{i}]", first, "features[0]")
        validation.same_dtype(f, f"features[{i}]", first, "features[0]")
    return features


def _statistic(t, name: str, f: torch.Tensor, fname: str) -> torch.Tensor:
    """A (C,), (1, C) or (B, C) target statistic of ``f`` -> (1 or B, C)."""
    validation.tensor(t, name, (1, 2))
    validation.same_device(t, name, f, fname)
    batch, channels = f.shape[0], f.shape[1]
    if t.shape[-1] != channels or (t.dim() == 2 and t.shape[0] not in (1, batch)):
        raise ValueError(
            f"{name}: expected shape ({channels},), (1, {channels}) or ({batch}, {channels}) "
            f"for {fname} of shape {tuple(f.shape)}, got {tuple(t.shape)}"
        )
    return t.reshape(-1, channels)


def _target_stats(t, i: int, f: torch.Tensor, eps: float, unbiased: bool):
    """Layer i's target as (mean, sigma): from a feature map, or a given pair."""
    fname, name = f"features[{i}]", f"targets[{i}]"
    if isinstance(t, torch.Tensor):
        validation.tensor(t, name, (3, 4))
        validation.same_device(t, name, f, fname)
        if t.shape[1] != f.shape[1] or t.shape[0] not in (1, f.shape[0]):
            raise ValueError(
                f"{name}: expected a feature map with {f.shape[1]} channels and batch "
                f"{f.shape[0]} or 1 like {fname} (its spatial size may differ), "
                f"got shape {tuple(t.shape)}"
            )
        if unbiased:
            validation.unbiased_positions(t, name)
        return reference.channel_moments(t, eps, unbiased)
    if not isinstance(t, (tuple, list)) or len(t) != 2:
        raise TypeError(
            f"{name}: expected a feature map tensor or a (mean, std) pair of tensors, "
            f"got {type(t).__name__}"
            + (f" of length {len(t)}" if isinstance(t, (tuple, list)) else "")
        )
    mean = _statistic(t[0], f"{name}[0] (mean)", f, fname)
    sigma = _statistic(t[1], f"{name}[1] (std)", f, fname)
    return mean, sigma


def moment_loss(
    features: Union[torch.Tensor, Sequence[torch.Tensor]],
    targets: Union[Target, Sequence[Target]],
    weights: Optional[Union[Sequence[float], torch.Tensor]] = None,
    unbiased: bool = False,
    *,
    eps: float = 1e-5,
    backend: Optional[str] = None,
) -> torch.Tensor:
    """Moment-matching style loss over several layers in one call:
    ``sum_l w_l * (MSE(mu(F_l), mu(T_l)) + MSE(sigma(F_l), sigma(T_l)))``.

    Per sample and channel over the N = H*W positions, ``mu = sum(x) / N``
    and ``sigma = sqrt(sum((x - mu)^2) / D + eps)``, with ``D = N`` (biased,
    the default) or ``D = N - 1`` (``unbiased=True``). With
    ``unbiased=True, eps=1e-5`` this is pytorch-AdaIN's ``calc_style_loss``
    (its ``calc_mean_std`` adds eps = 1e-5 to the unbiased variance) summed
    over the layers. Each MSE is the mean over the B*C entries of the layer.

    Args:
        features: the generated image's feature maps, a (B, C_l, H_l, W_l) or
            (B, C_l, N_l) tensor per layer (a single tensor is one layer).
        targets: one per layer, either a feature map (batch B or 1, its own
            spatial size; its statistics are taken with the same convention)
            or a ``(mean, std)`` pair of tensors of shape (C_l,), (1, C_l)
            or (B, C_l), e.g. precomputed from a style image (``std`` is the
            ``sigma`` above, eps included). Gradients flow into targets that
            require them.
        weights: one number per layer (default 1 each), or a 1-D tensor.
        unbiased: divide the variance by H*W - 1 (needs H*W >= 2).
        eps: positive number added to the variance.
        backend: see :func:`fastgram.ops.gram_matrix`.

    Returns:
        A scalar: float32 for float16/bfloat16 features, else their dtype.
    """
    features = _check_features(features)
    if isinstance(targets, torch.Tensor) or (
        isinstance(targets, tuple) and len(targets) == 2 and len(features) == 1
        and all(isinstance(t, torch.Tensor) and t.dim() <= 2 for t in targets)
    ):
        targets = [targets]  # one layer's target
    if not isinstance(targets, (list, tuple)):
        raise TypeError(f"targets: expected a sequence (one target per layer), got "
                        f"{type(targets).__name__}")
    if len(targets) != len(features):
        raise ValueError(f"targets: expected {len(features)} targets (one per layer), "
                         f"got {len(targets)}")
    unbiased = validation.boolean(unbiased, "unbiased")
    eps = validation.positive(eps, "eps")
    w = _layer_weights(weights, len(features))
    if unbiased:
        for i, f in enumerate(features):
            validation.unbiased_positions(f, f"features[{i}]")
    stats = [_target_stats(t, i, f, eps, unbiased)
             for i, (t, f) in enumerate(zip(targets, features))]
    means = [m for m, _ in stats]
    sigmas = [s for _, s in stats]
    args = (features, means, sigmas, w, eps, unbiased)
    impl = dispatch.select("moment_loss", features[0].device, args, backend)
    return impl(*args)
