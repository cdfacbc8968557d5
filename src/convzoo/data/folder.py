"""Image folders: one sub-folder per class, JPEG/PNG files, decoded by torchvision.

`folder:PATH` may hold `train/` and `test/` (or `val/`) split folders, each with the class
sub-folders; without them PATH itself holds the classes and serves every split
(`FolderDataset.split == "all"`: the caller should not call it a held-out test).
Large folders go through a `torch.utils.data.DataLoader` with worker processes
(`make_folder_loader`), since decoding JPEGs is the bottleneck there.

A file that cannot be decoded is one `DataError` naming it, whatever the number of workers:
a worker hands the failure back as data (`_Unreadable`) and the loader raises it in the
main process, so no worker traceback reaches the user. `verify_folder` decodes every file
once (in worker processes) and names the bad ones before a run starts (`--verify-data`).
torchvision is imported where an image is decoded or transformed, not with this module,
which the evaluator imports for every data set.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from ..errors import ConfigError, DataError
from .arrays import ArrayDataset
from .catalogue import IMAGE_EXTENSIONS, IMAGENET_MEAN, IMAGENET_STD
from .order import ShardSampler
_SPLIT_DIRS = {"train": ("train",), "test": ("test", "val"), "val": ("val", "test")}


def list_classes(root: Path) -> list[str]:
    """Class names of an image folder: its sub-folders, sorted (split folders looked through)."""
    root = Path(root)
    base = root / "train" if (root / "train").is_dir() else root
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"image folder {root} has no class sub-folders (expected {root}/<class>/<image>.png)")
    return classes


def decode_image_file(path: str | Path) -> torch.Tensor:
    """Decode a JPEG/PNG into a uint8 3 x H x W tensor (grey and alpha images become RGB).

    Uses torchvision's decoders (deprecated from torchvision 0.29 in favour of TorchCodec,
    hence the silenced warning); falls back to Pillow where they are gone.
    """
    try:
        from torchvision.io import ImageReadMode, decode_image, read_file
    except ImportError:  # pragma: no cover - a torchvision without image decoding
        return _decode_with_pillow(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
    except (RuntimeError, ValueError, OSError) as err:
        raise DataError(f"{path}: cannot decode the image ({_one_line(err)})") from err


def _one_line(err: BaseException) -> str:
    """The decoder's reason on one line, at most 200 characters."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _decode_with_pillow(path: str | Path) -> torch.Tensor:  # pragma: no cover - fallback
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except OSError as err:
        raise DataError(f"{path}: cannot decode the image ({_one_line(err)})") from err
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


class FolderDataset(Dataset):
    """A class-per-sub-folder image data set; items are (transform(uint8 3xHxW image), label)."""

    def __init__(
        self,
        samples: list[tuple[str, int]],
        classes: list[str],
        name: str,
        split: str,
        transform: Callable[[torch.Tensor], Any] | None = None,
    ) -> None:
        self.samples = samples
        self.classes = classes
        self.name = name
        self.split = split
        self.transform = transform

    @classmethod
    def from_root(cls, root: Path, split: str = "train") -> FolderDataset:
        """Scan `root` (with or without split folders) for the images of `split`."""
        root = Path(root)
        key = split.lower()
        if key not in _SPLIT_DIRS:
            raise DataError(f"unknown split {split!r}; expected 'train', 'test' or 'val'")
        has_splits = (root / "train").is_dir()
        folder, used = root, "all"
        if has_splits:
            found = [root / d for d in _SPLIT_DIRS[key] if (root / d).is_dir()]
            if not found:
                raise DataError(f"image folder {root} has train/ but no {' or '.join(_SPLIT_DIRS[key])}/ folder")
            folder, used = found[0], found[0].name
        classes = list_classes(root)
        samples: list[tuple[str, int]] = []
        for label, cname in enumerate(classes):
            cdir = folder / cname
            if not cdir.is_dir():
                continue  # a class absent from this split: allowed, it simply has no samples
            for f in sorted(cdir.rglob("*")):
                if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file():
                    samples.append((str(f), label))
        if not samples:
            raise DataError(f"image folder {folder} holds no {'/'.join(IMAGE_EXTENSIONS)} images in its class folders")
        return cls(samples, classes, f"folder:{root}", used)

    def with_transform(self, transform: Callable[[torch.Tensor], Any] | None) -> FolderDataset:
        """The same samples with another transform."""
        return FolderDataset(self.samples, self.classes, self.name, self.split, transform)

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([lab for _, lab in self.samples], dtype=torch.int64)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        path, label = self.samples[i]
        img = decode_image_file(path)
        return (self.transform(img) if self.transform is not None else img), label

    def to_arrays(self, size: int) -> ArrayDataset:
        """Decode everything, resized (shorter side) and centre-cropped to `size`, into an ArrayDataset.

        For small folders only: the result lives in memory as uint8 N x 3 x size x size.
        """
        from torchvision.transforms import v2  # torchvision: imported when a folder is decoded

        tf = v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size)])
        images = torch.stack([tf(decode_image_file(p)) for p, _ in self.samples])
        info = {"channels": 3, "size": size, "num_classes": len(self.classes), "mean": IMAGENET_MEAN,
                "std": IMAGENET_STD, "classes": list(self.classes)}  # fmt: skip
        return ArrayDataset(images, self.labels, list(self.classes), self.name, self.split, info)


def folder_transform(
    train: bool, input_size: int, recipe: str = "standard", mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None, resize: int | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:  # fmt: skip
    """torchvision v2 transforms on decoded uint8 images; returns float normalised 3 x S x S.

    Training: "standard" = random-resized crop + flip (the usual ImageNet recipe);
    "jitter" = VGG's scale jittering (shorter side S ~ U[Smin, 2 Smin], Smin = input*8/7,
    256 for 224), random crop, flip; "flip" = the evaluation transform and a flip; "none" = the evaluation transform. Evaluation: shorter
    side resized to `resize` (default input*8/7, 256 for 224) then a centre crop.
    """
    from torchvision.transforms import v2

    mean = tuple(mean or IMAGENET_MEAN)
    std = tuple(std or IMAGENET_STD)
    tail = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    q = resize or round(input_size * 8 / 7)
    evaluation = [v2.Resize(q, antialias=True), v2.CenterCrop(input_size)]
    if not train or recipe == "none":
        return v2.Compose(evaluation + tail)
    if recipe == "standard":
        return v2.Compose([v2.RandomResizedCrop(input_size, antialias=True), v2.RandomHorizontalFlip()] + tail)
    if recipe == "flip":
        return v2.Compose(evaluation + [v2.RandomHorizontalFlip()] + tail)
    if recipe == "jitter":
        smin = round(input_size * 8 / 7)
        return v2.Compose(
            [v2.RandomShortestSize(list(range(smin, 2 * smin + 1)), antialias=True), v2.RandomCrop(input_size),
             v2.RandomHorizontalFlip()] + tail  # fmt: skip
        )
    raise ConfigError(f"unknown augmentation recipe {recipe!r}; expected none, flip, standard or jitter")


class _Unreadable:
    """A sample that could not be decoded, carried back from a worker as data (a worker's
    exception would come back wrapped in its traceback)."""

    def __init__(self, message: str) -> None:
        self.message = message


class _Guarded(Dataset):
    """`dataset[i]`, or an `_Unreadable` naming the file when it cannot be decoded."""

    def __init__(self, dataset: FolderDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Any:
        try:
            return self.dataset[i]
        except DataError as err:
            return _Unreadable(str(err))


def _collate(batch: list[Any]) -> Any:
    """torch's default collation, or the batch's first unreadable sample."""
    for item in batch:
        if isinstance(item, _Unreadable):
            return item
    return default_collate(batch)


def _failures(batch: list[Any]) -> list[str]:
    """The messages of a verification batch's unreadable samples (no pixels travel back)."""
    return [item.message for item in batch if isinstance(item, _Unreadable)]


class FolderLoader(DataLoader):
    """A DataLoader over a `FolderDataset` whose unreadable file is one `DataError` in the
    main process, naming the file, with or without worker processes."""

    hint = ""

    def __iter__(self) -> Iterator[Any]:
        for batch in super().__iter__():
            if isinstance(batch, _Unreadable):
                raise DataError(batch.message + self.hint)
            yield batch


def verify_folder(dataset: FolderDataset, workers: int = 0, batch_size: int = 64) -> int:
    """Decode every file of `dataset` once; return how many, or raise one `DataError`
    naming the unreadable files (the first five, and how many in all).

    The decoding runs in `workers` processes (0: in this one); only the failures come back.
    """
    guarded = _Guarded(dataset.with_transform(None))
    bad: list[str] = []
    if workers == 0:
        bad = _failures([guarded[i] for i in range(len(guarded))])
    else:
        loader = DataLoader(guarded, batch_size=batch_size, num_workers=workers, collate_fn=_failures)
        for messages in loader:
            bad.extend(messages)
    if bad:
        shown = "; ".join(bad[:5]) + ("; ..." if len(bad) > 5 else "")
        raise DataError(f"{len(bad)} of {len(guarded)} files of {dataset.name} ({dataset.split}) cannot be decoded: {shown}")
    return len(guarded)


def make_folder_loader(
    dataset: FolderDataset,
    batch_size: int,
    *,
    train: bool,
    input_size: int,
    workers: int = 2,
    recipe: str = "standard",
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = False,
    resize: int | None = None,
    pin_memory: bool = False,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> FolderLoader:
    """A DataLoader over an image folder: worker processes decode and transform each image.

    A file that cannot be decoded raises one `DataError` naming it (a training loader's
    message adds that `--verify-data` checks every file before training).

    Batches come from a `ShardSampler` (`loader.batch_sampler`): call
    `loader.batch_sampler.set_epoch(e)` each epoch; its `start` attribute skips batches for
    a mid-epoch resume. torchvision's random transforms draw from torch's RNG, which the
    DataLoader seeds per worker from `seed`.
    """
    tf = folder_transform(train, input_size, recipe, mean, std, resize)
    ds = _Guarded(dataset.with_transform(tf))
    sampler = ShardSampler(
        len(ds), batch_size, shuffle=train, seed=seed, rank=rank, world_size=world_size,
        drop_last=drop_last,
    )  # fmt: skip
    gen = torch.Generator().manual_seed(seed)
    loader = FolderLoader(
        ds, batch_sampler=sampler, num_workers=workers, pin_memory=pin_memory, generator=gen,
        persistent_workers=workers > 0, collate_fn=_collate,
    )  # fmt: skip
    if train:
        loader.hint = " (`convzoo train --verify-data` checks every file before training starts)"
    return loader
