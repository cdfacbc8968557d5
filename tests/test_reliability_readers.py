"""Bounded, honest readers (issue 15): gzip bombs refused within a memory bound, multi-member
gzip read as zcat reads it, IDX headers that overflow, CIFAR labels and class names checked
before training."""

from __future__ import annotations

import gzip
import pickle
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from convzoo.data import load_dataset
from convzoo.data.readers import IDX_IMAGES_MAGIC, read_idx
from convzoo.errors import DataError

_BOMB_PROBE = r"""
import resource, struct, sys, zlib
from convzoo.data.readers import IDX_IMAGES_MAGIC, read_idx
from convzoo.errors import DataError
path = sys.argv[1]
c = zlib.compressobj(9, zlib.DEFLATED, 31)
with open(path, "wb") as fh:
    fh.write(c.compress(struct.pack(">IIII", 2051, 60000, 28, 28)))
    zeros = bytes(1 << 20)
    for _ in range(2048):  # 2 GiB of zeros behind a header announcing 47 MB
        fh.write(c.compress(zeros))
    fh.write(c.flush())
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    read_idx(path, IDX_IMAGES_MAGIC)
except DataError as err:
    print("refused:", err)
print("peak_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "before_kib", before)
"""


def test_a_gzip_bomb_is_refused_with_memory_near_the_real_data_size(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    proc = subprocess.run([sys.executable, "-c", _BOMB_PROBE, str(path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "refused:" in proc.stdout and "too long" in proc.stdout
    peak_kib = int(proc.stdout.split("peak_kib")[1].split()[0])
    before_kib = int(proc.stdout.split("before_kib")[1].split()[0])
    assert path.stat().st_size < 3 * 2**20  # a small file...
    # ...never inflated to its 2 GiB: the read grows the peak by about the announced 47 MB
    assert peak_kib - before_kib < 200 * 1024, proc.stdout


def _idx(n: int, body: bytes | None = None) -> bytes:
    body = body if body is not None else bytes(range(256)) * (n * 784 // 256) + bytes(n * 784 % 256)
    return struct.pack(">IIII", 2051, n, 28, 28) + body


def test_multi_member_gzip_reads_like_zcat(tmp_path):
    raw = _idx(3)
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:2000]) + gzip.compress(raw[2000:]))
    assert subprocess.run(["zcat", str(path)], capture_output=True).stdout == raw  # what zcat reads
    x = read_idx(path, IDX_IMAGES_MAGIC)
    assert x.shape == (3, 28, 28) and x.tobytes() == raw[16:]


@pytest.mark.parametrize("dims", [(2**32 - 1,) * 3, (2**31, 2**31, 4), (2**16, 2**16, 2**16)])
def test_idx_dimensions_that_overflow_are_one_message(tmp_path, dims):
    path = tmp_path / "x"
    path.write_bytes(struct.pack(">IIII", 2051, *dims) + bytes(100))
    with pytest.raises(DataError, match="announces") as info:
        read_idx(path, IDX_IMAGES_MAGIC)
    assert len(str(info.value)) < 300


def _cifar(folder: Path, labels, names=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    n = len(labels) if hasattr(labels, "__len__") else 4
    for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / f, "wb") as fh:
            pickle.dump({b"data": np.zeros((n, 3072), np.uint8), b"labels": labels}, fh, protocol=2)
    if names is not None:
        with open(folder / "batches.meta", "wb") as fh:
            pickle.dump({b"label_names": names}, fh, protocol=2)
    return folder


@pytest.mark.parametrize(
    "labels, expected",
    [(["a", "b", "c", "d"], "label 0 is 'a'"), ([None, 1, 2, 3], "label 0 is None"),
     ([0, 1, 2**70, 3], "label 1180591620717411303424 out of range"), ([0, 2.7, 1, 1], "label 1 is 2.7"),
     (np.array([0.0, 2.7, 1, 1]), "array of float64"), ([0, 1, -1, 2], "label -1 out of range"),
     ("0123", "is a str")],
)  # fmt: skip
def test_bad_cifar_labels_are_one_message(tmp_path, labels, expected):
    root = _cifar(tmp_path / "c", labels)
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", "train", str(root))
    assert expected in str(info.value) and "data_batch_1" in str(info.value)


def test_a_meta_file_with_the_wrong_number_of_names_is_refused(tmp_path):
    root = _cifar(tmp_path / "c", [0, 7, 1, 2], names=[b"a", b"b", b"c"])
    with pytest.raises(DataError, match="names 3 classes \\(expected 10\\)"):
        load_dataset("cifar10", "train", str(root))


def test_good_cifar_still_loads(tmp_path):
    root = _cifar(tmp_path / "c", np.array([0, 9, 1, 2], dtype=np.int64), names=[str(i).encode() for i in range(10)])
    ds = load_dataset("cifar10", "train", str(root))
    assert len(ds) == 20 and ds.labels.tolist()[:4] == [0, 9, 1, 2]


def test_an_empty_data_dir_is_an_error_not_a_fall_back(tmp_path, monkeypatch):
    from convzoo.data import find_dataset

    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("CONVZOO_DATA", str(tmp_path / "elsewhere"))  # where a fall-back could find it
    write_fake = __import__("test_train").write_fake_fashion_mnist
    write_fake(tmp_path / "elsewhere" / "fashion-mnist", n_train=8, n_test=8)
    assert find_dataset("fashion-mnist") == tmp_path / "elsewhere" / "fashion-mnist"
    for bad in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(DataError, match="--data-dir") as info:
            find_dataset("fashion-mnist", str(bad))
        assert str(bad) in str(info.value)
    monkeypatch.setenv("CONVZOO_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="add --download to the command"):
        find_dataset("cifar10")
