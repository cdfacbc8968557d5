"""Readers and discovery on small files written in the real formats, corrupt ones included."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from convzoo.data import ArrayDataset, dataset_info, find_dataset, load_dataset, make_folder_loader
from convzoo.data import datasets as ds_mod
from convzoo.data.folder import FolderDataset
from convzoo.errors import ConvzooError, DataError

# -- writers for the real formats ------------------------------------------------------------


def idx_bytes(magic: int, arr: np.ndarray) -> bytes:
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.astype(np.uint8).tobytes()


def write_idx_split(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        f"{prefix}-images-idx3-ubyte": idx_bytes(2051, images),
        f"{prefix}-labels-idx1-ubyte": idx_bytes(2049, labels),
    }
    for name, data in files.items():
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


def make_idx(folder: Path, n: int = 12, gz: bool = True, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, n, dtype=np.uint8)
    write_idx_split(folder, "train", x, y, gz)
    write_idx_split(folder, "t10k", x[: n // 2], y[: n // 2], gz)
    return x, y


def write_cifar(folder: Path, kind: str = "cifar10", n: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    """CIFAR batches as Python 2 wrote them: protocol 2, bytes keys, a list of labels."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {}
    if kind == "cifar10":
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        key, k = b"labels", 10
        meta = ("batches.meta", {b"label_names": [b"plane", b"car", b"bird", b"cat", b"deer", b"dog", b"frog",
                                                  b"horse", b"ship", b"truck"]})  # fmt: skip
    else:
        names = ["train", "test"]
        key, k = b"fine_labels", 100
        meta = ("meta", {b"fine_label_names": [f"c{i}".encode() for i in range(100)]})
    for name in names:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, k, n).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": b"x", b"data": data, key: labels}, f, protocol=2)
        out[name] = data
    with open(folder / meta[0], "wb") as f:
        pickle.dump(meta[1], f, protocol=2)
    return out


@pytest.fixture
def no_system(tmp_path, monkeypatch):
    """Discovery isolated from the machine: no system folder, no cache, no $CONVZOO_DATA."""
    monkeypatch.setattr(ds_mod, "SYSTEM_DIR", tmp_path / "system")
    monkeypatch.setenv("CONVZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CONVZOO_DATA", raising=False)
    return tmp_path


# -- IDX -------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_idx_roundtrip(no_system, gz):
    x, y = make_idx(no_system / "d" / "fashion-mnist", gz=gz)
    ds = load_dataset("fashion-mnist", "train", str(no_system / "d"))
    assert isinstance(ds, ArrayDataset)
    assert ds.images.shape == (12, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert ds.labels.dtype == torch.int64
    assert torch.equal(ds.images[:, 0], torch.from_numpy(x))
    assert torch.equal(ds.labels, torch.from_numpy(y.astype(np.int64)))
    assert ds.classes[0] == "T-shirt/top" and len(ds.classes) == 10
    test = load_dataset("fashion-mnist", "test", str(no_system / "d"))
    assert len(test) == 6 and test.split == "test"
    assert len(ds.subset(5)) == 5 and ds.subset(5).name == "fashion-mnist"


def _corrupt(folder: Path, name: str, data: bytes, gz: bool = False) -> None:
    target = folder / (name + ".gz")
    for f in (folder / name, target):
        if f.exists():
            f.unlink()
    if gz:
        target.write_bytes(gzip.compress(data))
    else:
        (folder / name).write_bytes(data)


def test_idx_bad_magic(no_system):
    folder = no_system / "fashion-mnist"
    x, y = make_idx(folder)
    _corrupt(folder, "train-images-idx3-ubyte", idx_bytes(2049, x), gz=True)  # labels' magic on images
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: bad magic number 2049 \(expected 2051"):
        load_dataset("fashion-mnist", "train", str(folder))


def test_idx_truncated_and_too_long(no_system):
    folder = no_system / "fashion-mnist"
    x, y = make_idx(folder)
    good = idx_bytes(2051, x)
    _corrupt(folder, "train-images-idx3-ubyte", good[:-100])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: truncated: wrong length"):
        load_dataset("fashion-mnist", "train", str(folder))
    _corrupt(folder, "train-images-idx3-ubyte", good + b"\0")
    with pytest.raises(DataError, match="too long"):
        load_dataset("fashion-mnist", "train", str(folder))
    # a gzip stream cut short
    _corrupt(folder, "train-images-idx3-ubyte", gzip.compress(good)[:-20])
    (folder / "train-images-idx3-ubyte").rename(folder / "train-images-idx3-ubyte.gz")
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: (truncated gzip|corrupt gzip)"):
        load_dataset("fashion-mnist", "train", str(folder))


def test_idx_wrong_dims_and_mismatch(no_system):
    folder = no_system / "mnist"
    x, y = make_idx(folder)
    _corrupt(folder, "train-images-idx3-ubyte", idx_bytes(2051, x[:, :, :27]), gz=True)
    with pytest.raises(DataError, match=r"wrong dimensions \(28, 27\)"):
        load_dataset("mnist", "train", str(folder))
    _corrupt(folder, "train-images-idx3-ubyte", idx_bytes(2051, x[:5]), gz=True)
    with pytest.raises(DataError, match="5 images but .* 12 labels"):
        load_dataset("mnist", "train", str(folder))
    _corrupt(folder, "train-images-idx3-ubyte", idx_bytes(2051, x), gz=True)
    bad = y.copy()
    bad[0] = 10
    _corrupt(folder, "train-labels-idx1-ubyte", idx_bytes(2049, bad), gz=True)
    with pytest.raises(DataError, match="label 10 out of range"):
        load_dataset("mnist", "train", str(folder))


def test_short_header(no_system):
    folder = no_system / "fashion-mnist"
    make_idx(folder)
    _corrupt(folder, "t10k-labels-idx1-ubyte", b"\x00\x00", gz=True)
    with pytest.raises(DataError, match="too short"):
        load_dataset("fashion-mnist", "test", str(folder))


# -- CIFAR -----------------------------------------------------------------------------------


def test_cifar10_batches(no_system):
    folder = no_system / "cifar-10-batches-py"  # torchvision's layout under a data dir
    raw = write_cifar(folder)
    train = load_dataset("cifar10", "train", str(no_system))
    assert train.images.shape == (30, 3, 32, 32)
    # rows are 1024 R, 1024 G, 1024 B values, each plane row-major
    first = raw["data_batch_1"][0]
    assert torch.equal(train.images[0, 1, 0], torch.from_numpy(first[1024:1056]))
    assert train.classes[1] == "car"
    test = load_dataset("cifar10", "test", str(no_system))
    assert len(test) == 6


def test_cifar100_fine_labels(no_system):
    folder = no_system / "cifar100"
    write_cifar(folder, "cifar100", n=4)
    ds = load_dataset("cifar100", "train", str(no_system))
    assert len(ds) == 4 and len(ds.classes) == 100 and ds.classes[3] == "c3"
    assert int(ds.labels.max()) < 100


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/convzoo-pwned",))


def test_cifar_refuses_code(no_system):
    folder = no_system / "cifar10"
    write_cifar(folder)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": _Evil(), b"labels": []}, f, protocol=2)
    with pytest.raises(DataError, match=r"test_batch: refusing to load: the pickle references (posix|os)\.system"):
        load_dataset("cifar10", "test", str(no_system))
    assert not os.path.exists("/tmp/convzoo-pwned")


def test_cifar_corrupt(no_system):
    folder = no_system / "cifar10"
    write_cifar(folder)
    data = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="test_batch: not a readable CIFAR batch"):
        load_dataset("cifar10", "test", str(no_system))
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f, protocol=2)
    with pytest.raises(DataError, match="wrong dimensions of 'data'"):
        load_dataset("cifar10", "test", str(no_system))


# -- discovery -------------------------------------------------------------------------------


def test_discovery_order(no_system, monkeypatch):
    a, b, sysdir = no_system / "a", no_system / "b", no_system / "system"
    make_idx(a / "fashion-mnist", n=4)
    make_idx(b, n=6)  # the files directly in $CONVZOO_DATA
    make_idx(sysdir / "fashion-mnist", n=8)
    monkeypatch.setenv("CONVZOO_DATA", str(b))
    assert find_dataset("fashion-mnist", str(a)) == a / "fashion-mnist"
    assert find_dataset("fashion-mnist") == b
    assert len(load_dataset("fashion-mnist")) == 6
    monkeypatch.delenv("CONVZOO_DATA")
    assert find_dataset("fashion-mnist") == sysdir / "fashion-mnist"
    assert len(load_dataset("fashion-mnist")) == 8


def test_missing_names_every_place(no_system):
    with pytest.raises(DataError, match="--data-dir .*nowhere.* does not exist"):
        find_dataset("fashion-mnist", str(no_system / "nowhere"))  # a named folder: no fall-back (issue 15)
    with pytest.raises(DataError) as err:
        find_dataset("fashion-mnist")
    msg = str(err.value)
    assert "data_dir (--data-dir) (not set)" in msg and "$CONVZOO_DATA (not set)" in msg
    assert str(no_system / "system" / "fashion-mnist") in msg and "cache" in msg
    assert "apt-get install -y dataset-fashion-mnist" in msg
    with pytest.raises(DataError, match="download=True"):
        load_dataset("cifar10", "train")
    with pytest.raises(DataError, match="unknown data set 'imagenet'"):
        load_dataset("imagenet")
    with pytest.raises(DataError, match="unknown split"):
        make_idx(no_system / "fashion-mnist", n=2)
        load_dataset("fashion-mnist", "holdout", str(no_system))


def test_dataset_info():
    info = dataset_info("cifar10")
    assert info["channels"] == 3 and info["size"] == 32 and info["num_classes"] == 10 and len(info["mean"]) == 3
    assert dataset_info("fashion-mnist")["mean"] == (0.2860,)
    assert dataset_info("cifar100")["num_classes"] == 100
    with pytest.raises(ConvzooError):
        dataset_info("nope")


def test_real_fashion_mnist(fashion_mnist_dir, monkeypatch):
    monkeypatch.delenv("CONVZOO_DATA", raising=False)
    ds = load_dataset("fashion-mnist", "test", fashion_mnist_dir)
    assert ds.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(ds.labels).tolist() == [1000] * 10  # the test split is balanced


# -- image folders ---------------------------------------------------------------------------


def _write_images(folder: Path, split: str | None, seed: int = 0) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 deprecates its codecs
        from torchvision.io import encode_jpeg, encode_png

        g = torch.Generator().manual_seed(seed)
        base = folder / split if split else folder
        for cls, n in (("cat", 3), ("dog", 2)):
            (base / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                h, w = 20 + i, 24
                if i % 2:
                    img = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
                    (base / cls / f"{i}.jpg").write_bytes(encode_jpeg(img).numpy().tobytes())
                else:  # a grey PNG: decoded to 3 channels
                    img = torch.randint(0, 256, (1, h, w), dtype=torch.uint8, generator=g)
                    (base / cls / f"{i}.png").write_bytes(encode_png(img).numpy().tobytes())


def test_image_folder_with_splits(tmp_path):
    _write_images(tmp_path / "imgs", "train")
    _write_images(tmp_path / "imgs", "val", seed=1)
    ds = load_dataset(f"folder:{tmp_path / 'imgs'}", "train")
    assert isinstance(ds, FolderDataset)
    assert ds.classes == ["cat", "dog"] and len(ds) == 5 and ds.split == "train"
    img, label = ds[0]
    assert img.dtype == torch.uint8 and img.shape[0] == 3 and label == 0
    test = load_dataset(f"folder:{tmp_path / 'imgs'}", "test")
    assert test.split == "val" and len(test) == 5
    assert dataset_info(f"folder:{tmp_path / 'imgs'}")["num_classes"] == 2
    loader = make_folder_loader(ds, 4, train=True, input_size=16, workers=0)
    batches = list(loader)
    assert [b[0].shape for b in batches] == [(4, 3, 16, 16), (1, 3, 16, 16)]
    assert batches[0][0].dtype == torch.float32
    arrays = ds.to_arrays(16)
    assert arrays.images.shape == (5, 3, 16, 16) and arrays.labels.tolist() == [0, 0, 0, 1, 1]


def test_image_folder_without_splits_and_errors(tmp_path):
    _write_images(tmp_path / "flat", None)
    ds = load_dataset(f"folder:{tmp_path / 'flat'}", "test")
    assert ds.split == "all" and len(ds) == 5
    (tmp_path / "flat" / "cat" / "broken.png").write_bytes(b"not a png at all")
    ds = load_dataset(f"folder:{tmp_path / 'flat'}")
    broken = [i for i, (p, _) in enumerate(ds.samples) if p.endswith("broken.png")][0]
    with pytest.raises(DataError, match="broken.png: cannot decode"):
        ds[broken]
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'missing'}")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no"):
        load_dataset(f"folder:{tmp_path / 'empty'}")
