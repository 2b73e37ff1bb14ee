"""Multi-process training under ``torchrun``.

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; with more than
one process, :func:`setup` joins the process group (NCCL on CUDA, gloo on
the CPU) and each process takes its local GPU. Without ``torchrun`` it is a
no-op and training runs in one process.
"""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as dist


@dataclasses.dataclass
class DistributedContext:
    enabled: bool
    rank: int
    world_size: int
    device: torch.device

    def all_true(self, flag: bool) -> bool:
        """Whether ``flag`` holds on every rank (ranks must agree to skip a step)."""
        if not self.enabled:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return bool(value.item() == 1.0)

    def any_true(self, flag: bool) -> bool:
        """Whether ``flag`` holds on some rank (one rank's stop request stops all)."""
        return not self.all_true(not flag)

    def gather(self, value: torch.Tensor) -> list:
        """Every rank's ``value`` (same shape and dtype on all), on the CPU,
        in rank order; ``[value]`` without distribution. Collective."""
        if not self.enabled:
            return [value]
        local = value.to(self.device)
        parts = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(parts, local)
        return [part.cpu() for part in parts]

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` in DistributedDataParallel when distributed, else as is
        (also as is when it trains nothing, like the statistics style
        encoder: DDP refuses a module without trainable parameters)."""
        if not self.enabled or not any(p.requires_grad for p in module.parameters()):
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)


def setup() -> DistributedContext:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext(False, 0, 1, torch.device("cpu"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return DistributedContext(True, dist.get_rank(), dist.get_world_size(), device)


def teardown() -> None:
    """Leave the process group cleanly: every rank first waits at a barrier,
    so no rank tears its connections down while a peer still uses them (gloo
    can abort the process at exit otherwise)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
