"""The catalogue: the named data sets' files, classes and statistics, and the recipes' names.

Plain constants and two pure functions (`canonical`, `named_info`); nothing here imports
torch or numpy, so the CLI can list data sets and recipes at once and every other module of
`convzoo.data` can read the catalogue without importing the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import DataError

DATASETS = ("fashion-mnist", "mnist", "cifar10", "cifar100")
#: augmentation recipes of `make_augment` (here so the CLI can list them without torch)
RECIPES = ("none", "flip", "standard", "jitter")
DATA_ENV = "CONVZOO_DATA"
#: Debian's data-set packages install here (`apt-get install -y dataset-fashion-mnist`).
SYSTEM_DIR = Path("/usr/share/datasets")
CACHE_ENV = "CONVZOO_CACHE"

#: The IDX files (MNIST, Fashion-MNIST) of each split; each may also be gzipped (`.gz`).
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
#: The CIFAR python batches of each split.
CIFAR_FILES = {
    "cifar10": {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
    "cifar100": {"train": ["train"], "test": ["test"]},
}
#: torchvision's folder names under its `root` (where its download puts the files).
TORCHVISION_SUBDIRS = {
    "fashion-mnist": ("FashionMNIST/raw",),
    "mnist": ("MNIST/raw",),
    "cifar10": ("cifar-10-batches-py",),
    "cifar100": ("cifar-100-python",),
}
#: torchvision's data-set classes, for the download.
TORCHVISION_CLASSES = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST", "cifar10": "CIFAR10", "cifar100": "CIFAR100"}

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

#: Per-channel mean and std of the training images scaled to [0, 1] (population std over all
#: pixels). fashion-mnist measured here (docs/data.md); mnist from pytorch/examples' mnist;
#: CIFAR-10 from kuangliu/pytorch-cifar issue 19, CIFAR-100 from weiaicunzai/pytorch-cifar100;
#: folders use the ImageNet values torchvision's pretrained weights expect.
INFO: dict[str, dict[str, Any]] = {
    "fashion-mnist": {"channels": 1, "size": 28, "num_classes": 10, "mean": (0.2860,), "std": (0.3530,)},
    "mnist": {"channels": 1, "size": 28, "num_classes": 10, "mean": (0.1307,), "std": (0.3081,)},
    "cifar10": {
        "channels": 3, "size": 32, "num_classes": 10,
        "mean": (0.4914, 0.4822, 0.4465), "std": (0.2470, 0.2435, 0.2616),
    },
    "cifar100": {
        "channels": 3, "size": 32, "num_classes": 100,
        "mean": (0.5071, 0.4865, 0.4409), "std": (0.2673, 0.2564, 0.2762),
    },
}  # fmt: skip
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The image files an image folder (`folder:PATH`) may hold.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "cifar-10": "cifar10",
            "cifar-100": "cifar100"}  # fmt: skip


def canonical(name: str) -> str:
    """The catalogue's name for `name` (case and the usual spellings forgiven); DataError if unknown."""
    low = name.strip().lower()
    low = _ALIASES.get(low, low)
    if low not in DATASETS:
        raise DataError(f"unknown data set {name!r}; expected one of {', '.join(DATASETS)} or folder:PATH")
    return low


def named_info(name: str) -> dict[str, Any]:
    """Channels, native size, number of classes, mean, std, name and classes of a named data set.

    `classes` is None for cifar100 (only the files' meta knows the 100 names).
    """
    canon = canonical(name)
    info = dict(INFO[canon])
    info["name"] = canon
    if canon == "fashion-mnist":
        info["classes"] = list(FASHION_MNIST_CLASSES)
    elif canon == "mnist":
        info["classes"] = [str(i) for i in range(10)]
    elif canon == "cifar10":
        info["classes"] = list(CIFAR10_CLASSES)
    else:
        info["classes"] = None
    return info
