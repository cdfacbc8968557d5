"""Data sets by name: discovery on disk, loading into one uint8 tensor, metadata.

Names: `fashion-mnist`, `mnist`, `cifar10`, `cifar100`, and `folder:PATH` for an image
folder (class per sub-folder). Discovery order (docs/data.md): the `data_dir` argument
(`--data-dir`), then `$CONVZOO_DATA`, then Debian's `/usr/share/datasets/<name>/`, then the
download cache `~/.cache/convzoo` (filled by torchvision's download when `download=True`).
In each folder the files may sit in `<folder>/<name>/`, directly in `<folder>/`, or in
torchvision's own layout (`FashionMNIST/raw/`, `cifar-10-batches-py/`, ...).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .folder import FolderDataset

DATASETS = ("fashion-mnist", "mnist", "cifar10", "cifar100")
#: augmentation recipes of `make_augment` (here so the CLI can list them without torch)
RECIPES = ("none", "flip", "standard", "jitter")
DATA_ENV = "CONVZOO_DATA"
#: Debian's data-set packages install here (`apt-get install -y dataset-fashion-mnist`).
SYSTEM_DIR = Path("/usr/share/datasets")
CACHE_ENV = "CONVZOO_CACHE"

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CIFAR_FILES = {
    "cifar10": {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
    "cifar100": {"train": ["train"], "test": ["test"]},
}
#: torchvision's folder names under its `root` (where its download puts the files).
_TORCHVISION_SUBDIRS = {
    "fashion-mnist": ("FashionMNIST/raw",),
    "mnist": ("MNIST/raw",),
    "cifar10": ("cifar-10-batches-py",),
    "cifar100": ("cifar-100-python",),
}

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

#: Per-channel mean and std of the training images scaled to [0, 1] (population std over all
#: pixels). fashion-mnist measured here (docs/data.md); mnist from pytorch/examples' mnist;
#: CIFAR-10 from kuangliu/pytorch-cifar issue 19, CIFAR-100 from weiaicunzai/pytorch-cifar100;
#: folders use the ImageNet values torchvision's pretrained weights expect.
_INFO: dict[str, dict[str, Any]] = {
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
        import torch

        if world_size < 1 or not 0 <= rank < world_size:
            from ..errors import ConfigError

            raise ConfigError(f"rank {rank} is not in 0..{world_size - 1}")
        idx = torch.tensor_split(torch.arange(len(self)), world_size)[rank]
        lo, hi = (int(idx[0]), int(idx[-1]) + 1) if len(idx) else (0, 0)
        return ArrayDataset(
            self.images[lo:hi], self.labels[lo:hi], list(self.classes), self.name, self.split, dict(self.info)
        )

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def cache_dir() -> Path:
    """Where `download=True` puts files: `$CONVZOO_CACHE` or `~/.cache/convzoo`."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "convzoo"


def _canonical(name: str) -> str:
    low = name.strip().lower()
    aliases = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "cifar-10": "cifar10",
               "cifar-100": "cifar100"}  # fmt: skip
    low = aliases.get(low, low)
    if low not in DATASETS:
        raise DataError(f"unknown data set {name!r}; expected one of {', '.join(DATASETS)} or folder:PATH")
    return low


def _split_files(name: str, split: str) -> list[str]:
    if name in _CIFAR_FILES:
        return list(_CIFAR_FILES[name][split])
    return list(_IDX_FILES[split])


def _holds(folder: Path, name: str) -> bool:
    """True when `folder` holds the files of at least one split of `name`."""
    for split in ("train", "test"):
        files = _split_files(name, split)
        if name in _CIFAR_FILES:
            if all((folder / f).is_file() for f in files):
                return True
        elif all((folder / f).is_file() or (folder / (f + ".gz")).is_file() for f in files):
            return True
    return False


def _candidates(base: Path, name: str, nested: bool) -> list[Path]:
    """Folders to check under `base`: `<base>/<name>/` and `<base>/` itself when `nested`,
    and torchvision's layout (`FashionMNIST/raw`, `cifar-10-batches-py`, ...) under them."""
    roots = [base / name, base] if nested else [base]
    return roots + [r / sub for r in roots for sub in _TORCHVISION_SUBDIRS[name]]


def _places(name: str, data_dir: str | None) -> list[tuple[str, Path | None, bool]]:
    """(label, folder, whether the folder holds `<name>/` or the files) in discovery order."""
    env = os.environ.get(DATA_ENV)
    return [
        ("data_dir (--data-dir)", Path(data_dir).expanduser() if data_dir else None, True),
        (f"${DATA_ENV}", Path(env).expanduser() if env else None, True),
        ("system", SYSTEM_DIR / name, False),
        ("download cache", cache_dir() / name, False),
    ]


def _how_to_get(name: str) -> str:
    online = (
        "or, when online, add --download to the command (in Python: "
        f"load_dataset({name!r}, download=True)), which puts it in {cache_dir() / name}"
    )
    if name == "fashion-mnist":
        return f"install it with `apt-get install -y dataset-fashion-mnist`, {online}"
    return f"put the files in one of these places, {online}"


def find_dataset(name: str, data_dir: str | None = None) -> Path:
    """The folder holding the files of data set `name`, searched in the documented order.

    `folder:PATH` returns PATH. Missing data raises `DataError` naming every place looked
    and how to get the data.
    """
    if name.startswith("folder:"):
        path = Path(name[len("folder:") :]).expanduser()
        if not path.is_dir():
            raise DataError(f"image folder {str(path)!r} does not exist or is not a directory")
        return path
    name = _canonical(name)
    looked: list[str] = []
    for label, base, nested in _places(name, data_dir):
        if base is None:
            looked.append(f"{label} (not set)")
            continue
        for cand in _candidates(base, name, nested):
            if cand.is_dir() and _holds(cand, name):
                return cand
        looked.append(f"{label}: {base}")
        if label.startswith("data_dir"):  # a folder the user named: no silent fall-back elsewhere
            what = "does not exist" if not base.exists() else f"holds no {name} files"
            raise DataError(
                f"data set {name!r} not found: --data-dir {str(base)!r} {what} (looked in {base}/{name}/, {base}/ and torchvision's "
                f"layout); fix the path, or drop --data-dir to search ${DATA_ENV} and {SYSTEM_DIR}"
            )
    raise DataError(f"data set {name!r} not found; looked in: {'; '.join(looked)}. To get it, {_how_to_get(name)}")


def _download(name: str) -> Path:
    """torchvision's download into the cache folder; returns the folder holding the files."""
    try:
        from torchvision import datasets as tvd
    except ImportError as err:  # pragma: no cover - torchvision is a dependency
        raise DataError(f"cannot download {name}: torchvision is not installed") from err
    root = cache_dir() / name
    cls = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST", "cifar10": "CIFAR10", "cifar100": "CIFAR100"}[name]
    try:
        for train in (True, False):
            getattr(tvd, cls)(root=str(root), train=train, download=True)
    except Exception as err:  # network failures come in many types (URLError, OSError, RuntimeError)
        raise DataError(f"downloading {name} into {root} failed: {err}") from err
    return find_dataset(name, str(root))


def _resolve_split(split: str) -> str:
    s = split.lower()
    if s in ("train", "training"):
        return "train"
    if s in ("test", "val", "validation", "t10k"):
        return "test"
    raise DataError(f"unknown split {split!r}; expected 'train' or 'test'")


def _find_file(folder: Path, stem: str) -> Path:
    for cand in (folder / (stem + ".gz"), folder / stem):
        if cand.is_file():
            return cand
    raise DataError(f"{folder} has no {stem} (nor {stem}.gz)")


def load_dataset(
    name: str, split: str = "train", data_dir: str | None = None, *, download: bool = False
) -> ArrayDataset | FolderDataset:
    """Load data set `name`'s `split` ('train' or 'test'; 'val' means test for the arrays).

    Known names give an `ArrayDataset` on the CPU; `folder:PATH` gives a `FolderDataset`
    (decoded lazily, through a DataLoader). Missing or corrupt files raise `DataError`.
    """
    if name.startswith("folder:"):
        from .folder import FolderDataset

        return FolderDataset.from_root(find_dataset(name, data_dir), split)
    import numpy as np
    import torch

    from .readers import read_cifar_batch, read_cifar_names, read_idx_pair

    canon = _canonical(name)
    which = _resolve_split(split)
    try:
        folder = find_dataset(canon, data_dir)
    except DataError:
        if not download:
            raise
        folder = _download(canon)
    info = dataset_info(canon)
    if canon in _CIFAR_FILES:
        label_key = "labels" if canon == "cifar10" else "fine_labels"
        parts = []
        for f in _split_files(canon, which):
            path = folder / f
            if not path.is_file():
                raise DataError(f"{folder} has no {f} (the {which} split of {canon})")
            parts.append(read_cifar_batch(path, label_key, info["num_classes"]))
        x = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        y = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
        if canon == "cifar10":
            classes = read_cifar_names(folder / "batches.meta", "label_names", 10) or list(CIFAR10_CLASSES)
        else:
            classes = read_cifar_names(folder / "meta", "fine_label_names", 100) or [str(i) for i in range(100)]
        images = torch.from_numpy(np.ascontiguousarray(x))
    else:
        img_stem, lab_stem = _IDX_FILES[which]
        x, y = read_idx_pair(_find_file(folder, img_stem), _find_file(folder, lab_stem), info["num_classes"])
        if x.shape[1:] != (28, 28):
            raise DataError(f"{_find_file(folder, img_stem)}: wrong dimensions {x.shape[1:]} (expected (28, 28))")
        classes = list(FASHION_MNIST_CLASSES) if canon == "fashion-mnist" else [str(i) for i in range(10)]
        # frombuffer gives a read-only view of the decompressed bytes; one copy makes it ours
        images = torch.from_numpy(x.copy()).unsqueeze(1)
    labels = torch.from_numpy(np.asarray(y, dtype=np.int64).copy())
    return ArrayDataset(images, labels, classes, canon, which, info)


def dataset_info(name: str, data_dir: str | None = None) -> dict[str, Any]:
    """Channels, native size, number of classes, per-channel mean and std of data set `name`.

    For `folder:PATH` the classes are counted from the folder; size is None (images vary)
    and mean/std are ImageNet's.
    """
    if name.startswith("folder:"):
        from .folder import list_classes

        root = find_dataset(name, data_dir)
        classes = list_classes(root)
        return {"name": name, "channels": 3, "size": None, "num_classes": len(classes), "classes": classes,
                "mean": IMAGENET_MEAN, "std": IMAGENET_STD}  # fmt: skip
    canon = _canonical(name)
    info = dict(_INFO[canon])
    info["name"] = canon
    if canon == "fashion-mnist":
        info["classes"] = list(FASHION_MNIST_CLASSES)
    elif canon == "mnist":
        info["classes"] = [str(i) for i in range(10)]
    elif canon == "cifar10":
        info["classes"] = list(CIFAR10_CLASSES)
    else:
        info["classes"] = None  # only the files' meta knows the 100 names
    return info


def compute_mean_std(images: torch.Tensor, batch: int = 8192) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of uint8 images N x C x H x W, scaled to [0, 1]."""
    import torch

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
