"""Training throughput: the convzoo trainer against the loop a PyTorch user would write.

In one run, on the same machine, for LeNet-5 and ResNet-20 on Fashion-MNIST (resized from
28 to 32, one channel, 10 classes), this trains each model for a fixed number of epochs
twice:

- idiomatic: torchvision's `FashionMNIST` data set (read from the IDX files) + `DataLoader`
  (batch 128, shuffle, `Resize(32)` + `ToTensor` + `Normalize`), the same convzoo model,
  SGD with momentum, fp32, the usual `for x, y in loader:` loop; run with 0 and with 2
  DataLoader workers (the tutorials' choice), the faster being the baseline of the ratio;
- convzoo: `convzoo.train.train` with the device-resident loader, bf16 autocast and
  channels-last (same model, batch, optimizer, learning rate, weight decay, no augmentation).

It reports training images/s (data loading included, test evaluation excluded), their
ratio, and the test accuracy each reached after the same epochs (so a speed-up that costs
accuracy shows). `--ablation` adds the convzoo trainer in fp32 (no channels-last).

  python benchmarks/train_throughput.py                       # the full comparison
  python benchmarks/train_throughput.py --quick               # a smoke check (small subset)
  python benchmarks/train_throughput.py --json out.json
  python benchmarks/train_throughput.py --models resnet20 --repeats 3   # medians of 3 runs
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

DEFAULT_EPOCHS = {"lenet5": 3, "resnet20": 1}
MEAN, STD = (0.2860,), (0.3530,)  # Fashion-MNIST training statistics (convzoo.data.dataset_info)
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def torchvision_root(src: Path, dst: Path) -> Path:
    """Lay the IDX files out as torchvision's FashionMNIST expects (root/FashionMNIST/raw/,
    uncompressed: torchvision 0.29 checks for the uncompressed names), without the network."""
    raw = dst / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if (src / name).is_file():
            target = raw / name
            if not target.exists():
                target.symlink_to((src / name).resolve())
        elif (src / f"{name}.gz").is_file():
            with gzip.open(src / f"{name}.gz", "rb") as fin, open(raw / name, "wb") as fout:
                shutil.copyfileobj(fin, fout)
        else:
            sys.exit(f"error: {src} has no {name}(.gz); give --data-dir (apt-get install -y dataset-fashion-mnist)")
    return dst


def idiomatic(model_name: str, root: Path, epochs: int, args: argparse.Namespace, workers: int) -> dict[str, Any]:
    """The tutorial loop: torchvision data set + DataLoader + fp32 SGD with momentum."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    from convzoo import create_model

    tf = transforms.Compose([transforms.Resize(32), transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    train_set = datasets.FashionMNIST(str(root), train=True, download=False, transform=tf)
    test_set = datasets.FashionMNIST(str(root), train=False, download=False, transform=tf)
    if args.subset:
        train_set, test_set = Subset(train_set, range(args.subset)), Subset(test_set, range(args.subset))
    torch.manual_seed(args.seed)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, num_workers=workers,
                              drop_last=True, persistent_workers=workers > 0)  # fmt: skip
    test_loader = DataLoader(test_set, batch_size=512, num_workers=workers)
    model = create_model(model_name, num_classes=10, in_channels=1)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    seconds, images = 0.0, 0
    for _ in range(epochs):
        model.train()
        t0 = time.perf_counter()
        for x, y in train_loader:
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            images += x.shape[0]
        seconds += time.perf_counter() - t0
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in test_loader:
            correct += int((model(x).argmax(1) == y).sum())
            total += y.shape[0]
    return {"images_per_second": images / seconds, "train_seconds": seconds, "test_top1": 100.0 * correct / total}


def convzoo_trainer(model_name: str, data_dir: Path, epochs: int, args: argparse.Namespace, *, fast: bool,
                    out: Path) -> dict[str, Any]:  # fmt: skip
    """`convzoo.train.train` with the same protocol; fast = bf16 autocast + channels-last."""
    from convzoo.train import TrainConfig, train

    cfg = TrainConfig(
        model=model_name, data="fashion-mnist", data_dir=str(data_dir), epochs=epochs, batch_size=args.batch_size,
        lr=args.lr, momentum=0.9, weight_decay=args.weight_decay, schedule="constant", augment="none",
        amp="bf16" if fast else "none", channels_last=fast, subset=args.subset, seed=args.seed,
        out=str(out / f"{model_name}-{'fast' if fast else 'fp32'}"), overwrite=True, log_every=10_000,
    )  # fmt: skip
    run = train(cfg, progress=False)
    s = json.loads((run / "summary.json").read_text())
    return {"images_per_second": s["images_per_second"], "train_seconds": s["train_seconds"],
            "test_top1": s["test_top1"]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST IDX files")
    p.add_argument("--models", nargs="+", default=["lenet5", "resnet20"])
    p.add_argument("--epochs", type=int, help="epochs per model (default: lenet5 3, resnet20 1)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                   help="idiomatic DataLoader workers to try; the fastest is the baseline (default: 0 2)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--subset", type=int, help="first N train and test images only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=1,
                   help="run every variant N times, alternating the order; report the median (default: 1)")
    p.add_argument("--ablation", action="store_true", help="also the convzoo trainer in fp32 without channels-last")
    p.add_argument("--quick", action="store_true", help="smoke check: 2048 images, 1 epoch")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.subset, args.epochs = args.subset or 2048, args.epochs or 1
    if args.threads:
        torch.set_num_threads(args.threads)
    data_dir = Path(args.data_dir)
    rows = []
    with tempfile.TemporaryDirectory(prefix="convzoo-bench-") as tmp:
        root = torchvision_root(data_dir, Path(tmp) / "tv")
        for name in args.models:
            epochs = args.epochs or DEFAULT_EPOCHS.get(name, 1)
            variants = [(f"idiomatic (fp32, {w} workers)", lambda w=w: idiomatic(name, root, epochs, args, w))
                        for w in args.workers]  # fmt: skip
            variants.append(("convzoo (bf16 + channels-last)",
                             lambda: convzoo_trainer(name, data_dir, epochs, args, fast=True, out=Path(tmp))))  # fmt: skip
            if args.ablation:
                variants.append(("convzoo (fp32)",
                                 lambda: convzoo_trainer(name, data_dir, epochs, args, fast=False, out=Path(tmp))))  # fmt: skip
            runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in variants}
            for round_ in range(args.repeats):
                # alternate the order between rounds so that drift of the machine's speed
                # (other tenants, thermal state) does not favour one variant
                order = variants if round_ % 2 == 0 else variants[::-1]
                for label, fn in order:
                    r = fn()
                    runs[label].append(r)
                    print(f"{name:9s} {label:32s} {r['images_per_second']:9,.0f} img/s  "
                          f"test top-1 {r['test_top1']:.2f}% after {epochs} epoch(s)", flush=True)  # fmt: skip
            mine = []
            for label, _ in variants:
                speeds = sorted(r["images_per_second"] for r in runs[label])
                r = dict(runs[label][0])
                r.update(model=name, variant=label, epochs=epochs, images_per_second=statistics.median(speeds),
                         runs_images_per_second=[x["images_per_second"] for x in runs[label]])  # fmt: skip
                mine.append(r)
            # the baseline is the faster idiomatic loop, so the ratio is not flattered by a bad choice of workers
            base = max(r["images_per_second"] for r in mine if r["variant"].startswith("idiomatic"))
            for r in mine:
                r["speedup"] = r["images_per_second"] / base
            rows.extend(mine)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "batch_size": args.batch_size,
        "subset": args.subset,
        "repeats": args.repeats,
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
    }
    print(f"\n{meta['date']}, {meta['cpu_count']} cores, {meta['torch_threads']} torch threads, torch {meta['torch']}")
    print(f"{'model':9s} {'variant':32s} {'images/s':>9s} {'ratio':>6s} {'test top-1':>10s}  (ratio: to the faster idiomatic)")
    for r in rows:
        print(f"{r['model']:9s} {r['variant']:32s} {r['images_per_second']:9,.0f} {r['speedup']:6.2f} "
              f"{r['test_top1']:9.2f}%")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
