"""What a run writes: config.json, metrics.jsonl, summary.json (docs/internals.md), the
progress bar, and TensorBoard events when `tensorboard` is installed; `RunningSums`, the
running loss and accuracy sums behind the metric lines.

Only rank 0 writes; the other ranks get a writer whose methods do nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from . import distributed as D


def hardware_info(device: torch.device) -> dict[str, Any]:
    """The machine a run used: CPU, cores, threads, GPU name and memory."""
    info: dict[str, Any] = {
        "device": str(device),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    if device.type == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = props.name
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["gpu_count"] = torch.cuda.device_count()
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    """Versions of Python, torch, torchvision, numpy and convzoo."""
    from .. import __version__

    out = {"python": platform.python_version(), "torch": torch.__version__, "convzoo": __version__}
    for name in ("torchvision", "numpy"):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # pragma: no cover - optional
            pass
    if torch.version.cuda:
        out["cuda"] = torch.version.cuda
    return out


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON via a temporary file and rename, so readers never see half a file."""
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2, default=_jsonable)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    if hasattr(value, "item"):
        return value.item()
    return str(value)


class RunWriter:
    """Files of a run folder. `enabled=False` (ranks other than 0) makes every call a no-op."""

    def __init__(self, run_dir: Path, *, enabled: bool = True, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._tb = None
        if enabled:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if tensorboard and importlib.util.find_spec("tensorboard") is not None:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self._tb = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))
                except Exception:  # a broken tensorboard install must not stop training
                    self._tb = None

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    def write_config(self, config: dict[str, Any]) -> None:
        """config.json: the full TrainConfig."""
        if self.enabled:
            write_json_atomic(self.run_dir / "config.json", config)

    def truncate_after(self, step: int) -> None:
        """On resume: drop metric lines written after the checkpoint's `step` (they will be redone)."""
        if not self.enabled or not self.metrics_path.exists():
            return
        kept = []
        with open(self.metrics_path) as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill
                    continue
                if int(rec.get("step", 0)) <= step:
                    kept.append(json.dumps(rec))
        tmp = self.metrics_path.with_suffix(".jsonl.tmp")
        with open(tmp, "w") as fh:
            fh.write("".join(k + "\n" for k in kept))
        os.replace(tmp, self.metrics_path)

    def reset_metrics(self) -> None:
        """A fresh run: an empty metrics.jsonl, no summary."""
        if self.enabled:
            self.metrics_path.write_text("")
            (self.run_dir / "summary.json").unlink(missing_ok=True)

    def log(self, record: dict[str, Any]) -> None:
        """Append one record to metrics.jsonl (and TensorBoard)."""
        if not self.enabled:
            return
        with open(self.metrics_path, "a") as fh:
            fh.write(json.dumps(record, default=_jsonable) + "\n")
        if self._tb is not None:
            step = int(record.get("step", 0))
            prefix = "train" if record.get("kind") == "step" else "epoch"
            for key, value in record.items():
                if key not in ("kind", "epoch", "step", "time") and isinstance(value, (int, float)):
                    self._tb.add_scalar(f"{prefix}/{key}", value, step)

    def write_summary(self, summary: dict[str, Any]) -> None:
        """summary.json."""
        if self.enabled:
            write_json_atomic(self.run_dir / "summary.json", summary)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


class Progress:
    """A rich progress bar over the steps: loss, accuracy, images/s, ETA. Silent when disabled.

    When stderr is not a terminal (a pipe, a log file) a bar would be redrawn into the file;
    there it prints a plain line instead every `interval` seconds (and at the last step).
    """

    def __init__(self, total_steps: int, *, enabled: bool = True, start: int = 0, interval: float = 10.0,
                 console: Any = None) -> None:  # fmt: skip
        self.enabled = enabled
        self._progress = None
        self._task = None
        self._console = None
        self._plain = False
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        from ..console import make_console

        self._console = console if console is not None else make_console(stderr=True)
        if not self._console.is_terminal:
            self._plain = True
            self._total, self._start, self._interval = total_steps, start, interval
            self._t0 = self._last = time.perf_counter()
            self._description, self._stats, self._step = "train", "", start
            return
        self._progress = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task("train", total=total_steps, completed=start, stats="")

    def update(self, step: int, *, epoch: int | None = None, stats: dict[str, float] | None = None) -> None:
        if not self.enabled:
            return
        fields: dict[str, Any] = {"completed": step}
        if epoch is not None:
            fields["description"] = f"epoch {epoch + 1}"
        if stats:
            fields["stats"] = (
                f"loss {stats['loss']:.4f}  acc {stats['top1']:.2f}%  {stats['images_per_second']:,.0f} img/s"
            )
        if self._plain:
            self._plain_update(step, fields)
            return
        self._progress.update(self._task, **fields)

    def _plain_update(self, step: int, fields: dict[str, Any]) -> None:
        self._step = step
        self._description = fields.get("description", self._description)
        self._stats = fields.get("stats", self._stats)
        now = time.perf_counter()
        if now - self._last < self._interval and step < self._total:
            return
        self._last = now
        elapsed = now - self._t0
        done = step - self._start
        eta = f"{(self._total - step) * elapsed / done:,.0f} s" if done > 0 else "?"
        pct = 100.0 * step / self._total if self._total else 100.0
        line = f"{self._description}  step {step:,}/{self._total:,} ({pct:.1f}%)  {self._stats}  {elapsed:,.0f} s, ETA {eta}"
        self._console.print(" ".join(line.split()), highlight=False, markup=False)

    def print(self, text: str) -> None:
        if self.enabled:
            self._console.print(text, highlight=False)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class Stopwatch:
    """Seconds since start, plus a carried offset (time spent before a resume)."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return self.offset + time.perf_counter() - self.start


class RunningSums:
    """This rank's running loss sum and correct count, on the device (no per-step sync; the
    sample counts are known on the host), and the first step whose loss was not finite."""

    def __init__(self, device: torch.device) -> None:
        self.first_bad = torch.full((), -1, dtype=torch.int64, device=device)
        self.win = torch.zeros(2, dtype=torch.float64, device=device)
        self.ep = torch.zeros(2, dtype=torch.float64, device=device)
        self.counts = [0, 0]  # samples in the window, in the epoch (this rank)

    def sync(self, state: Any, dist: D.DistInfo, device: torch.device) -> None:
        """Fold this rank's sums into the state's global window and epoch sums (all ranks)."""
        w, e = self.win.tolist(), self.ep.tolist()
        both = D.all_reduce_sum([w[0], w[1], self.counts[0], e[0], e[1], self.counts[1]], dist, device)
        for i in range(3):
            state.window[i] += both[i]
            state.epoch_sums[i] += both[3 + i]
        self.win.zero_()
        self.ep.zero_()
        self.counts[0] = self.counts[1] = 0


def describe_run(model_name: str, params: int, macs: int | None, shape: tuple[int, int], data: dict[str, Any],
                 config: Any, steps_per_epoch: int, device: torch.device, world_size: int, *,
                 resumed_at: int | None) -> str:  # fmt: skip
    """The run's first line: the model and its size, the data, the steps and where they run."""
    channels, side = shape
    macs_text = f", {macs / 1e6:,.2f} M MACs" if macs is not None else ""
    return (
        f"{model_name}: {params:,} parameters{macs_text} at {channels}x{side}x{side}; "
        f"{config.data}: {len(data['train']):,} train / {len(data['test']):,} test images; {steps_per_epoch} "
        f"steps/epoch x {config.epochs} epochs on {device}{f' x {world_size} ranks' if world_size > 1 else ''}"
        f"{f' ({torch.get_num_threads()} threads)' if device.type == 'cpu' else ''}"
        f"{'; resumed at step ' + str(resumed_at) if resumed_at is not None else ''}"
    )


def run_summary(state: Any, model_name: str, params: int, macs: int | None, config: Any, cfg_dict: dict[str, Any],
                input_size: int, world_size: int, device: torch.device, *, files_verified: int) -> dict[str, Any]:  # fmt: skip
    """summary.json of a finished run (docs/internals.md), from its `TrainState`."""
    last = state.last_eval or {}
    return {
        "model": model_name, "data": config.data, "params": params, "macs": macs, "epochs": config.epochs,
        "epochs_done": state.epoch, "steps": state.step, "test_top1": last.get("test_top1"),
        "test_top5": last.get("test_top5"), "test_loss": last.get("test_loss"), "best_test_top1": state.best_test_top1,
        "images_per_second": state.train_images / max(state.train_seconds, 1e-9),
        "train_seconds": state.train_seconds, "wall_seconds": state.wall_seconds, "input_size": input_size,
        "world_size": world_size, "hardware": hardware_info(device), "versions": versions(), "config": cfg_dict,
        "files_verified": files_verified,
    }  # fmt: skip
