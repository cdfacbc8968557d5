"""Export a model to ONNX or to a `torch.export` program, and check the export against PyTorch.

`export_model(model, path, format="onnx" | "pt2", ...)` writes the file and, unless told
not to, runs it (onnxruntime for ONNX, the loaded `ExportedProgram` for pt2) on the same
random batch as the PyTorch model: batch 2, and with `dynamic_batch` also batches 1 and 3.
The check passes when the largest absolute difference is at most `atol` times the scale of
the PyTorch output (its largest absolute value); `ExportResult.ok` says so. With the default
tolerance (`atol=None`: 1e-4) a failed batch is measured once more against float32's own error
there (the model in float64): a network as deep as resnet1202 is only as exact as float32, and
passes when the export is within `FLOOR_FACTOR` times that. An explicit `atol` is kept as given.

ONNX goes through the exporter that works for the model: the TorchScript-based ("legacy")
exporter first, which is fast and gives compact graphs, then the dynamo-based one
(`torch.onnx.export(..., dynamo=True)`, which needs onnxscript) when the legacy one fails.
Two known legacy failures, both handled by the dynamo exporter:
- `adaptive_avg_pool2d` whose output size does not divide its input size (AlexNet's and
  VGG's 6x6 / 7x7 pools below their 224x224 input; torchvision's models fail the same way):
  ONNX has no adaptive pool, and the legacy exporter can only write one as an ordinary
  average pool with a fixed kernel, which exists only for integer ratios;
- `vgg_a_lrn` at every size: `layers.LRN` pools the squares along the channel axis of a
  5-d view, after which the legacy exporter no longer knows the map size, so the adaptive
  pool behind it cannot be written ("input size not accessible"). The dynamo exporter
  keeps the shapes.
The file's metadata (`metadata_props`) records the model name, the convzoo version, the
input size and whatever `metadata` is passed (normalisation, classes, weights tag).

onnx and onnxruntime (and onnxscript for the dynamo exporter) come with the `export`
extra: `pip install 'convzoo[export]'`. Nothing here is imported by `import convzoo`.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from .errors import ConvzooError

FORMATS = ("onnx", "pt2")
DEFAULT_ATOL = 1e-4


class ExportError(ConvzooError):
    """A model that cannot be exported, a missing exporter, or a bad export option."""


@dataclass
class ParityCheck:
    """One comparison of the exported model with PyTorch on the same random batch."""

    batch: int
    max_abs_error: float
    scale: float  # largest absolute value of the PyTorch output
    tolerance: float  # atol * scale, or FLOOR_FACTOR x PyTorch's own float32 error when that is larger
    ok: bool
    float32_error: float | None = None  # PyTorch float32 against float64, measured only when atol * scale failed


@dataclass
class ExportResult:
    """What `export_model` wrote and how the check went (`to_dict()` is what `--json` prints)."""

    path: str
    format: str
    exporter: str  # "torchscript" or "dynamo" (ONNX), "torch.export" (pt2)
    input_size: tuple[int, int, int]
    dynamic_batch: bool
    atol: float
    checks: list[ParityCheck] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    fallback_reason: str | None = None  # why the legacy ONNX exporter was not used
    opset: int | None = None
    size_bytes: int = 0

    @property
    def checked(self) -> bool:
        return bool(self.checks)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def max_abs_error(self) -> float | None:
        return max((c.max_abs_error for c in self.checks), default=None)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["max_abs_error"] = self.max_abs_error
        d["ok"] = self.ok
        d["checked"] = self.checked
        return d


# -- helpers -----------------------------------------------------------------------------------


def _need(module: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExportError(
            f"{what} needs the Python package {module!r}, which is not installed; "
            "install the export extra: pip install 'convzoo[export]'"
        ) from None


def _sample(input_size: Sequence[int], batch: int, seed: int = 0) -> torch.Tensor:
    """A standard normal batch (the inputs a normalised model sees), the same for a seed."""
    g = torch.Generator().manual_seed(seed + batch)
    return torch.randn((batch, *input_size), generator=g)


def _reference(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        y = model(x)
    if isinstance(y, (tuple, list)):  # a model left in training mode with extra heads
        y = y[0]
    return y.detach().float().cpu()


def _compare(batch: int, got: Any, ref: torch.Tensor, atol: float) -> ParityCheck:
    got_t = torch.as_tensor(got).float()
    if tuple(got_t.shape) != tuple(ref.shape):
        raise ExportError(f"the exported model returned shape {tuple(got_t.shape)} at batch {batch}, "
                          f"PyTorch {tuple(ref.shape)}")  # fmt: skip
    if not bool(torch.isfinite(ref).all()):
        raise ExportError(f"PyTorch's own output at batch {batch} is not finite (inf or NaN), so there is nothing to "
                          "check the export against; give the model finite outputs first (trained weights, or "
                          "BatchNorm statistics from real batches)")  # fmt: skip
    err = float((got_t - ref).abs().max()) if ref.numel() else 0.0
    scale = float(ref.abs().max()) if ref.numel() else 0.0
    tol = atol * scale
    return ParityCheck(batch, err, scale, tol, err <= tol)


#: Two float32 computations each off the exact result by e differ by up to 2e; 4e leaves room
#: for other algorithms (onnxruntime's convolutions) without hiding a real export error.
FLOOR_FACTOR = 4.0


def _with_noise_floor(check: ParityCheck, model: nn.Module, x: torch.Tensor, ref: torch.Tensor) -> ParityCheck:
    """A failed check measured again against float32's own error on this batch: PyTorch in
    float32 against the same model in float64. A very deep network (resnet1202, 1,202 layers)
    is only as exact as its arithmetic, and no export can agree with PyTorch more closely than
    PyTorch agrees with exact arithmetic."""
    if check.ok or not bool(torch.isfinite(ref).all()):
        return check
    import copy

    try:
        exact = copy.deepcopy(model).double()
    except Exception:  # noqa: BLE001 - a model that cannot be copied keeps the plain tolerance
        return check
    y = _reference(exact, x.double()).double()
    own = float((ref.double() - y).abs().max())
    tol = max(check.tolerance, FLOOR_FACTOR * own)
    return ParityCheck(check.batch, check.max_abs_error, check.scale, tol, check.max_abs_error <= tol, own)


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    line = text.splitlines()[0]
    return f"{type(err).__name__}: {line[:300]}"


def _check_input(input_size: Sequence[int]) -> tuple[int, int, int]:
    try:
        size = tuple(int(v) for v in input_size)
    except (TypeError, ValueError):
        size = ()
    if len(size) != 3 or min(size) < 1:
        raise ExportError(f"bad input size {input_size!r}: expected (C, H, W), three positive integers")
    return size  # type: ignore[return-value]


def _param_bytes(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters()) + sum(
        b.numel() * b.element_size() for b in model.buffers()
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence stdout, Python's and the C++ side's (the legacy exporter prints its graph
    from C++ when it fails), by pointing file descriptor 1 at /dev/null for a while."""
    import io
    import sys

    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no real descriptor 1 (an embedded interpreter): Python's side only
        with contextlib.redirect_stdout(io.StringIO()):
            yield
        return
    try:
        with open(os.devnull, "w") as sink:
            os.dup2(sink.fileno(), 1)
            with contextlib.redirect_stdout(io.StringIO()):
                yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _supports_kwarg(fn: Any, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False


# -- ONNX --------------------------------------------------------------------------------------


def _onnx_legacy(model: nn.Module, x: torch.Tensor, path: str, dynamic_batch: bool, opset: int | None) -> None:
    kwargs: dict[str, Any] = {"input_names": ["input"], "output_names": ["output"], "do_constant_folding": True}
    if opset is not None:
        kwargs["opset_version"] = opset
    if dynamic_batch:
        kwargs["dynamic_axes"] = {"input": {0: "batch"}, "output": {0: "batch"}}
    if _supports_kwarg(torch.onnx.export, "dynamo"):
        kwargs["dynamo"] = False
    # the legacy exporter prints the whole TorchScript graph when it fails, and
    # deprecation notes when it works: keep the command's output to its report
    with warnings.catch_warnings(), _quiet():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), path, **kwargs)


def _onnx_dynamo(model: nn.Module, x: torch.Tensor, path: str, dynamic_batch: bool, opset: int | None) -> None:
    if not _supports_kwarg(torch.onnx.export, "dynamo"):
        raise ExportError(f"torch {torch.__version__} has no dynamo-based ONNX exporter (torch >= 2.5 has)")
    _need("onnxscript", "the dynamo-based ONNX exporter")
    kwargs: dict[str, Any] = {"input_names": ["input"], "output_names": ["output"], "dynamo": True}
    if opset is not None:
        kwargs["opset_version"] = opset
    if dynamic_batch:
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1)},)
    if _supports_kwarg(torch.onnx.export, "external_data"):
        # one self-contained file while the weights fit ONNX's 2 GB protobuf limit
        kwargs["external_data"] = _param_bytes(model) > 1_800_000_000
    if _supports_kwarg(torch.onnx.export, "verbose"):
        kwargs["verbose"] = False
    # the dynamo exporter prints its progress
    with warnings.catch_warnings(), _quiet():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), path, **kwargs)


def _write_metadata(path: str, metadata: dict[str, str]) -> int | None:
    """Set the model's metadata_props (keeping external weights where they are); the opset."""
    onnx = _need("onnx", "ONNX export")
    proto = onnx.load(path, load_external_data=False)
    keep = [p for p in proto.metadata_props if p.key not in metadata]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    opset = next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    onnx.save(proto, path)
    return opset


def read_onnx_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata_props of an ONNX file as a dict (values are strings; lists are JSON)."""
    onnx = _need("onnx", "reading ONNX metadata")
    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def check_onnx(path: str, model: nn.Module, input_size: Sequence[int], batches: Sequence[int],
               atol: float = DEFAULT_ATOL, *, noise_floor: bool = False) -> list[ParityCheck]:  # fmt: skip
    """Run the ONNX file in onnxruntime (CPU) and PyTorch on the same random batches."""
    ort = _need("onnxruntime", "the ONNX parity check")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    checks = []
    for b in batches:
        x = _sample(input_size, b)
        ref = _reference(model, x.to(_device(model)))
        got = session.run(None, {name: x.numpy()})[0]
        check = _compare(b, got, ref, atol)
        checks.append(_with_noise_floor(check, model, x.to(_device(model)), ref) if noise_floor else check)
    return checks


# -- torch.export ------------------------------------------------------------------------------


def _program(model: nn.Module, x: torch.Tensor, dynamic_batch: bool) -> Any:
    if not hasattr(torch, "export") or not hasattr(torch.export, "export"):
        raise ExportError(f"torch {torch.__version__} has no torch.export (torch >= 2.2 has)")
    kwargs: dict[str, Any] = {}
    if dynamic_batch:
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1)},)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.export.export(model, (x,), **kwargs)


def check_program(path: str, model: nn.Module, input_size: Sequence[int], batches: Sequence[int],
                  atol: float = DEFAULT_ATOL, *, noise_floor: bool = False) -> list[ParityCheck]:  # fmt: skip
    """Load a saved `torch.export` program and compare it with PyTorch on the same random batches."""
    program = torch.export.load(path)
    module = program.module()
    dev = _device(model)
    checks = []
    for b in batches:
        x = _sample(input_size, b).to(dev)
        ref = _reference(model, x)
        with torch.no_grad():
            got = module(x)
        if isinstance(got, (tuple, list)):
            got = got[0]
        check = _compare(b, got.detach().cpu(), ref, atol)
        checks.append(_with_noise_floor(check, model, x, ref) if noise_floor else check)
    return checks


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


# -- the entry point ---------------------------------------------------------------------------


def model_metadata(model: nn.Module, input_size: Sequence[int], extra: dict[str, Any] | None = None) -> dict[str, str]:
    """The metadata an exported file carries: model name, convzoo version, input size, plus
    `extra` (lists and dicts as JSON, everything else as str)."""
    from . import __version__

    meta: dict[str, Any] = {
        "model": getattr(model, "zoo_name", None) or type(model).__name__,
        "convzoo_version": __version__,
        "input_size": list(input_size),
        "num_classes": getattr(model, "num_classes", None),
    }
    meta.update(extra or {})
    return {k: (json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v)) for k, v in meta.items() if v is not None}


def export_model(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    format: str = "onnx",
    input_size: Sequence[int],
    dynamic_batch: bool = False,
    atol: float | None = None,
    metadata: dict[str, Any] | None = None,
    check: bool = True,
    exporter: str = "auto",
    opset: int | None = None,
) -> ExportResult:
    """Export `model` (put in eval mode) for inputs of `input_size` (C, H, W) and check it.

    format: "onnx" or "pt2" (`torch.export.save`). exporter (ONNX only): "auto" (legacy,
    then dynamo where the legacy one fails), "torchscript" or "dynamo". The parity check
    runs at batch 2, and at 1 and 3 too with `dynamic_batch`; see `ExportResult.ok`.
    Raises `ExportError` when no exporter can write the model.
    """
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; expected one of {', '.join(FORMATS)}")
    if exporter not in ("auto", "torchscript", "dynamo"):
        raise ExportError(f"unknown ONNX exporter {exporter!r}; expected auto, torchscript or dynamo")
    noise_floor = atol is None
    atol = DEFAULT_ATOL if atol is None else atol
    if not atol > 0:
        raise ExportError(f"atol must be positive, got {atol}")
    size = _check_input(input_size)
    in_ch = getattr(model, "in_channels", None)
    if in_ch is not None and size[0] != in_ch:
        raise ExportError(f"{getattr(model, 'zoo_name', type(model).__name__)} takes {in_ch} input channels, "
                          f"not {size[0]} (input {'x'.join(map(str, size))})")  # fmt: skip
    path = str(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    x = _sample(size, 2).to(_device(model))
    try:
        # a clear InputSizeError for a size the network cannot take, before any exporter runs
        _reference(model, x)
        meta = model_metadata(model, size, metadata)
        fallback = None
        opset_used = None
        if format == "onnx":
            _need("onnx", "ONNX export")
            if exporter in ("auto", "torchscript"):
                try:
                    _onnx_legacy(model, x, path, dynamic_batch, opset)
                    used = "torchscript"
                except OSError:  # the file system refused the write (full, read-only): no exporter does better
                    raise
                except Exception as err:  # the legacy exporter's failures are many kinds
                    if exporter == "torchscript":
                        raise ExportError(f"the TorchScript-based ONNX exporter failed: {_first_line(err)}") from err
                    fallback = _first_line(err)
            if exporter == "dynamo" or fallback is not None:
                try:
                    _onnx_dynamo(model, x, path, dynamic_batch, opset)
                    used = "dynamo"
                except (ExportError, OSError):
                    raise
                except Exception as err:
                    before = f"the TorchScript-based exporter failed ({fallback}); " if fallback else ""
                    raise ExportError(f"cannot export to ONNX: {before}the dynamo-based exporter failed: "
                                      f"{_first_line(err)}") from err  # fmt: skip
            opset_used = _write_metadata(path, meta)
        else:
            try:
                program = _program(model, x, dynamic_batch)
            except Exception as err:
                raise ExportError(f"torch.export cannot export this model: {_first_line(err)}") from err
            # saved to memory, then written: a full or read-only disk is then an OSError naming the
            # file (torch's own zip writer reports it as a RuntimeError without the errno)
            buffer = io.BytesIO()
            torch.export.save(program, buffer, extra_files={"convzoo.json": json.dumps(meta)})
            Path(path).write_bytes(buffer.getvalue())
            used = "torch.export"
        result = ExportResult(path=path, format=format, exporter=used, input_size=size, dynamic_batch=dynamic_batch,
                              atol=atol, metadata=meta, fallback_reason=fallback, opset=opset_used,
                              size_bytes=os.path.getsize(path))  # fmt: skip
        if check:
            batches = (2, 1, 3) if dynamic_batch else (2,)
            if format == "onnx":
                result.checks = check_onnx(path, model, size, batches, atol, noise_floor=noise_floor)
            else:
                result.checks = check_program(path, model, size, batches, atol, noise_floor=noise_floor)
        return result
    finally:
        model.train(was_training)
