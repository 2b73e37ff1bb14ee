"""What every fastgram Triton launcher shares: the interpreter flag and the
launch through ``wrap_triton``."""

from __future__ import annotations

import os

import torch
from torch.library import wrap_triton

# Chosen when triton is first imported: TRITON_INTERPRET=1 runs the kernels'
# Python on the CPU (testing only).
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


def launch(kernel, grid, *args, **kwargs) -> None:
    """Launch through ``wrap_triton`` (so torch.compile traces the kernel) on
    the tensors' own CUDA device (Triton launches on the current one).

    Fake tensors (torch.compile, opcheck) carry no data: a compiled kernel is
    only recorded for them, but the interpreter would try to run it, so under
    the interpreter the launch is skipped, and the outputs' metadata is all
    that fake mode needs."""
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    if INTERPRETED and any(torch._subclasses.fake_tensor.is_fake(t) for t in tensors):
        if torch._C._get_dispatch_mode(torch._C._TorchDispatchModeKey.PROXY) is not None:
            # a graph is being recorded (AOT autograd, make_fx): without the
            # kernel it would compute nothing, so refuse rather than mislead
            raise RuntimeError(
                "torch.compile cannot trace interpreted Triton kernels into a graph: "
                "compile on a CUDA device, or use backend='eager' under TRITON_INTERPRET=1"
            )
        return
    device = tensors[0].device
    if device.type == "cuda":
        with torch.cuda.device(device):
            wrap_triton(kernel)[grid](*args, **kwargs)
    else:
        wrap_triton(kernel)[grid](*args, **kwargs)
