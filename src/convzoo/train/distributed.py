"""Distributed data parallel through PyTorch's own engine (torchrun + DDP).

`torchrun --nproc_per_node N -m convzoo train ...` sets RANK, WORLD_SIZE, LOCAL_RANK and
the rendezvous variables; `setup()` reads them and joins the process group (NCCL on GPUs,
gloo on CPU). Each rank then trains on its shard of the device-resident data with a
per-rank batch of batch_size / world_size; DDP averages the gradients, so a step sees
the same global batch as one process would. Metrics are all-reduced; only rank 0 writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistInfo:
    """Where this process stands: rank, world size, local rank, and whether DDP is on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    enabled: bool = False
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0


def env_info() -> DistInfo:
    """Read torchrun's environment variables (a plain launch gives rank 0 of 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    rank = int(os.environ.get("RANK", "0") or 0)
    local = int(os.environ.get("LOCAL_RANK", str(rank)) or 0)
    return DistInfo(rank=rank, world_size=world, local_rank=local, enabled=world > 1)


def setup(device_kind: str) -> DistInfo:
    """Join the process group when launched by torchrun with more than one process."""
    info = env_info()
    if not info.enabled:
        return info
    if dist.is_available() and dist.is_initialized():
        info.rank, info.world_size = dist.get_rank(), dist.get_world_size()
        return info
    if not dist.is_available():  # pragma: no cover - builds without distributed
        from ..errors import ConfigError

        raise ConfigError("this PyTorch build has no torch.distributed; run with one process")
    backend = "nccl" if device_kind == "cuda" else "gloo"
    if device_kind == "cuda":
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group(backend=backend)
    info.rank, info.world_size = dist.get_rank(), dist.get_world_size()
    info.owns_group = True
    return info


def teardown(info: DistInfo) -> None:
    """Leave the process group if `setup` joined it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """Wrap in DistributedDataParallel when distributed (identity otherwise)."""
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        return DistributedDataParallel(model, device_ids=[device.index], output_device=device.index)
    return DistributedDataParallel(model)


def all_reduce_sum(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    """Sum a few numbers over all ranks (identity with one process)."""
    if not info.enabled:
        return [float(v) for v in values]
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) for v in t.tolist()]


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True when `flag` is true on at least one rank (all ranks get the same answer)."""
    if not info.enabled:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op with one process)."""
    if info.enabled and dist.is_initialized():
        dist.barrier()


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's `obj` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
