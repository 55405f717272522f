"""torchrun / DDP set-up from environment variables; a single process when WORLD_SIZE is unset or 1."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ssc_core.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: rank, world_size, local_rank, and the torch device it should use."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_distributed(self) -> bool:
        """True when more than one process trains together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the process that logs, validates and writes checkpoints)."""
        return self.rank == 0


def resolve_device(device: str | None) -> torch.device:
    """``None``/'auto' -> cuda if available else cpu; otherwise ``torch.device(device)`` (ConfigError if the
    device cannot be used here)."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"invalid device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    return dev


def init_distributed(device: str | None = None) -> DistInfo:
    """Initialise the process group from torchrun's env vars (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT):
    NCCL with one GPU per local rank when CUDA is used, else Gloo. Without WORLD_SIZE (or with 1) returns a
    single-process DistInfo on ``resolve_device(device)``."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    base = resolve_device(device)
    if world_size <= 1:
        return DistInfo(device=base)
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if base.type == "cuda":
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
        backend = "nccl"
    else:
        dev = base
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def barrier(info: DistInfo) -> None:
    """Wait for all ranks (no-op in a single process)."""
    if info.is_distributed and dist.is_initialized():
        dist.barrier()


def cleanup_distributed(info: DistInfo) -> None:
    """Destroy the process group if this module created one."""
    if info.is_distributed and dist.is_initialized():
        dist.destroy_process_group()
