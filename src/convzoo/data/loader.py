"""`DeviceLoader`: batches from a permutation of a device-resident `ArrayDataset`.

No worker processes and no per-sample Python: each batch is one `index_select` on the
device copy of the data plus one vectorised augmentation (airbench's approach).

Determinism and resume: the order of every epoch and the seed of every batch's augmentation
draws are pure functions of (seed, epoch, batch) (`order.py`), so `state_dict()` =
(epoch, position, seed) pins down every remaining batch exactly.

Data parallel: with `world_size > 1` each global batch of `batch_size * world_size` samples
is split in rank order and the augmentation draws are made for the whole global batch and
sliced, so 2 ranks x batch B see exactly what 1 process with batch 2B sees.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch

from ..errors import ConfigError
from .arrays import ArrayDataset
from .augment import Augment
from .order import augment_seed, epoch_order, global_bounds, shard_bounds


class DeviceLoader:
    """Batches (float images on the device, int64 labels) from a device-resident data set.

    Without `augment` the images come out as float in [0, 1]. `channels_last` returns
    images in channels-last memory format. `device` moves the data set there once.
    `data_threads`: on the CPU, batches are built with this many intra-op threads (the
    previous setting is restored before the batch is handed out). The batch ops are small
    and memory-bound; on a busy 2-core machine, 2 OpenMP threads made them about 10x slower
    than 1 (docs/data.md). None leaves torch's setting alone.
    """

    def __init__(
        self,
        dataset: ArrayDataset,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        augment: Augment | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
        device: Any = None,
        data_threads: int | None = 1,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch size must be positive, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is not in 0..{world_size - 1}")
        if len(dataset) == 0:
            raise ConfigError(f"data set {dataset.name!r} is empty")
        self.dataset = dataset.to(device) if device is not None else dataset
        self.device = self.dataset.images.device
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.augment = augment
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.channels_last = channels_last
        self.data_threads = data_threads
        self.epoch = 0
        self.position = 0
        self._bounds = shard_bounds(len(self.dataset), batch_size, world_size, rank, drop_last, shuffle)
        self._global = global_bounds(len(self.dataset), batch_size, world_size, drop_last, shuffle)

    def set_epoch(self, epoch: int) -> None:
        """Start epoch `epoch` at its first batch; the current epoch keeps its position (resume)."""
        if int(epoch) != self.epoch:
            self.position = 0
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._bounds)

    @property
    def samples_per_epoch(self) -> int:
        """Samples this rank sees per epoch."""
        return sum(hi - lo for lo, hi in self._bounds)

    def state_dict(self) -> dict[str, int]:
        """{'epoch', 'position' (batches already served this epoch), 'seed'}: plain ints."""
        return {"epoch": int(self.epoch), "position": int(self.position), "seed": int(self.seed)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume: the next batches are exactly those an uninterrupted loader would serve."""
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self.seed = int(state.get("seed", self.seed))
        if not 0 <= self.position <= len(self):
            raise ConfigError(f"loader position {self.position} is outside 0..{len(self)} batches of this epoch")

    def batch(self, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch `index` of `epoch` for this rank (what iteration yields there)."""
        order = epoch_order(len(self.dataset), self.seed, epoch, self.shuffle).to(self.device, non_blocking=True)
        return self._make(order, epoch, index)

    def _make(self, order: torch.Tensor, epoch: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        threads = self.data_threads
        if threads is None or self.device.type != "cpu" or torch.get_num_threads() == threads:
            return self._build(order, epoch, b)
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return self._build(order, epoch, b)
        finally:
            torch.set_num_threads(previous)

    def _build(self, order: torch.Tensor, epoch: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        lo, hi = self._bounds[b]
        idx = order[lo:hi]
        x = self.dataset.images.index_select(0, idx)
        y = self.dataset.labels.index_select(0, idx)
        if self.augment is not None:
            glo, ghi = self._global[b]
            gen = torch.Generator().manual_seed(augment_seed(self.seed, epoch, b))
            params = self.augment.sample_params(ghi - glo, gen, tuple(x.shape[-2:]))
            if (lo, hi) != (glo, ghi):  # this rank's slice of the global batch's draws
                params = {k: v[lo - glo : hi - glo] for k, v in params.items()}
            x = self.augment.apply(x, params)
        else:
            x = x.to(torch.float32).div_(255.0)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self.epoch
        order = epoch_order(len(self.dataset), self.seed, epoch, self.shuffle).to(self.device, non_blocking=True)
        while self.position < len(self._bounds) and self.epoch == epoch:
            b = self.position
            out = self._make(order, epoch, b)
            self.position = b + 1  # counted as served once handed out
            yield out
        if self.epoch == epoch and self.position >= len(self._bounds):
            # the epoch is over: the next iteration starts the next epoch
            self.epoch, self.position = epoch + 1, 0
