"""Data: readers for the real formats, discovery, a device-resident loader, batch augmentation.

- `load_dataset(name, split)`: `fashion-mnist`, `mnist`, `cifar10`, `cifar100` as an
  `ArrayDataset` (one uint8 tensor), `folder:PATH` as a `FolderDataset` (decoded lazily).
- `DeviceLoader`: batches from a permutation of a device-resident `ArrayDataset`,
  resumable mid-epoch and sharded for data parallelism.
- `Augment` / `make_augment`: crops, flips, resize, VGG scale jittering and normalisation
  on whole batches on the device.
- `make_folder_loader`: image folders through a DataLoader with workers;
  `verify_folder` decodes every file of a folder once, before training.

The modules, from the leaves up (each imports only those above it in this list):
`catalogue` (names, files, classes, statistics; no torch), `arrays` (`ArrayDataset`),
`order` (epoch order and sharding, `ShardSampler`), `readers` (IDX and CIFAR files, numpy),
`augment`, `folder` (image folders), `loader` (`DeviceLoader`), and `datasets`, the
dispatcher (discovery by name, `load_dataset`, `dataset_info`).

See docs/data.md for formats, the discovery order and the recipes. Importing this package
does not import torch (`DATASETS` and `RECIPES` come from the catalogue, for the CLI's
choices); the other names load their module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .catalogue import DATASETS, RECIPES

_LAZY = {
    "ArrayDataset": "arrays",
    "cache_dir": "datasets",
    "compute_mean_std": "arrays",
    "dataset_info": "datasets",
    "find_dataset": "datasets",
    "load_dataset": "datasets",
    "Augment": "augment",
    "center_crop": "augment",
    "make_augment": "augment",
    "resize": "augment",
    "resize_shorter": "augment",
    "FolderDataset": "folder",
    "ShardSampler": "order",
    "folder_transform": "folder",
    "make_folder_loader": "folder",
    "FolderLoader": "folder",
    "verify_folder": "folder",
    "DeviceLoader": "loader",
    "epoch_order": "order",
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
