"""Python side of the extension's operators: fake (meta) implementations,
autograd formulas, and the ``ext`` backend's entries in :mod:`fastgram.dispatch`.

The operators themselves are defined in C++ (``csrc/style_loss_cpu.cpp``,
namespace ``fastgram``, names prefixed ``ext_``); see ``csrc/fastgram_ext.h``
for their schemas. :func:`register_all` runs once, after the library is
loaded.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from fastgram import dispatch
from fastgram.ops import reference

NAMESPACE = "fastgram"
OP_NAMES = (
    "ext_gram_forward",
    "ext_gram_backward",
    "ext_style_loss_forward",
    "ext_style_loss_backward",
)
# The ops of fastgram.ops this backend implements (dispatch.PROVIDES["ext"]).
DISPATCH_OPS = ("gram_matrix", "style_loss")

_CPU_DTYPES = (torch.float32, torch.float64)
# Below this many multiply-adds (sum over layers of B * C^2 * H * W) the CPU
# path hands the call to the reference: the fixed cost of the custom op's
# autograd bookkeeping (about 0.1 ms, measured on a 2-core machine) exceeds
# the work, and plain PyTorch is faster. Above it the fused kernels win.
CPU_MIN_WORK = 1 << 20
_CUDA_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

_registered = False


def _ops():
    return getattr(torch.ops, NAMESPACE)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _grad_like(features: torch.Tensor) -> torch.Tensor:
    """Layout of the gradients the kernels return: channels_last for
    channels_last feature maps, contiguous otherwise (matches the C++ side)."""
    if features.dim() == 4 and not features.is_contiguous() and features.is_contiguous(
        memory_format=torch.channels_last
    ):
        return torch.empty_like(features, memory_format=torch.channels_last)
    return torch.empty_like(features, memory_format=torch.contiguous_format)


_devices: tuple = ()


def devices_built() -> tuple:
    """Device types the loaded library has kernels for.

    Asked of the dispatcher once and kept: the answer cannot change after
    the load, and a plain tuple is something torch.compile can trace
    (the dispatcher query is not).
    """
    global _devices
    if not _devices:
        name = f"{NAMESPACE}::ext_style_loss_forward"
        _devices = tuple(
            device
            for device, key in (("cpu", "CPU"), ("cuda", "CUDA"))
            if torch._C._dispatch_has_kernel_for_dispatch_key(name, key)
        )
    return _devices


# --------------------------------------------------------------------------
# fake implementations: shapes, dtypes and devices from the real inputs


def _same_device(op: str, tensors) -> None:
    """Mixed devices reach the fake (Meta) kernel instead of a real one; it
    rejects them as the real kernels do."""
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        names = ", ".join(sorted(str(d) for d in devices))
        raise RuntimeError(f"{op}: expected all tensors on one device, got {names}")


def _gram_forward_fake(features, scale):
    b, c = features.shape[0], features.shape[1]
    return features.new_empty((b, c, c))


def _gram_backward_fake(grad_gram, features, scale):
    _same_device("ext_gram_backward", (grad_gram, features))
    return _grad_like(features)


def _style_loss_forward_fake(features, targets, weights, scales):
    _same_device("ext_style_loss_forward", [*features, *targets])
    cdt = _compute_dtype(features[0].dtype)
    loss = features[0].new_empty((), dtype=cdt)
    residuals = [f.new_empty((f.shape[0], f.shape[1], f.shape[1]), dtype=cdt) for f in features]
    return loss, residuals


def _style_loss_backward_fake(grad_loss, features, residuals, weights, scales):
    _same_device("ext_style_loss_backward", [grad_loss, *features, *residuals])
    return [_grad_like(f) for f in features]


# --------------------------------------------------------------------------
# autograd


def _gram_forward_setup(ctx, inputs, output):
    features, scale = inputs
    ctx.save_for_backward(features)
    ctx.scale = scale


def _gram_forward_backward(ctx, grad_gram):
    (features,) = ctx.saved_tensors
    grad = None
    if ctx.needs_input_grad[0]:
        grad = _ops().ext_gram_backward(grad_gram, features, ctx.scale)
    return grad, None


def _gram_backward_setup(ctx, inputs, output):
    grad_gram, features, scale = inputs
    ctx.save_for_backward(grad_gram, features)
    ctx.scale = scale


def _gram_backward_backward(ctx, upstream):
    # y = s (G + G^T) F is bilinear in (G, F): dF = s (G + G^T)^T U, which is
    # the same operator again, and dG = s (U F^T + F U^T).
    grad_gram, features = ctx.saved_tensors
    d_grad_gram = d_features = None
    if ctx.needs_input_grad[0]:
        u = upstream.flatten(2).to(_compute_dtype(features.dtype))
        f = features.flatten(2).to(u.dtype)
        uf = torch.bmm(u, f.transpose(1, 2))
        d_grad_gram = ((uf + uf.transpose(1, 2)) * ctx.scale).to(grad_gram.dtype)
    if ctx.needs_input_grad[1]:
        d_features = _ops().ext_gram_backward(grad_gram, upstream, ctx.scale)
    return d_grad_gram, d_features, None


def _style_loss_setup(ctx, inputs, output):
    features, targets, weights, scales = inputs
    _, residuals = output
    # Unused outputs (the residuals, nearly always) must arrive as None, not
    # as materialised zeros that would cost a Gram backward each.
    ctx.set_materialize_grads(False)
    ctx.layers = len(features)
    ctx.weights = list(weights)
    ctx.scales = list(scales)
    ctx.target_meta = [(t.dim(), t.dtype) for t in targets]
    ctx.save_for_backward(*features, *residuals)


def _style_loss_backward(ctx, grad_loss, grad_residuals):
    n = ctx.layers
    saved = ctx.saved_tensors
    features, residuals = list(saved[:n]), list(saved[n:])
    need_features, need_targets = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    grad_residuals = list(grad_residuals) if grad_residuals is not None else [None] * n

    feature_grads = [None] * n
    if any(need_features):
        if grad_loss is not None:
            feature_grads = list(
                _ops().ext_style_loss_backward(
                    grad_loss, features, residuals, ctx.weights, ctx.scales
                )
            )
        # The residuals are outputs too; a gradient flowing into them (rare:
        # only when a caller uses them) adds the Gram backward of that term.
        for l, g in enumerate(grad_residuals):
            if g is not None and need_features[l]:
                extra = _ops().ext_gram_backward(g, features[l], ctx.scales[l])
                feature_grads[l] = extra if feature_grads[l] is None else feature_grads[l] + extra
        feature_grads = [g if need else None for g, need in zip(feature_grads, need_features)]

    target_grads = [None] * n
    for l in range(n):
        if not need_targets[l]:
            continue
        r = residuals[l]
        b, c = r.shape[0], r.shape[1]
        g = torch.zeros_like(r)
        if grad_loss is not None:
            g = r * (-2.0 * ctx.weights[l] / (b * c * c)) * grad_loss.to(r.dtype)
        if grad_residuals[l] is not None:
            g = g - grad_residuals[l]
        dim, dtype = ctx.target_meta[l]
        if dim == 2:
            g = g.sum(0)
        target_grads[l] = g.to(dtype)
    return feature_grads, target_grads, None, None


# --------------------------------------------------------------------------
# the ext backend's functions (signatures of fastgram.ops.reference)


def _work(x: torch.Tensor) -> int:
    return x.shape[0] * x.shape[1] * x[0].numel()


def _small_on_cpu(tensors) -> bool:
    return tensors[0].device.type == "cpu" and sum(_work(t) for t in tensors) < CPU_MIN_WORK


def gram_matrix(x: torch.Tensor, scale: float) -> torch.Tensor:
    if _small_on_cpu([x]):
        return reference.gram_matrix(x, scale)
    return _ops().ext_gram_forward(x, scale)


def style_loss(
    features: Sequence[torch.Tensor],
    targets: Sequence[torch.Tensor],
    weights: Sequence[float],
    scales: Sequence[float],
) -> torch.Tensor:
    if _small_on_cpu(features):
        return reference.style_loss(features, targets, weights, scales)
    loss, _ = _ops().ext_style_loss_forward(
        list(features), list(targets), [float(w) for w in weights], [float(s) for s in scales]
    )
    return loss


def _device_reason(x: torch.Tensor) -> Optional[str]:
    device = x.device.type
    if device not in devices_built():
        if device == "cuda":
            return "the extension was built without its CUDA kernels"
        return f"the extension has no kernels for {device} tensors"
    allowed = _CPU_DTYPES if device == "cpu" else _CUDA_DTYPES
    if x.dtype not in allowed:
        names = ", ".join(str(d).replace("torch.", "") for d in allowed)
        return f"its {device} kernels take {names}, not {str(x.dtype).replace('torch.', '')}"
    return None


def gram_matrix_supports(x, scale) -> Optional[str]:
    return _device_reason(x)


def style_loss_supports(features, targets, weights, scales) -> Optional[str]:
    return _device_reason(features[0])


def register_all() -> None:
    """Fake impls, autograd and dispatch entries; safe to call again."""
    global _registered
    if not _registered:
        _register_torch_library()
        devices_built()
        _registered = True
    dispatch.register("gram_matrix", "ext", gram_matrix, supports=gram_matrix_supports)
    dispatch.register("style_loss", "ext", style_loss, supports=style_loss_supports)


def _register_torch_library() -> None:
    ns = NAMESPACE
    torch.library.register_fake(f"{ns}::ext_gram_forward", _gram_forward_fake)
    torch.library.register_fake(f"{ns}::ext_gram_backward", _gram_backward_fake)
    torch.library.register_fake(f"{ns}::ext_style_loss_forward", _style_loss_forward_fake)
    torch.library.register_fake(f"{ns}::ext_style_loss_backward", _style_loss_backward_fake)
    torch.library.register_autograd(
        f"{ns}::ext_gram_forward", _gram_forward_backward, setup_context=_gram_forward_setup
    )
    torch.library.register_autograd(
        f"{ns}::ext_gram_backward", _gram_backward_backward, setup_context=_gram_backward_setup
    )
    torch.library.register_autograd(
        f"{ns}::ext_style_loss_forward", _style_loss_backward, setup_context=_style_loss_setup
    )
