"""Readers for the real on-disk formats: IDX (MNIST, Fashion-MNIST) and CIFAR python batches.

Every reader checks what it reads and raises `DataError` naming the file and what was wrong
(bad magic number, wrong dimensions, wrong length, a forbidden object in a pickle), so a
damaged download never turns into a silent wrong tensor or a traceback.
"""

from __future__ import annotations

import io
import math
import os
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


#: Largest decompressed size `read_bytes` accepts without a bound from the caller (CIFAR-100's
#: training batch, the largest file a reader here takes, is 155 MB).
DEFAULT_LIMIT = 512 * 2**20
_CHUNK = 1 << 20


def _open_error(path: Path, err: OSError) -> DataError:
    return DataError(f"cannot read {path}: {err.strerror or err}")


class _Inflater:
    """Streams a gzip file (all its members, as zcat reads them) with a bound on the output."""

    def __init__(self, path: Path, fh: Any) -> None:
        self.path, self.fh = path, fh
        self.d = zlib.decompressobj(31)
        self.pending = b""  # compressed bytes not yet fed
        self.finished = False

    def read(self, limit: int) -> bytes:
        """Up to `limit` decompressed bytes (fewer only at the end of the data)."""
        out = bytearray()
        while len(out) < limit and not self.finished:
            if self.d.unconsumed_tail:
                chunk = self.d.unconsumed_tail
            else:
                chunk = self.pending or self.fh.read(_CHUNK)
                self.pending = b""
                if not chunk:
                    if not self.d.eof:
                        raise DataError(f"{self.path}: truncated gzip file (the compressed stream ends early)")
                    self.finished = True
                    break
            try:
                out += self.d.decompress(chunk, limit - len(out))
            except zlib.error as err:
                raise DataError(f"{self.path}: corrupt gzip file ({err})") from None
            if self.d.eof:
                rest = self.d.unused_data
                if not rest.strip(b"\x00"):  # end of the file (zero padding is allowed, as gzip does)
                    rest = self.fh.read(_CHUNK)
                    if not rest.strip(b"\x00"):
                        rest = b""
                if rest:  # another member follows: a multi-member gzip file
                    self.d = zlib.decompressobj(31)
                    self.pending = rest
                else:
                    self.finished = True
        return bytes(out)


def read_bytes(path: str | Path, *, limit: int = DEFAULT_LIMIT) -> bytes:
    """The bytes of `path`, gunzipped when the file is gzip-compressed (by its magic, not its name).

    Decompression streams with a bound: more than `limit` bytes raises `DataError` at once, so
    a small "gzip bomb" never inflates in memory. Multi-member gzip files (`cat a.gz b.gz`)
    read whole, as `zcat` reads them.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            if fh.read(2) != b"\x1f\x8b":
                fh.seek(0)
                size = os.fstat(fh.fileno()).st_size
                if size > limit:
                    raise DataError(f"{path}: {size:,} bytes, more than the {limit:,} this reader accepts")
                return fh.read()
            fh.seek(0)
            inflater = _Inflater(path, fh)
            out = inflater.read(limit + 1)
    except OSError as err:
        raise _open_error(path, err) from err
    if len(out) > limit:
        raise DataError(f"{path}: decompresses to more than {limit:,} bytes, more than this reader accepts")
    return out


def _idx_bytes(path: Path, magic: int) -> tuple[tuple[int, ...], bytes]:
    """(dims, item bytes) of an IDX file; the header is read and checked before the data, and
    the data is inflated with its announced size as the bound."""
    kind = "images" if magic == IDX_IMAGES_MAGIC else "labels"
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    try:
        with open(path, "rb") as fh:
            gz = fh.read(2) == b"\x1f\x8b"
            fh.seek(0)
            source: Any = _Inflater(path, fh) if gz else fh
            head = source.read(header)
            if len(head) < 4:
                raise DataError(f"{path}: file too short for an IDX header ({len(head)} bytes)")
            found = int.from_bytes(head[:4], "big")
            if found != magic:
                raise DataError(f"{path}: bad magic number {found} (expected {magic} for IDX {kind})")
            if len(head) < header:
                raise DataError(f"{path}: truncated IDX header ({len(head)} bytes, expected at least {header})")
            dims = tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
            if any(d <= 0 for d in dims):
                raise DataError(f"{path}: bad dimensions {dims} in the IDX header")
            expected = math.prod(dims)  # Python ints: no overflow, however large the header's numbers
            if expected > DEFAULT_LIMIT * 8:
                raise DataError(f"{path}: the header {dims} announces {expected:,} bytes, far more than any IDX data set")
            body = source.read(expected + 1)  # one byte more tells "too long"
            if not gz and len(body) > expected:
                body += fh.read()  # (only to report the true length)
    except OSError as err:
        raise _open_error(path, err) from err
    if len(body) != expected:
        what = "truncated" if len(body) < expected else "too long"
        size = f"{header + len(body)} bytes" if len(body) <= expected else f"more than {header + expected} bytes"
        raise DataError(f"{path}: {what}: wrong length {size} (the header {dims} announces {header + expected})")
    return dims, body


def read_idx(path: str | Path, magic: int, *, item_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read one IDX file (gzip or raw) whose header must carry `magic`.

    Checks the magic number, that the dimensions are positive (and equal `item_shape` when
    given), and that the file holds exactly the bytes the header announces; the header is
    checked before the data is inflated, and never more than the announced bytes are.
    Returns a uint8 array of shape (N, *dims).
    """
    path = Path(path)
    dims, body = _idx_bytes(path, magic)
    if item_shape is not None and dims[1:] != item_shape:
        raise DataError(f"{path}: wrong dimensions {dims[1:]} per item (expected {item_shape})")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


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
    y = _labels(d[label_key], path, label_key, num_classes)
    if y.shape != (x.shape[0],):
        raise DataError(f"{path}: {x.shape[0]} images but {y.shape[0]} labels")
    # rows are 1024 red, 1024 green, 1024 blue values, each plane row-major (CIFAR's readme)
    return x.reshape(-1, 3, 32, 32), y


def _labels(raw: Any, path: Path, key: str, num_classes: int) -> np.ndarray:
    """A CIFAR batch's labels as int64, checked: a list or 1-D array of whole numbers in range."""
    expected = f"whole numbers 0..{num_classes - 1}"
    if isinstance(raw, np.ndarray):
        if raw.ndim != 1 or raw.dtype.kind not in "iu":
            raise DataError(f"{path}: {key!r} is an array of {raw.dtype} with shape {raw.shape} (expected {expected})")
        values = raw
    elif isinstance(raw, (list, tuple)):
        for i, v in enumerate(raw):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise DataError(f"{path}: label {i} is {str(repr(v))[:40]} (expected {expected})")
        values = raw
    else:
        raise DataError(f"{path}: {key!r} is a {type(raw).__name__} (expected a list of {expected})")
    if len(values):
        ints = [int(v) for v in values] if isinstance(values, (list, tuple)) else [int(values.min()), int(values.max())]
        lo, hi = min(ints), max(ints)  # Python ints: a huge label is reported, not overflowed
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            raise DataError(f"{path}: label {bad} out of range (expected {expected})")
    return np.asarray(values, dtype=np.int64)


def read_cifar_names(path: Path, key: str, expected: int | None = None) -> list[str] | None:
    """Class names from a CIFAR meta file (`label_names` / `fine_label_names`), None if absent."""
    if not path.exists():
        return None
    d = read_pickle_dict(path)
    names = d.get(key)
    if not isinstance(names, list):
        return None
    out = [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]
    if expected is not None and len(out) != expected:
        raise DataError(f"{path}: {key!r} names {len(out)} classes (expected {expected})")
    return out
