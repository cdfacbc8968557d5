"""The GPU suite: training throughput of the big classic networks, and a Fashion-MNIST
time-to-accuracy run, on one GPU in under ten minutes; one table, one JSON file.

1. Training images/s (forward + backward + SGD step, synthetic 3x224x224 batches already on
   the GPU, 1000 classes: this measures the network, not a data pipeline) for resnet18,
   resnet50, vgg16 and densenet121 in three settings: fp32; bf16 autocast + channels-last;
   bf16 + channels-last + torch.compile. Peak memory is reported too.
2. Time to accuracy: ResNet-20 (CIFAR-style, 1 channel) on Fashion-MNIST through the
   convzoo trainer (device-resident data, batch augmentation on the GPU, bf16 +
   channels-last, one-cycle): the wall time at which the test top-1 first reaches the target.

  python benchmarks/gpu_suite.py --data-dir /usr/share/datasets/fashion-mnist
  python benchmarks/gpu_suite.py --quick          # smoke check, also on CPU (32x32 inputs, LeNet-5 on
                                                  # 1,024 images for the time-to-accuracy part, no compile)

A time budget (--budget, seconds) skips what would not fit and says so in the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

MODELS = {"resnet18": 256, "resnet50": 128, "vgg16": 128, "densenet121": 128}  # batch sizes
VARIANTS = ("fp32", "bf16+cl", "bf16+cl+compile")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(name: str, variant: str, *, batch: int, size: int, steps: int, warmup: int,
               device: torch.device) -> dict[str, Any]:  # fmt: skip
    """Training images/s of registry model `name` in `variant` on synthetic data."""
    from convzoo import create_model

    amp = variant.startswith("bf16")
    cl = "+cl" in variant
    torch.manual_seed(0)
    model = create_model(name, num_classes=1000).to(device)
    fmt = torch.channels_last if cl else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    run_model: nn.Module = torch.compile(model) if variant.endswith("compile") else model
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 1000, (batch,), device=device)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = run_model(x)
            loss = loss_fn(out[0] if isinstance(out, tuple) else out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    step()
    _sync(device)
    first = time.perf_counter() - t0  # includes compilation for the compiled variant
    for _ in range(max(0, warmup - 1)):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"images_per_second": batch * steps / seconds, "first_step_s": first, "peak_gib": peak,
            "batch": batch, "size": size}  # fmt: skip


def time_to_accuracy(data_dir: str, device: torch.device, *, quick: bool, target: float, out: Path) -> dict[str, Any]:
    """ResNet-20 (LeNet-5 with --quick) on Fashion-MNIST with the convzoo trainer."""
    from convzoo.train import TrainConfig, train

    if quick:
        cfg = TrainConfig(model="lenet5", data="fashion-mnist", data_dir=data_dir, epochs=1, batch_size=64,
                          lr=0.1, subset=1024, schedule="constant", augment="none", amp="bf16", channels_last=True,
                          device=str(device), out=str(out / "tta"), overwrite=True)  # fmt: skip
    else:
        cfg = TrainConfig(model="resnet20", data="fashion-mnist", data_dir=data_dir, epochs=8, batch_size=512,
                          lr=0.4, weight_decay=5e-4, nesterov=True, schedule="onecycle", label_smoothing=0.1,
                          augment="standard", amp="bf16", channels_last=True, no_decay_norm_bias=True,
                          device=str(device), eval_batch_size=2048, out=str(out / "tta"), overwrite=True)  # fmt: skip
    run = train(cfg, progress=False)
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in epochs if r["kind"] == "epoch"]
    reached = next((r for r in epochs if r["test_top1"] >= target), None)
    summary = json.loads((run / "summary.json").read_text())
    return {
        "model": cfg.model, "epochs": cfg.epochs, "target": target,
        "reached_at_epoch": reached["epoch"] if reached else None,
        "seconds_to_target": reached["wall_seconds"] if reached else None,
        "final_test_top1": summary["test_top1"], "wall_seconds": summary["wall_seconds"],
        "images_per_second": summary["images_per_second"],
        "per_epoch": [{"epoch": r["epoch"], "test_top1": r["test_top1"], "wall_seconds": r["wall_seconds"]}
                      for r in epochs],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST IDX files")
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation happens here)")
    p.add_argument("--target", type=float, default=92.0, help="test top-1 (%%) for time-to-accuracy")
    p.add_argument("--budget", type=float, default=540.0, help="seconds; later measurements are skipped past it")
    p.add_argument("--quick", action="store_true", help="smoke check: 32x32 inputs, batch 2, 1 step, no compile on CPU")
    p.add_argument("--no-tta", action="store_true", help="skip the time-to-accuracy run")
    p.add_argument("--json", default="gpu_suite.json", metavar="FILE", help="results file (default gpu_suite.json)")
    args = p.parse_args(argv)

    start = time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        # PyTorch's defaults otherwise: "fp32" convolutions may run in TF32 on cuDNN, as users get them
        torch.backends.cudnn.benchmark = True
    size, steps, warmup = (32, 1, 1) if args.quick else (224, args.steps, args.warmup)
    if args.quick and device.type == "cpu":
        torch.set_num_threads(1)  # a smoke check on a shared CPU: no thread oversubscription
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)",
        "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
        "quick": args.quick, "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
    }  # fmt: skip
    print(f"convzoo GPU suite on {meta['device']}, torch {meta['torch']}", flush=True)
    rows: list[dict[str, Any]] = []
    tta: dict[str, Any] | None = None
    tta_reserve = 0.0 if args.no_tta else (30.0 if args.quick else 120.0)
    for name in args.models:
        batch = 2 if args.quick else MODELS.get(name, 64)
        for variant in args.variants:
            row: dict[str, Any] = {"model": name, "variant": variant}
            if variant.endswith("compile") and (device.type != "cuda" and args.quick or not hasattr(torch, "compile")):
                row["skipped"] = "no compile on CPU smoke runs" if hasattr(torch, "compile") else "torch too old"
            elif time.perf_counter() - start > args.budget - tta_reserve:
                row["skipped"] = "time budget"
            else:
                try:
                    row.update(throughput(name, variant, batch=batch, size=size, steps=steps, warmup=warmup,
                                          device=device))  # fmt: skip
                    if device.type == "cuda":
                        torch.cuda.empty_cache()  # the model and its optimizer state are gone by now
                except torch.cuda.OutOfMemoryError:
                    row["skipped"] = f"out of memory at batch {batch}"
                    torch.cuda.empty_cache()
                except Exception as err:  # a compile failure must not lose the other numbers
                    row["skipped"] = f"{type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}"
            rows.append(row)
            shown = f"{row['images_per_second']:10,.0f} img/s" if "images_per_second" in row else row["skipped"]
            print(f"  {name:12s} {variant:16s} {shown}", flush=True)
    if not args.no_tta:
        with tempfile.TemporaryDirectory(prefix="convzoo-gpu-") as tmp:
            try:
                tta = time_to_accuracy(args.data_dir, device, quick=args.quick, target=args.target, out=Path(tmp))
            except Exception as err:  # e.g. data missing: report, keep the throughput table
                tta = {"error": f"{type(err).__name__}: {err}"}
    meta["total_seconds"] = time.perf_counter() - start

    # -- one table ---------------------------------------------------------------------------
    print(f"\n{meta['date']}  {meta['device']}  torch {meta['torch']}  ({meta['total_seconds']:.0f} s)")
    head = f"{'model':12s} " + " ".join(f"{v:>18s}" for v in args.variants) + f" {'best/fp32':>9s}"
    print(head)
    for name in args.models:
        cells, fp32, best = [], None, None
        for variant in args.variants:
            r = next(r for r in rows if r["model"] == name and r["variant"] == variant)
            ips = r.get("images_per_second")
            cells.append(f"{ips:13,.0f} img/s" if ips else f"{'skipped':>18s}")
            if ips:
                fp32 = ips if variant == "fp32" else fp32
                best = max(best or 0.0, ips)
        ratio = f"{best / fp32:8.2f}x" if fp32 and best else f"{'-':>9s}"
        print(f"{name:12s} " + " ".join(f"{c:>18s}" for c in cells) + f" {ratio}")
    if tta is not None:
        if "error" in tta:
            print(f"time to accuracy: {tta['error']}")
        elif tta["seconds_to_target"] is not None:
            print(f"time to accuracy: {tta['model']} on Fashion-MNIST reached {tta['target']:.1f}% test top-1 at epoch "
                  f"{tta['reached_at_epoch']} after {tta['seconds_to_target']:.1f} s (final {tta['final_test_top1']:.2f}%, "
                  f"{tta['images_per_second']:,.0f} training img/s)")  # fmt: skip
        else:
            print(f"time to accuracy: {tta['model']} did not reach {tta['target']:.1f}% in {tta['epochs']} epochs "
                  f"(final {tta['final_test_top1']:.2f}%, {tta['wall_seconds']:.1f} s)")  # fmt: skip
    Path(args.json).write_text(json.dumps({"meta": meta, "throughput": rows, "time_to_accuracy": tta}, indent=2) + "\n")
    print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
