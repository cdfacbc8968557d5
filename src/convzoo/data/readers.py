"""Readers for the real on-disk formats: IDX (MNIST, Fashion-MNIST) and CIFAR python batches.

Every reader checks what it reads and raises `DataError` naming the file and what was wrong
(bad magic number, wrong dimensions, wrong length, a forbidden object in a pickle), so a
damaged download never turns into a silent wrong tensor or a traceback.
"""

from __future__ import annotations

import io
import pickle
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

#: IDX magic numbers: two zero bytes, the element type (0x08 = unsigned byte), the number of
#: dimensions (LeCun's format description, yann.lecun.com/exdb/mnist).
IDX_IMAGES_MAGIC = 2051  # 0x00000803: ubyte, 3 dims (N, rows, cols)
IDX_LABELS_MAGIC = 2049  # 0x00000801: ubyte, 1 dim (N)


def read_bytes(path: str | Path) -> bytes:
    """The bytes of `path`, gunzipped when the file is gzip-compressed (by its magic, not its name)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from err
    if raw[:2] == b"\x1f\x8b":
        try:
            # zlib with wbits=31 reads the gzip container and is a little faster than gzip.decompress
            d = zlib.decompressobj(31)
            out = d.decompress(raw)
            if not d.eof:
                raise DataError(f"{path}: truncated gzip file (the compressed stream ends early)")
            return out
        except zlib.error as err:
            raise DataError(f"{path}: corrupt gzip file ({err})") from err
    return raw


def read_idx(path: str | Path, magic: int, *, item_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read one IDX file (gzip or raw) whose header must carry `magic`.

    Checks the magic number, that the dimensions are positive (and equal `item_shape` when
    given), and that the file holds exactly the bytes the header announces.
    Returns a uint8 array of shape (N, *dims).
    """
    path = Path(path)
    data = read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: file too short for an IDX header ({len(data)} bytes)")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        kind = "images" if magic == IDX_IMAGES_MAGIC else "labels"
        raise DataError(f"{path}: bad magic number {found} (expected {magic} for IDX {kind})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes, expected at least {header})")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if any(d <= 0 for d in dims):
        raise DataError(f"{path}: bad dimensions {dims} in the IDX header")
    if item_shape is not None and dims[1:] != item_shape:
        raise DataError(f"{path}: wrong dimensions {dims[1:]} per item (expected {item_shape})")
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "too long"
        raise DataError(
            f"{path}: {what}: wrong length {len(data)} bytes (the header {dims} announces {expected})"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_idx_pair(images: Path, labels: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) and labels (N,) of one split; the counts must agree, labels in range."""
    x = read_idx(images, IDX_IMAGES_MAGIC)
    y = read_idx(labels, IDX_LABELS_MAGIC)
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{images} holds {x.shape[0]} images but {labels} holds {y.shape[0]} labels")
    if y.size and int(y.max()) >= num_classes:
        raise DataError(f"{labels}: label {int(y.max())} out of range (expected 0..{num_classes - 1})")
    return x, y


# -- CIFAR python batches ----------------------------------------------------------------

#: The only globals a CIFAR batch may reference: numpy's array reconstruction. The files were
#: written by Python 2's cPickle; Python 3 and numpy 2 pickles use the renamed modules.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol-2 pickles from Python 3 store bytes
}


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    # only the text-to-bytes codecs pickle itself uses; no codec lookup by arbitrary name
    if encoding.replace("_", "-").lower() not in ("latin1", "latin-1", "iso-8859-1", "utf-8", "utf8"):
        raise pickle.UnpicklingError(f"codec {encoding!r} not allowed")
    return text.encode(encoding, errors)


def _numpy_global(module: str, name: str) -> Any:
    if (module, name) in {("numpy", "ndarray"), ("numpy", "dtype")}:
        return getattr(np, name)
    if module == "_codecs":
        return _latin1_encode
    core = getattr(np, "_core", None)  # numpy >= 2 renamed numpy.core (the old name warns)
    if core is None:
        core = np.core
    sub = "multiarray" if module.endswith("multiarray") else "numeric"
    return getattr(getattr(core, sub), name)


class _SafeUnpickler(pickle.Unpickler):
    """Unpickles only plain containers, strings, numbers and numpy arrays: no code runs."""

    def __init__(self, file: io.BytesIO, path: Path) -> None:
        super().__init__(file, encoding="latin1")  # Python 2 str -> latin1 keeps array bytes intact
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return _numpy_global(module, name)
        raise DataError(
            f"{self.path}: refusing to load: the pickle references {module}.{name} "
            "(a CIFAR batch holds only numpy arrays and lists)"
        )


def read_pickle_dict(path: str | Path) -> dict[str, Any]:
    """Load a CIFAR batch file with the restricted unpickler; keys are returned as str."""
    path = Path(path)
    data = read_bytes(path)
    try:
        obj = _SafeUnpickler(io.BytesIO(data), path).load()
    except DataError:
        raise
    except Exception as err:  # truncated or garbled pickles raise many kinds of errors
        raise DataError(f"{path}: not a readable CIFAR batch ({type(err).__name__}: {err})") from err
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict, found {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def read_cifar_batch(path: str | Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of one CIFAR batch file."""
    path = Path(path)
    d = read_pickle_dict(path)
    if "data" not in d or label_key not in d:
        raise DataError(f"{path}: missing key {'data' if 'data' not in d else label_key!r} in the CIFAR batch")
    x = d["data"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
        shape = getattr(x, "shape", None)
        raise DataError(f"{path}: wrong dimensions of 'data' {shape} (expected N x 3072 uint8)")
    y = np.asarray(d[label_key], dtype=np.int64)
    if y.shape != (x.shape[0],):
        raise DataError(f"{path}: {x.shape[0]} images but {y.shape} labels")
    if y.size and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise DataError(f"{path}: label out of range (expected 0..{num_classes - 1})")
    # rows are 1024 red, 1024 green, 1024 blue values, each plane row-major (CIFAR's readme)
    return x.reshape(-1, 3, 32, 32), y


def read_cifar_names(path: Path, key: str) -> list[str] | None:
    """Class names from a CIFAR meta file (`label_names` / `fine_label_names`), None if absent."""
    if not path.exists():
        return None
    d = read_pickle_dict(path)
    names = d.get(key)
    if not isinstance(names, list):
        return None
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]
