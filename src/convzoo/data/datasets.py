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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .arrays import ArrayDataset, compute_mean_std
from .catalogue import (
    CACHE_ENV,
    CIFAR10_CLASSES,
    CIFAR_FILES,
    DATA_ENV,
    DATASETS,
    FASHION_MNIST_CLASSES,
    IDX_FILES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    RECIPES,
    SYSTEM_DIR,
    TORCHVISION_CLASSES,
    TORCHVISION_SUBDIRS,
    canonical,
    named_info,
)
from .folder import FolderDataset, list_classes
from .readers import read_cifar_batch, read_cifar_names, read_idx_pair

__all__ = [
    "DATASETS", "RECIPES", "SYSTEM_DIR", "ArrayDataset", "FolderDataset", "cache_dir", "compute_mean_std",
    "dataset_info", "find_dataset", "load_dataset",
]  # fmt: skip


def cache_dir() -> Path:
    """Where `download=True` puts files: `$CONVZOO_CACHE` or `~/.cache/convzoo`."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "convzoo"


def _split_files(name: str, split: str) -> list[str]:
    if name in CIFAR_FILES:
        return list(CIFAR_FILES[name][split])
    return list(IDX_FILES[split])


def _holds(folder: Path, name: str) -> bool:
    """True when `folder` holds the files of at least one split of `name`."""
    for split in ("train", "test"):
        files = _split_files(name, split)
        if name in CIFAR_FILES:
            if all((folder / f).is_file() for f in files):
                return True
        elif all((folder / f).is_file() or (folder / (f + ".gz")).is_file() for f in files):
            return True
    return False


def _candidates(base: Path, name: str, nested: bool) -> list[Path]:
    """Folders to check under `base`: `<base>/<name>/` and `<base>/` itself when `nested`,
    and torchvision's layout (`FashionMNIST/raw`, `cifar-10-batches-py`, ...) under them."""
    roots = [base / name, base] if nested else [base]
    return roots + [r / sub for r in roots for sub in TORCHVISION_SUBDIRS[name]]


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
    name = canonical(name)
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
    cls = TORCHVISION_CLASSES[name]
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
        return FolderDataset.from_root(find_dataset(name, data_dir), split)
    canon = canonical(name)
    which = _resolve_split(split)
    try:
        folder = find_dataset(canon, data_dir)
    except DataError:
        if not download:
            raise
        folder = _download(canon)
    info = dataset_info(canon)
    if canon in CIFAR_FILES:
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
        img_stem, lab_stem = IDX_FILES[which]
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
        root = find_dataset(name, data_dir)
        classes = list_classes(root)
        return {"name": name, "channels": 3, "size": None, "num_classes": len(classes), "classes": classes,
                "mean": IMAGENET_MEAN, "std": IMAGENET_STD}  # fmt: skip
    return named_info(name)
