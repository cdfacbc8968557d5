"""Epoch order and sharding: which samples each batch of each rank holds, as pure functions.

Epoch e's order is `randperm(N)` from a CPU generator seeded with `seed * 1000003 + e`
(identical on every device); batch b's augmentation draws come from a CPU generator seeded
from (seed, e, b). Each global batch of `batch_size * world_size` samples is split in rank
order. `DeviceLoader` (arrays on the device) and `ShardSampler` (image folders through a
DataLoader) both follow these rules, so the two loaders shard and resume alike.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Sampler

_MASK63 = (1 << 63) - 1
_AUG_SALT = 0x5DEECE66D  # keeps augmentation seeds apart from permutation seeds


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> torch.Tensor:
    """The sample order of `epoch` (CPU int64): a permutation seeded with seed*1000003+epoch."""
    if not shuffle:
        return torch.arange(n)
    g = torch.Generator().manual_seed((seed * 1000003 + epoch) & _MASK63)
    return torch.randperm(n, generator=g)


def augment_seed(seed: int, epoch: int, batch: int) -> int:
    """The seed of the augmentation draws of global batch `batch` of `epoch`."""
    return (((seed * 1000003 + epoch) * 1000003 + batch) ^ _AUG_SALT) & _MASK63


def global_bounds(n: int, batch_size: int, world_size: int, drop_last: bool, shuffle: bool) -> list[tuple[int, int]]:
    """[lo, hi) of every global batch (batch_size * world_size samples) in the epoch order.

    A final partial batch is kept unless `drop_last`; with several ranks and shuffling
    (training) it is also dropped when it has fewer samples than ranks, so that no rank gets
    an empty batch (BatchNorm cannot train on one).
    """
    g = batch_size * world_size
    full = n // g
    out = [(i * g, (i + 1) * g) for i in range(full)]
    rem = n - full * g
    if rem and not drop_last and not (world_size > 1 and shuffle and rem < world_size):
        out.append((full * g, n))
    return out


def shard_bounds(
    n: int, batch_size: int, world_size: int, rank: int, drop_last: bool, shuffle: bool
) -> list[tuple[int, int]]:
    """[lo, hi) of this rank's part of every global batch; a partial one is split evenly."""
    out = []
    for lo, hi in global_bounds(n, batch_size, world_size, drop_last, shuffle):
        size = hi - lo
        if size == batch_size * world_size:
            out.append((lo + rank * batch_size, lo + (rank + 1) * batch_size))
        else:  # like torch.tensor_split: the first size % world_size ranks get one more
            q, r = divmod(size, world_size)
            start = lo + rank * q + min(rank, r)
            out.append((start, start + q + (1 if rank < r else 0)))
    return out


class ShardSampler(Sampler[list[int]]):
    """Batches of indices of one rank, with the same order and sharding rules as `DeviceLoader`.

    Epoch e's order is `randperm(n)` from a CPU generator seeded with seed*1000003 + e; each
    global batch of batch_size * world_size indices is split in rank order. `start` skips
    batches already served (mid-epoch resume).
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, seed: int = 0, rank: int = 0,
                 world_size: int = 1, drop_last: bool = False) -> None:  # fmt: skip
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.start = 0
        self.epoch = epoch

    def _order(self) -> torch.Tensor:
        return epoch_order(self.n, self.seed, self.epoch, self.shuffle)

    def batches(self) -> list[tuple[int, int]]:
        return shard_bounds(self.n, self.batch_size, self.world_size, self.rank, self.drop_last, self.shuffle)

    def __iter__(self) -> Iterator[list[int]]:
        order = self._order()
        for lo, hi in self.batches()[self.start :]:
            yield order[lo:hi].tolist()

    def __len__(self) -> int:
        return len(self.batches()[self.start :])
