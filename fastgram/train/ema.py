"""Exponential moving average of a model's weights."""

from __future__ import annotations

import copy

import torch


class EMA:
    """Keeps ``shadow``, a frozen copy of ``model`` whose floating-point
    parameters and buffers follow ``shadow = decay * shadow + (1 - decay) * model``
    after each :meth:`update`; integer buffers are copied."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay: expected a number in [0, 1), got {decay}")
        self.decay = decay
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        current = model.state_dict()
        for name, value in self.shadow.state_dict().items():
            source = current[name]
            if value.is_floating_point():
                value.lerp_(source.to(value.dtype), 1.0 - self.decay)
            else:
                value.copy_(source)
