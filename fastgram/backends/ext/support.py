"""Which tensors the extension's kernels take, and where a fused call does
not pay on the CPU."""

from __future__ import annotations

from typing import Optional

import torch

# The ops this backend implements, one module each in this package (which
# registers the Python side of its operators when imported).
OPS = ("gram_matrix", "style_loss", "instance_norm", "adain", "moment_loss")

_DTYPES = {
    "cpu": (torch.float32, torch.float64),
    "cuda": (torch.float32, torch.float16, torch.bfloat16),
}

_devices: dict = {}


def devices_built(op: str = "ext_style_loss") -> tuple:
    """Device types the loaded library has kernels of ``op`` for.

    Asked of the dispatcher once per op and kept: the answer cannot change
    after the load, and a plain tuple is something torch.compile can trace
    (the dispatcher query is not).
    """
    found = _devices.get(op)
    if found is None:
        name = f"fastgram::{op}"
        found = _devices[op] = tuple(
            device
            for device, key in (("cpu", "CPU"), ("cuda", "CUDA"))
            if torch._C._dispatch_has_kernel_for_dispatch_key(name, key)
        )
    return found


def device_reason(x: torch.Tensor, op: str) -> Optional[str]:
    """Why the kernels of registered operator ``op`` cannot take ``x``, or None."""
    device = x.device.type
    if device not in devices_built(op):
        if device == "cuda":
            return f"the extension has no CUDA kernel of {op} (built without CUDA, or CPU-only op)"
        return f"the extension has no kernels for {device} tensors"
    allowed = _DTYPES[device]
    if x.dtype not in allowed:
        names = ", ".join(str(d).replace("torch.", "") for d in allowed)
        return f"its {device} kernels take {names}, not {str(x.dtype).replace('torch.', '')}"
    return None


def require_device(x: torch.Tensor, name: str, op: str) -> None:
    """The fakes' device check: what the real kernel would refuse."""
    reason = device_reason(x, op)
    if reason is not None:
        raise ValueError(f"{name}: {reason}")
