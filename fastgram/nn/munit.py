"""AdaIN in MUNIT's module protocol: scale and shift assigned as attributes.

MUNIT-style decoders (Huang et al., 2018, and the projects built on its
code) keep their AdaIN layers parameter-free: before each ``forward`` a
style MLP's output is cut into per-layer pieces and written into every
layer's ``weight`` and ``bias`` attributes as flat ``(B·C,)`` tensors,
sample-major (all C values of sample 0, then sample 1, ...). The layers
are found by class name (``m.__class__.__name__ == "AdaptiveInstanceNorm2d"``),
so this class keeps that name, and they carry two unused buffers,
``running_mean`` and ``running_var``, which their checkpoints contain.

The output is the instance norm of ``x`` with those per-sample parameters:
per sample and channel, the mean and the *biased* variance over the spatial
positions, ``eps`` added to the variance inside the square root, in training
and evaluation mode alike (the protocol's statistics are never running
ones). It runs on :func:`fastgram.ops.instance_norm`.
"""

from __future__ import annotations

import torch

from fastgram import ops, validation


def _assigned(module: torch.nn.Module, name: str, x: torch.Tensor) -> torch.Tensor:
    """The assigned ``weight`` or ``bias`` of ``module`` as (B, C), after
    checking it. A function, not a method: ``fastgram.patch`` probes this
    forward on a module whose class is still the original one."""
    value = getattr(module, name)
    if value is None:
        raise ValueError(
            f"{name}: not assigned; set the module's weight and bias to flat (B*C,) "
            "tensors before calling it (MUNIT's assign_adain_params does this)"
        )
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor, got {type(value).__name__}")
    batch, channels = x.shape[0], x.shape[1]
    if value.dim() != 1 or value.numel() != batch * channels:
        raise ValueError(
            f"{name}: expected a flat tensor of B*C = {batch}*{channels} = "
            f"{batch * channels} values for input of shape {tuple(x.shape)}, "
            f"got shape {tuple(value.shape)}"
        )
    return value.reshape(batch, channels)


class AdaptiveInstanceNorm2d(torch.nn.Module):
    """Instance norm with ``weight``/``bias`` assigned before ``forward``.

    Also exported as ``fastgram.nn.MUNITAdaptiveInstanceNorm2d``; the class
    name stays ``AdaptiveInstanceNorm2d`` because MUNIT's code finds these
    layers by that name (:class:`fastgram.nn.AdaptiveInstanceNorm2d` is the
    other protocol, with ``weight`` and ``bias`` passed to ``forward``).

    Args:
        num_features: C, the channel count of the input.
        eps: positive number added to the variance.
        momentum: kept for the protocol (and checkpoints' configs); the
            running buffers are never updated, as in MUNIT.

    Attributes:
        weight, bias: ``None`` until assigned; then flat tensors of
            ``B·C`` values for an input of batch B (sample-major).
        running_mean, running_var: buffers of zeros and ones, unused, so
            ``state_dict`` keys match the protocol's checkpoints.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_features = validation.integer(num_features, "num_features")
        self.eps = validation.positive(eps, "eps")
        self.momentum = validation.real_number(momentum, "momentum")
        self.weight = None
        self.bias = None
        self.register_buffer("running_mean", torch.zeros(self.num_features))
        self.register_buffer("running_var", torch.ones(self.num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        validation.tensor(x, "x", (3, 4))
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"x: expected {self.num_features} channels (num_features), "
                f"got shape {tuple(x.shape)}"
            )
        if x[0, 0].numel() == 1:
            # the protocol's batch-norm formulation refuses a single value
            # per channel; so does the drop-in, rather than return the bias
            raise ValueError(
                f"x: expected more than 1 spatial element, got shape {tuple(x.shape)}"
            )
        weight = _assigned(self, "weight", x)
        bias = _assigned(self, "bias", x)
        return ops.instance_norm(x, weight, bias, self.eps)

    def __repr__(self) -> str:
        # the protocol's short form: ClassName(num_features)
        return f"{type(self).__name__}({self.num_features})"
