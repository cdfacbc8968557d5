"""`ArrayDataset`: a small data set held as one uint8 tensor, and its statistics.

What the readers of the named data sets produce and what `DeviceLoader` serves from; an
image folder becomes one through `FolderDataset.to_arrays`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ConfigError


@dataclass
class ArrayDataset:
    """A small data set held as one uint8 tensor (on any device).

    `images` is uint8 N x C x H x W, `labels` int64 N. Augmentation and normalisation happen
    per batch (`Augment`), so the resident copy stays 4x smaller than float.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str
    split: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def to(self, device: Any) -> ArrayDataset:
        """A copy on `device` (the same object's tensors when already there)."""
        return ArrayDataset(
            self.images.to(device), self.labels.to(device), list(self.classes), self.name, self.split, dict(self.info)
        )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, n: int) -> ArrayDataset:
        """The first `n` samples (for smoke runs); all of them when `n` exceeds the size."""
        return ArrayDataset(
            self.images[:n], self.labels[:n], list(self.classes), self.name, self.split, dict(self.info)
        )

    def shard(self, rank: int, world_size: int) -> ArrayDataset:
        """This rank's contiguous part (split like torch.tensor_split), e.g. for evaluation under DDP."""
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is not in 0..{world_size - 1}")
        idx = torch.tensor_split(torch.arange(len(self)), world_size)[rank]
        lo, hi = (int(idx[0]), int(idx[-1]) + 1) if len(idx) else (0, 0)
        return ArrayDataset(
            self.images[lo:hi], self.labels[lo:hi], list(self.classes), self.name, self.split, dict(self.info)
        )

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def compute_mean_std(images: torch.Tensor, batch: int = 8192) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of uint8 images N x C x H x W, scaled to [0, 1]."""
    c = images.shape[1]
    s = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    for i in range(0, images.shape[0], batch):
        x = images[i : i + batch].to(torch.float64) / 255.0
        s += x.sum(dim=(0, 2, 3)).cpu()
        s2 += (x * x).sum(dim=(0, 2, 3)).cpu()
    n = images.shape[0] * images.shape[2] * images.shape[3]
    mean = s / n
    std = (s2 / n - mean * mean).clamp_min(0).sqrt()
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
