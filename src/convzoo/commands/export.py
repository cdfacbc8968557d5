"""Export a model or a trained run to ONNX or to a torch.export program, and check it.

MODEL_OR_RUN is a registered model name (freshly initialised, or with shipped weights via
--weights TAG) or a run folder / checkpoint file (its trained weights). The exported file is
run on the same random batch as the PyTorch model (onnxruntime for ONNX, the loaded program
for pt2), at batch 2 and, with --dynamic-batch, at batches 1 and 3 too; the command prints
the largest absolute error and exits with status 2 when it is above --atol times the scale
of the output (its largest absolute value). Without --atol (1e-4), a network so deep that
float32 itself is less exact than that (resnet1202) passes within 4 times PyTorch's own
float32 error against float64 on the same batch. ONNX needs the export extra
(pip install 'convzoo[export]'); the file's metadata carries the model name, the convzoo
version, the input size and, for trained weights, the normalisation and the class names.
Examples:

  convzoo export resnet20 --dynamic-batch
  convzoo export resnet20 --weights fashion-mnist --out resnet20.onnx
  convzoo export runs/demo --format pt2 --json
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("target", metavar="MODEL_OR_RUN", help="a registered model name, a run folder or a checkpoint file")
    p.add_argument("--format", default="onnx", choices=("onnx", "pt2"), help="onnx or pt2 (torch.export; default: onnx)")
    p.add_argument("--weights", metavar="TAG", help="shipped weights of a registered model, e.g. fashion-mnist")
    p.add_argument("--input", metavar="CxHxW",
                   help="input size: CxHxW, HxW or N (default: the run's, or the model's default input)")
    p.add_argument("--dynamic-batch", action="store_true", help="a batch dimension of any size (checked at 1, 2 and 3)")
    p.add_argument("--out", metavar="FILE", help="output file (default: MODEL.onnx or MODEL.pt2 here)")
    p.add_argument("--atol", type=float, default=None, metavar="X",
                   help="largest error allowed, relative to the output's scale (default: 1e-4, or 4x PyTorch's "
                        "own float32 error against float64 where that is larger; a given --atol is exact)")  # fmt: skip
    p.add_argument("--exporter", default="auto", choices=("auto", "torchscript", "dynamo"),
                   help="ONNX exporter: auto (TorchScript-based, dynamo-based where it fails; default), or one of them")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _looks_like_path(text: str) -> bool:
    import os

    return os.sep in text or "/" in text or text.endswith((".pt", ".pth")) or os.path.exists(text)


def _with_channels(text: str | None, channels: int) -> tuple[int, int, int] | None:
    """`--input` as (C, H, W), C from the model where the text gives HxW or N; None without it."""
    from ..cli_args import parse_input_size

    return None if text is None else parse_input_size(text, channels)


def _run_metadata(ckpt: dict[str, Any], input_size: tuple[int, int, int]) -> dict[str, Any]:
    """What a run's checkpoint says about its inputs: data set, classes, normalisation."""
    meta: dict[str, Any] = {"run_step": ckpt.get("step")}
    config = ckpt.get("config") or {}
    data = ckpt.get("data") or config.get("data")
    if data:
        meta["dataset"] = data
        try:
            from ..data import make_augment

            aug = make_augment(data, input_size[-1], recipe="none", train=False, channels=input_size[0])
            meta["mean"], meta["std"] = list(aug.mean), list(aug.std)
            meta["preprocessing"] = "x / 255, then (x - mean) / std per channel"
        except Exception:  # a data set this convzoo does not know: leave the statistics out
            pass
    if ckpt.get("classes"):
        meta["classes"] = list(ckpt["classes"])
    return meta


def _weights_metadata(model: Any, name: str, tag: str) -> dict[str, Any]:
    """The shipped weights' metadata (model, tag, dataset, classes, input_size, mean, std)."""
    import convzoo

    info = None
    for attr in ("weights_meta", "weights_metadata", "pretrained_cfg"):
        info = getattr(model, attr, None)
        if isinstance(info, dict):
            break
    if not isinstance(info, dict) and hasattr(convzoo, "list_weights"):
        for entry in convzoo.list_weights(name):
            entry = entry if isinstance(entry, dict) else getattr(entry, "__dict__", {})
            if entry.get("model") == name and entry.get("tag") == tag:
                info = entry
                break
    meta: dict[str, Any] = {"weights": tag}
    if isinstance(info, dict):
        for key in ("dataset", "classes", "input_size", "mean", "std"):
            if info.get(key) is not None:
                meta[key] = list(info[key]) if isinstance(info[key], tuple) else info[key]
        meta["preprocessing"] = "x / 255, then (x - mean) / std per channel"
    return meta


def run(args: argparse.Namespace) -> int:
    import sys

    import convzoo

    from ..errors import ConfigError, UnknownModelError
    from ..export import export_model

    if args.atol is not None and not args.atol > 0:
        raise ConfigError(f"--atol must be positive, got {args.atol}")
    size = None
    if args.input is not None:
        from ..cli_args import input_size_parts

        parts = input_size_parts(args.input)  # HxW or N: C is the model's, known below
        size = parts if parts[0] is not None else None
    metadata: dict[str, Any] = {}
    if _looks_like_path(args.target):
        import os

        if not os.path.exists(args.target):
            raise ConfigError(f"no run folder or checkpoint at {args.target!r}")
        if args.weights:
            raise ConfigError("--weights applies to a registered model name; a run exports its own weights")
        from ..train.checkpoint import load_checkpoint

        model, ckpt = load_checkpoint(args.target)
        name = ckpt["model_name"]
        in_ch = int(ckpt.get("in_channels") or getattr(model, "in_channels", 3))
        side = int(ckpt.get("input_size") or 0) or convzoo.model_info(name).default_input[-1]
        size = size or _with_channels(args.input, in_ch) or (in_ch, side, side)
        metadata.update(_run_metadata(ckpt, size))
    else:
        name = args.target
        try:
            info = convzoo.model_info(name)
        except UnknownModelError as err:
            raise UnknownModelError(f"{err} (MODEL_OR_RUN is a model name, a run folder or a checkpoint file)") from None
        if args.weights:
            model = convzoo.create_model(name, weights=args.weights)
            metadata.update(_weights_metadata(model, name, args.weights))
            if args.input is None and metadata.get("input_size"):
                size = tuple(int(v) for v in metadata["input_size"])
        else:
            model = convzoo.create_model(name)
        in_ch = int(getattr(model, "in_channels", info.default_input[0]))
        size = size or _with_channels(args.input, in_ch)
        if size is None:
            size = (in_ch, *info.default_input[1:])
    out = args.out or f"{name}.{args.format}"
    result = export_model(model, out, format=args.format, input_size=size, dynamic_batch=args.dynamic_batch,
                          atol=args.atol, metadata=metadata, exporter=args.exporter)  # fmt: skip
    report = {"model": name, "target": args.target, **result.to_dict()}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        how = {"torchscript": "TorchScript-based ONNX exporter", "dynamo": "dynamo-based ONNX exporter",
               "torch.export": "torch.export"}[result.exporter]  # fmt: skip
        print(f"{name}: wrote {out} ({result.size_bytes / 1e6:.1f} MB, {how}"
              + (f", opset {result.opset}" if result.opset else "") + f", input {'x'.join(map(str, size))}"
              + (", dynamic batch" if args.dynamic_batch else "") + ")")  # fmt: skip
        if result.fallback_reason:
            print(f"  the TorchScript-based exporter failed ({result.fallback_reason}); used the dynamo-based one")
        for c in result.checks:
            floor = (f"; PyTorch's own float32 error {c.float32_error:.3g} against float64"
                     if c.float32_error is not None else "")  # fmt: skip
            print(f"  batch {c.batch}: max abs error {c.max_abs_error:.3g} (output scale {c.scale:.3g}, "
                  f"allowed {c.tolerance:.3g}{floor}) {'ok' if c.ok else 'FAILED'}")  # fmt: skip
    if not result.ok:
        worst = max(result.checks, key=lambda c: c.max_abs_error / max(c.tolerance, 1e-300))
        print(f"convzoo export: error: the exported model differs from PyTorch: max abs error "
              f"{worst.max_abs_error:.3g} at batch {worst.batch}, above --atol {args.atol or 1e-4:g} x output scale "
              f"{worst.scale:.3g} = {worst.tolerance:.3g}"
              + (f" and above 4 x PyTorch's own float32 error ({worst.float32_error:.3g})"
                 if worst.float32_error is not None else ""), file=sys.stderr)  # fmt: skip
        return 2
    return 0
