"""Data: readers for the real formats, discovery, a device-resident loader, batch augmentation.

- `load_dataset(name, split)`: `fashion-mnist`, `mnist`, `cifar10`, `cifar100` as an
  `ArrayDataset` (one uint8 tensor), `folder:PATH` as a `FolderDataset` (decoded lazily).
- `DeviceLoader`: batches from a permutation of a device-resident `ArrayDataset`,
  resumable mid-epoch and sharded for data parallelism.
- `Augment` / `make_augment`: crops, flips, resize, VGG scale jittering and normalisation
  on whole batches on the device.
- `make_folder_loader`: image folders through a DataLoader with workers.

See docs/data.md for formats, the discovery order and the recipes. Importing this package
does not import torch (`DATASETS` and `RECIPES` are plain tuples, for the CLI's choices);
the other names load their module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .datasets import DATASETS, RECIPES

_LAZY = {
    "ArrayDataset": "datasets",
    "cache_dir": "datasets",
    "compute_mean_std": "datasets",
    "dataset_info": "datasets",
    "find_dataset": "datasets",
    "load_dataset": "datasets",
    "Augment": "augment",
    "center_crop": "augment",
    "make_augment": "augment",
    "resize": "augment",
    "resize_shorter": "augment",
    "FolderDataset": "folder",
    "ShardSampler": "folder",
    "folder_transform": "folder",
    "make_folder_loader": "folder",
    "DeviceLoader": "loader",
    "epoch_order": "loader",
}

__all__ = ["DATASETS", "RECIPES"] + sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'convzoo.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
