"""The autograd pattern every compiled backend's operators share.

Each op is two registered operators, ``<backend>_<op>`` (returns the result
and what its backward needs, the latter non-differentiable) and
``<backend>_<op>_backward``, with a fake beside each, and
``torch.library.register_autograd`` on the forward one. Its backward calls
the backward operator, except when the backward pass must itself be
differentiable (``create_graph=True``, as gradient penalties such as R1 need):
the kernels have no derivative of their own, so such a pass differentiates the
reference formula (:mod:`fastgram.backends.reference`) on the saved inputs
instead, at reference speed. Ordinary and compiled backward passes stay on the
kernels.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch

from fastgram.backends import checks, reference


def double_backward_wanted() -> bool:
    """True inside a backward pass run with ``create_graph=True``."""
    return torch.is_grad_enabled()


def reference_grads(fn: Callable, inputs: Sequence, needs: Sequence[bool], grad_out) -> list:
    """Gradients of ``fn(*inputs)`` for ``grad_out`` that can themselves be
    differentiated; None where ``needs`` is false or a tensor does not
    require grad. Inputs may be tensors or lists of tensors (a list of
    gradients for each list)."""
    groups = [list(item) if isinstance(item, (list, tuple)) else [item] for item in inputs]
    wanted = [
        t for group, need in zip(groups, needs) if need
        for t in group if t is not None and t.requires_grad
    ]
    found = {}
    if wanted:
        with torch.enable_grad():
            out = fn(*inputs)
            grads = torch.autograd.grad(out, wanted, grad_out, create_graph=True, allow_unused=True)
        found = {id(t): g for t, g in zip(wanted, grads)}
    result = []
    for item, group, need in zip(inputs, groups, needs):
        picked = [found.get(id(t)) if need and t is not None else None for t in group]
        result.append(picked if isinstance(item, (list, tuple)) else picked[0])
    return result


def style_target_grad(grad_loss, residual, target, weight: float) -> torch.Tensor:
    """dL/dT_l = -2 w g (G - T) / (B C^2) from the residual ``G - T``
    (B, C, C), summed over the batch for a (C, C) target that broadcasts."""
    batch, channels = residual.shape[0], residual.shape[1]
    g = residual * (-2.0 * weight / (batch * channels * channels)) * grad_loss.to(residual.dtype)
    if target.dim() == 2:
        g = g.sum(0)
    return g.to(target.dtype)


def input_grads(needs: Sequence[bool], grad_out, inputs: Sequence, reference_fn: Callable,
                kernel_grads: Callable[[], Sequence]) -> list:
    """The gradients of ``inputs`` a registered backward returns: from the
    backward operator (``kernel_grads()``), or from ``reference_fn`` when the
    pass must be differentiable; None where ``needs`` is false."""
    if double_backward_wanted():
        grads = reference_grads(reference_fn, inputs, needs, grad_out)
    else:
        grads = kernel_grads()
    return [g if need else None for g, need in zip(grads, needs)]


def masked(grads: Optional[Sequence], needs: Sequence[bool]) -> list:
    """A list of per-layer gradients with None where ``needs`` is false (the
    structure autograd wants for a list input, even when none is needed)."""
    if grads is None:
        return [None] * len(needs)
    return [g if need else None for g, need in zip(grads, needs)]


# --------------------------------------------------------------------------
# the formulas both backends register for their norm operators; only the
# backward operator they call differs


def instance_norm_formulas(call_backward: Callable):
    """``(setup_context, backward)`` for a forward operator ``(x, weight?,
    bias?, eps, activation_code, negative_slope) -> (y, mean, rstd)``.

    ``call_backward(grad_y, x, weight, bias, mean, rstd, code, slope, needs)``
    runs the backend's backward operator and returns the three gradients.
    """
    names = {code: name for name, code in checks.ACTIVATION_CODES.items()}

    def setup_context(ctx, inputs, output):
        x, weight, bias, eps, activation, negative_slope = inputs
        _y, mean, rstd = output
        ctx.save_for_backward(x, weight, bias, mean, rstd)
        ctx.eps, ctx.activation, ctx.negative_slope = eps, activation, negative_slope
        ctx.mark_non_differentiable(mean, rstd)

    def backward(ctx, grad_y, _grad_mean, _grad_rstd):
        x, weight, bias, mean, rstd = ctx.saved_tensors
        needs = ctx.needs_input_grad[:3]
        if grad_y is None:
            return None, None, None, None, None, None
        activation = names[ctx.activation]
        grads = input_grads(
            needs, grad_y, (x, weight, bias),
            lambda x, w, b: reference.instance_norm(x, w, b, ctx.eps, activation, ctx.negative_slope),
            lambda: call_backward(
                grad_y, x, weight, bias, mean, rstd, ctx.activation, ctx.negative_slope, needs
            ),
        )
        return (*grads, None, None, None)

    return setup_context, backward


def adain_formulas(call_backward: Callable):
    """``(setup_context, backward)`` for a forward operator ``(content, style,
    eps, alpha, unbiased) -> (out, c_mean, c_rstd, s_mean, s_sigma)``.

    ``call_backward(grad_out, content, style, c_mean, c_rstd, s_mean, s_sigma,
    alpha, need_style, unbiased)`` runs the backend's backward operator.
    """
    def setup_context(ctx, inputs, output):
        content, style, eps, alpha, unbiased = inputs
        _out, *stats = output
        ctx.save_for_backward(content, style, *stats)
        ctx.eps, ctx.alpha, ctx.unbiased = eps, alpha, unbiased
        ctx.mark_non_differentiable(*stats)

    def backward(ctx, grad_out, *_grad_stats):
        content, style, *stats = ctx.saved_tensors
        needs = ctx.needs_input_grad[:2]
        if grad_out is None:
            return None, None, None, None, None
        grads = input_grads(
            needs, grad_out, (content, style),
            lambda c, s: reference.adain(c, s, ctx.eps, ctx.alpha, ctx.unbiased),
            lambda: call_backward(grad_out, content, style, *stats, ctx.alpha, needs[1],
                                  ctx.unbiased),
        )
        return (*grads, None, None, None)

    return setup_context, backward


def gram_formulas(call_backward: Callable):
    """``(setup_context, backward)`` for a forward operator ``(x, scale) -> G``;
    ``call_backward(grad_gram, x, scale)`` runs the backend's backward operator."""

    def setup_context(ctx, inputs, output):
        x, scale = inputs
        ctx.save_for_backward(x)
        ctx.scale = scale

    def backward(ctx, grad_gram):
        (x,) = ctx.saved_tensors
        (grad,) = input_grads(
            ctx.needs_input_grad[:1], grad_gram, (x,),
            lambda f: reference.gram_matrix(f, ctx.scale),
            lambda: (call_backward(grad_gram, x, ctx.scale),),
        )
        return grad, None

    return setup_context, backward


def style_loss_grads(ctx, grad_loss, features, targets, call_backward, residual) -> tuple:
    """Feature and target gradients of a fused style loss (lists, None where
    not needed). ``call_backward()`` returns the feature gradients from the
    backend's backward operator; ``residual(l)`` is layer l's ``G - T``.
    ``ctx`` carries ``weights`` and ``scales``."""
    need_features, need_targets = ctx.needs_input_grad[:2]

    def kernel_grads():
        feature_grads = call_backward() if any(need_features) else [None] * len(features)
        target_grads = [
            style_target_grad(grad_loss, residual(l), t, w) if need else None
            for l, (t, w, need) in enumerate(zip(targets, ctx.weights, need_targets))
        ]
        return feature_grads, target_grads

    feature_grads, target_grads = input_grads(
        (any(need_features), any(need_targets)), grad_loss, (features, targets),
        lambda f, t: reference.style_loss(f, t, ctx.weights, ctx.scales),
        kernel_grads,
    )
    return masked(feature_grads, need_features), masked(target_grads, need_targets)
