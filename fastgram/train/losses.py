"""Training losses of the style-transfer GAN.

Adversarial losses take discriminator *logits*: one tensor or the list a
multi-scale :class:`fastgram.models.Discriminator` returns, in which case the
loss is the mean of the per-scale losses.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from fastgram import ops

ADVERSARIAL_LOSSES = ("vanilla", "nonsaturating", "lsgan", "hinge")
# "gram": Gram matrices (Gatys et al.); "moment": per-channel mean and
# standard deviation (the AdaIN paper's loss, unbiased variance as its code).
STYLE_LOSSES = ("gram", "moment")

Logits = Union[torch.Tensor, Sequence[torch.Tensor]]


def _scales(logits: Logits, name: str) -> list:
    scales = [logits] if isinstance(logits, torch.Tensor) else list(logits)
    if not scales or not all(isinstance(t, torch.Tensor) for t in scales):
        raise TypeError(f"{name}: expected a tensor or a non-empty list of tensors")
    return scales


def _check_kind(kind: str) -> str:
    if kind not in ADVERSARIAL_LOSSES:
        raise ValueError(f"kind: expected one of {ADVERSARIAL_LOSSES}, got {kind!r}")
    return kind


def discriminator_loss(real: Logits, fake: Logits, kind: str = "nonsaturating") -> torch.Tensor:
    """Loss of the discriminator, given its logits on real and fake images.

    With ``d`` the logits and ``sp(z) = log(1 + e^z)`` (softplus):

    * ``vanilla`` and ``nonsaturating``: ``mean(sp(-d_real)) + mean(sp(d_fake))``,
      i.e. ``-log D(real) - log(1 - D(fake))`` with ``D = sigmoid(d)``;
    * ``lsgan``: ``mean((d_real - 1)^2) + mean(d_fake^2)``;
    * ``hinge``: ``mean(relu(1 - d_real)) + mean(relu(1 + d_fake))``.
    """
    _check_kind(kind)
    real, fake = _scales(real, "real"), _scales(fake, "fake")
    if len(real) != len(fake):
        raise ValueError(f"fake: expected {len(real)} scales like real, got {len(fake)}")
    total = 0.0
    for r, f in zip(real, fake):
        if kind in ("vanilla", "nonsaturating"):
            total = total + F.softplus(-r).mean() + F.softplus(f).mean()
        elif kind == "lsgan":
            total = total + ((r - 1) ** 2).mean() + (f**2).mean()
        else:
            total = total + F.relu(1 - r).mean() + F.relu(1 + f).mean()
    return total / len(real)


def generator_loss(fake: Logits, kind: str = "nonsaturating") -> torch.Tensor:
    """Adversarial loss of the generator, given the discriminator's logits on
    its images.

    * ``vanilla``: ``-mean(sp(d_fake))``, i.e. minimising ``log(1 - D(fake))``
      (the original minimax objective; saturates when D wins);
    * ``nonsaturating``: ``mean(sp(-d_fake))``, i.e. ``-log D(fake)``;
    * ``lsgan``: ``mean((d_fake - 1)^2)``;
    * ``hinge``: ``-mean(d_fake)``.
    """
    _check_kind(kind)
    total = 0.0
    fake = _scales(fake, "fake")
    for f in fake:
        if kind == "vanilla":
            total = total - F.softplus(f).mean()
        elif kind == "nonsaturating":
            total = total + F.softplus(-f).mean()
        elif kind == "lsgan":
            total = total + ((f - 1) ** 2).mean()
        else:
            total = total - f.mean()
    return total / len(fake)


def r1_penalty(real_logits: Logits, real_images: torch.Tensor) -> torch.Tensor:
    """R1 gradient penalty ``mean_b ||d D(x_b) / d x_b||^2`` on real images.

    ``real_images`` must require gradients and ``real_logits`` be computed
    from them; the graph is kept so the penalty can be back-propagated. The
    caller scales it by ``gamma / 2``.
    """
    if not real_images.requires_grad:
        raise ValueError("real_images: expected a tensor that requires grad")
    total = sum(t.sum() for t in _scales(real_logits, "real_logits"))
    (grad,) = torch.autograd.grad(total, real_images, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def content_loss(
    output_features: Dict[str, torch.Tensor],
    content_features: Dict[str, torch.Tensor],
    layers: Sequence[str] = ("relu4_1",),
) -> torch.Tensor:
    """``sum_l mean((phi_l(output) - phi_l(content))^2)`` over ``layers``,
    ``phi_l`` the VGG19 activation of layer l (default relu4_1)."""
    total = 0.0
    for layer in layers:
        total = total + ops.content_loss(output_features[layer], content_features[layer].detach())
    return total


def style_targets(style_features: Dict[str, torch.Tensor], layers: Sequence[str],
                  kind: str = "gram") -> Dict[str, torch.Tensor]:
    """What :func:`style_loss` of ``kind`` compares against, per layer: the
    Gram matrices, or for "moment" the feature maps themselves (the loss
    takes their statistics in the same fused call)."""
    with torch.no_grad():
        if kind == "moment":
            return {k: style_features[k].float() for k in layers}
        return {k: ops.gram_matrix(style_features[k].float()) for k in layers}


def style_loss(
    output_features: Dict[str, torch.Tensor],
    targets: Dict[str, torch.Tensor],
    layers: Sequence[str],
    weights: Optional[Sequence[float]] = None,
    kind: str = "gram",
) -> torch.Tensor:
    """Multi-layer style loss on the fused kernels: for "gram"
    ``sum_l w_l * mean((G(phi_l(out)) - G_l)^2)`` (:func:`fastgram.ops.style_loss`),
    for "moment" the mean and standard-deviation MSEs of
    :func:`fastgram.ops.moment_loss` (unbiased variance, eps 1e-5)."""
    features = [output_features[layer] for layer in layers]
    detached = [targets[layer].detach() for layer in layers]
    if kind == "moment":
        return ops.moment_loss(features, detached, weights, unbiased=True)
    return ops.style_loss(features, detached, weights)


def style_reconstruction_loss(code_of_output: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """``mean(|E(G(c, s)) - s|)``: the style encoder must recover from the
    output the code the output was generated with."""
    return F.l1_loss(code_of_output, code.detach())


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """``mean|x[..., i+1, :] - x[..., i, :]| + mean|x[..., :, j+1] - x[..., :, j]|``
    of (B, C, H, W) images."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError("images: expected a (B, C, H, W) tensor")
    return ((images[:, :, 1:] - images[:, :, :-1]).abs().mean()
            + (images[:, :, :, 1:] - images[:, :, :, :-1]).abs().mean())
