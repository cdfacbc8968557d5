"""The trainer's two kinds of batches, behind one protocol.

Data sets small enough to live on the device (Fashion-MNIST, MNIST, CIFAR) go through
`convzoo.data.DeviceLoader`: one uint8 tensor on the device, batches from a permutation,
augmentation on whole batches (the airbench approach: no worker processes, no per-image
Python). Image folders go through a DataLoader with workers, which `FolderBatches` gives
the DeviceLoader protocol: `len`, `set_epoch`, `state_dict`/`load_state_dict` with the
position in the epoch, and batches on the device. `shard` gives a rank its share of an
evaluation set under DDP.
"""

from __future__ import annotations

import copy
from typing import Any, Iterator

import torch


class FolderBatches:
    """`make_folder_loader`'s DataLoader with the DeviceLoader protocol; its `ShardSampler`
    skips the batches already done when resumed mid-epoch."""

    def __init__(self, loader: Any, *, channels_last: bool, device: torch.device) -> None:
        self.loader = loader
        self.sampler = loader.batch_sampler
        self.channels_last = channels_last
        self.device = device
        self.position = 0

    def __len__(self) -> int:
        return len(self.sampler.batches())

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        self.sampler.start = 0
        self.position = 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(self.sampler.epoch), "position": self.position, "seed": int(self.sampler.seed)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.set_epoch(int(state["epoch"]))
        self.sampler.start = self.position = int(state["position"])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:
            self.position += 1
            x = x.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y.to(self.device, non_blocking=True)


def shard(dataset: Any, rank: int, world: int) -> Any:
    """Rank `rank`'s strided share of an ArrayDataset (for evaluation under DDP)."""
    if world == 1:
        return dataset
    out = copy.copy(dataset)
    out.images = dataset.images[rank::world]
    out.labels = dataset.labels[rank::world]
    return out
