"""Evaluate a checkpoint: top-1/top-5 accuracy and error on a data set's test split.

CHECKPOINT is a checkpoint file or a run folder (its checkpoints/last.pt). The data set
defaults to the one the run trained on. Protocols: a single centre crop (default),
10 crops (corners, centre and their mirrors; AlexNet/GoogLeNet), multi-scale testing over
the test scales Q (--scales), VGG's dense evaluation (--dense: fully connected layers as
convolutions, class scores averaged over the map). Examples:

  convzoo eval runs/demo
  convzoo eval runs/vgg/checkpoints/best.pt --data folder:~/imagenette --dense --scales 224 256 288
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint file or run folder")
    p.add_argument("--data", metavar="NAME", help="data set (default: the one the checkpoint was trained on)")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's files")
    p.add_argument("--download", action="store_true", help="download the data set with torchvision when it is found nowhere (needs the network)")
    p.add_argument("--split", default="test", choices=("test", "train"), help="split to evaluate (default: test)")
    p.add_argument("--crops", type=int, default=1, choices=(1, 10), help="1 centre crop or 10 crops (default: 1)")
    p.add_argument("--scales", type=int, nargs="+", metavar="Q", help="test scales (shorter side) to average over")
    p.add_argument("--dense", action="store_true", help="VGG's dense evaluation (FC layers as convolutions)")
    p.add_argument("--flip", action="store_true", help="also average the horizontally flipped image")
    p.add_argument("--batch-size", type=int, default=256, metavar="N", help="evaluation batch size (default: 256)")
    p.add_argument("--subset", type=int, metavar="N", help="evaluate only the first N images")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--amp", action="store_true", help="bf16 autocast")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights even when the run kept an EMA")
    p.add_argument("--confusion", action="store_true", help="include the confusion matrix (JSON) / print it")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr (the line naming the checkpoint included)")


def run(args: argparse.Namespace) -> int:
    from .. import data as zdata
    from ..errors import ConfigError
    from ..evaluate import evaluate
    from ..train.checkpoint import load_checkpoint
    from ..train.runtime import resolve_device

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be positive, got {args.batch_size}")
    if args.subset is not None and args.subset < 1:
        raise ConfigError(f"--subset must be positive, got {args.subset}")
    _set_threads(args.threads)
    device = resolve_device(args.device)
    model, ckpt = load_checkpoint(args.checkpoint, use_ema=not args.no_ema)
    config = ckpt.get("config") or {}
    name = args.data or ckpt.get("data") or config.get("data")
    if not name:
        raise ConfigError("the checkpoint does not say which data set it was trained on; pass --data NAME")
    data_dir = args.data_dir or (config.get("data_dir") if not args.data else None)
    input_size = int(ckpt.get("input_size") or 0) or None
    dataset = zdata.load_dataset(name, args.split, data_dir, download=args.download)
    if args.subset:
        if not hasattr(dataset, "subset"):
            raise ConfigError("--subset works with the array data sets, not folder:PATH")
        dataset = dataset.subset(args.subset)
    classes = ckpt.get("classes") or []
    data_classes = list(getattr(dataset, "classes", []) or [])
    if classes and data_classes and len(classes) != len(data_classes):
        raise ConfigError(
            f"the checkpoint predicts {len(classes)} classes but {name} has {len(data_classes)}; "
            "evaluate on the data set it was trained on"
        )
    in_channels = int(ckpt.get("in_channels") or getattr(model, "in_channels", 0) or 0) or None
    recipe = config.get("augment", "none") if name == (ckpt.get("data") or config.get("data")) else "none"
    augment = zdata.make_augment(name, input_size or 224, recipe=recipe, train=False, channels=in_channels)
    # the training augmentation: small images' 10-crop views come from its padded canvas
    train_augment = zdata.make_augment(name, input_size or 224, recipe=recipe, train=True, channels=in_channels)
    model.to(device)
    use_ema = bool(ckpt.get("ema")) and not args.no_ema
    where = _checkpoint_file(args.checkpoint)
    views = _views(args, model, dataset, input_size, augment, train_augment)
    progress = _Counter(model, len(dataset) * views, enabled=not args.quiet)
    progress.say(
        f"evaluating {where}: {ckpt['model_name']} at step {ckpt.get('step')} (epoch {ckpt.get('epoch')}), "
        f"{'EMA' if use_ema else 'raw'} weights, on {name} {args.split} ({len(dataset):,} images"
        f"{f' x {views} views' if views > 1 else ''})"
    )
    try:
        result = evaluate(
            model, dataset, batch_size=args.batch_size, input_size=input_size, crops=args.crops, scales=args.scales,
            dense=args.dense, flip=args.flip, device=device, amp=args.amp, augment=augment, confusion=args.confusion,
            train_augment=train_augment,
        )  # fmt: skip
    except BaseException:
        progress.close(ok=False)
        raise
    progress.close()
    result.update({"checkpoint": str(args.checkpoint), "checkpoint_file": where, "model": ckpt["model_name"],
                   "data": name, "split": args.split, "step": ckpt.get("step"), "epoch": ckpt.get("epoch"),
                   "ema": use_ema})  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    views = f"{result.get('views', 1)} view(s)"
    protocol = "dense" if args.dense else f"{args.crops} crop{'s' if args.crops > 1 else ''}"
    print(
        f"{ckpt['model_name']} on {name} ({args.split}, {result['count']:,} images, {protocol}, scales "
        f"{result.get('scales')}, {views}): top-1 {result['top1']:.2f}% (error {result['top1_error']:.2f}%), "
        f"top-5 {result['top5']:.2f}% (error {result['top5_error']:.2f}%), loss {result['loss']:.4f}"
    )
    if result.get("protocol"):
        print(f"  views: {result['protocol']}")
    if args.confusion and result.get("confusion"):
        from rich.console import Console
        from rich.table import Table

        names = classes or data_classes or [str(i) for i in range(len(result["confusion"]))]
        table = Table(title="confusion matrix (rows: true class, columns: predicted)")
        table.add_column("")
        for i in range(len(names)):
            table.add_column(str(i), justify="right")
        for i, row in enumerate(result["confusion"]):
            table.add_row(f"{i} {names[i]}", *[str(v) for v in row])
        Console().print(table)
    return 0


def _set_threads(threads: int | None) -> None:
    """--threads: torch.set_num_threads, bounded like `convzoo train --threads`."""
    if threads is None:
        return
    import os

    import torch

    from ..errors import ConfigError
    from ..train.config import MIN_THREAD_CAP

    cores = os.cpu_count() or 1
    if threads < 1:
        raise ConfigError(f"--threads must be a positive number, got {threads}")
    if threads > max(cores, MIN_THREAD_CAP):
        raise ConfigError(f"--threads {threads} is more than this machine's {cores} CPU cores")
    torch.set_num_threads(threads)


def _checkpoint_file(given: str) -> str:
    """The file a checkpoint argument names (a run folder: its last.pt), with the step file
    that last.pt is (a hard link to it)."""
    from pathlib import Path

    path = Path(given)
    if path.is_dir():
        path = next((path / n for n in ("last.pt", "checkpoints/last.pt") if (path / n).exists()), path)
    if path.name in ("last.pt", "best.pt") and path.is_file():
        for other in sorted(path.parent.glob("step-*.pt")):
            try:
                if other.samefile(path):
                    return f"{path} (= {other.name})"
            except OSError:
                continue
    return str(path)


def _views(args: argparse.Namespace, model, dataset, input_size, augment, train_augment) -> int:  # noqa: ANN001
    """Views per image of the protocol (the progress total), from the evaluator's own plan run
    on one image; the options alone when that cannot be done here (the evaluator then says why)."""
    images = getattr(dataset, "images", None)
    if images is not None and len(images):
        from ..errors import ConvzooError
        from ..evaluate.protocols import plan_protocol

        try:
            plan = plan_protocol(model, dataset, input_size=input_size, crops=args.crops, scales=args.scales,
                                 dense=args.dense, flip=args.flip, augment=augment, train_augment=train_augment)  # fmt: skip
            return max(1, sum(1 for _ in plan.views(images[:1])))
        except (ConvzooError, RuntimeError, ValueError):
            pass
    return _expected_views(args)


def _expected_views(args: argparse.Namespace) -> int:
    """Views per image the options ask for (the evaluator reports the real ones)."""
    per_scale = 10 if args.crops == 10 else 1
    if args.dense:
        per_scale = (per_scale if args.crops == 10 else 0) + (2 if args.flip else 1)
    elif args.flip and args.crops == 1:
        per_scale = 2
    return per_scale * max(1, len(args.scales or []))


class _Counter:
    """Progress of an evaluation: images through the model's forward (a pre-hook), on stderr:
    a bar on a terminal, a plain line every few seconds (and at the end) anywhere else."""

    def __init__(self, model, total: int, *, enabled: bool, interval: float = 5.0) -> None:  # noqa: ANN001
        import time

        self.enabled, self.total, self.done, self.interval = enabled, max(1, int(total)), 0, interval
        self.handle = self.bar = self.task = None
        self.t0 = self.last = time.perf_counter()
        if not enabled:
            return
        from ..console import make_console

        self.console = make_console(stderr=True)
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("[bold]eval"), BarColumn(), MofNCompleteColumn(), TextColumn("images"),
                                TimeElapsedColumn(), console=self.console)  # fmt: skip
            self.bar.start()
            self.task = self.bar.add_task("eval", total=self.total)
        self.handle = model.register_forward_pre_hook(self._seen)

    def _seen(self, _module, inputs) -> None:  # noqa: ANN001
        x = inputs[0] if inputs else None
        self.done = min(self.total, self.done + int(getattr(x, "shape", [1])[0]))
        self._show()

    def _show(self, final: bool = False) -> None:
        import time

        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)
            return
        now = time.perf_counter()
        if final or now - self.last >= self.interval:
            self.last = now
            self.say(f"eval {self.done:,}/{self.total:,} images ({100.0 * self.done / self.total:.0f}%) "
                     f"{now - self.t0:,.1f} s")  # fmt: skip

    def say(self, line: str) -> None:
        if self.enabled:
            self.console.print(line, highlight=False, markup=False)

    def close(self, ok: bool = True) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None
            if ok:
                self.done = self.total
                self._show(final=True)
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
