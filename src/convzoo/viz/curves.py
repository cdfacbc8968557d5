"""Training and test error against epochs, several runs overlaid.

As in the ResNet paper's Figures 1 and 4: thin lines are training error, bold lines test
error, one colour per run. Reads `metrics.jsonl` of run folders (docs/internals.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


@dataclass
class RunRecord:
    """What the plots need of one run folder."""

    path: Path
    label: str
    epochs: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def steps_per_epoch(self) -> float | None:
        """Optimizer steps per epoch, from the first complete epoch-end record (None without one)."""
        for e in self.epochs:
            if e.get("partial") or e.get("step") is None:
                continue
            epoch = float(e.get("epoch", 0))
            epoch = epoch if epoch >= 1 else epoch + 1  # a 0-based trainer's first epoch end
            if epoch > 0 and float(e["step"]) > 0:
                return float(e["step"]) / epoch
        return None

    def epoch_axis(self) -> list[float]:
        """Epochs completed at each epoch-end record (1, 2, ...; fractional for a partial epoch)."""
        raw = [float(e.get("epoch", i)) for i, e in enumerate(self.epochs)]
        base = 0.0 if raw and raw[0] >= 1 else 1.0  # 0-based epoch numbers: the first end is after 1 epoch
        spe = self.steps_per_epoch()
        out = []
        for r, e in zip(raw, self.epochs):
            if e.get("partial") and spe and e.get("step") is not None:
                out.append(float(e["step"]) / spe)  # a run stopped by max_steps mid-epoch
            else:
                out.append(r + base)
        return out


def read_run(path: str | Path, label: str | None = None) -> RunRecord:
    """Read a run folder's metrics.jsonl, summary.json and config.json (the last two optional)."""
    p = Path(path)
    if not p.is_dir():
        raise DataError(f"run folder {str(path)!r} does not exist")
    metrics = p / "metrics.jsonl"
    if not metrics.is_file():
        raise DataError(f"{str(path)!r} is not a run folder: it has no metrics.jsonl")
    rec = RunRecord(path=p, label=label or p.name)
    for lineno, line in enumerate(metrics.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            # a run killed mid-write leaves a partial last line; anything else is corrupt
            if lineno == len(metrics.read_text().splitlines()):
                continue
            raise DataError(f"{metrics}: line {lineno} is not JSON") from None
        kind = row.get("kind")
        if kind == "epoch":
            rec.epochs.append(row)
        elif kind == "step":
            rec.steps.append(row)
    for name, attr in (("summary.json", "summary"), ("config.json", "config")):
        f = p / name
        if f.is_file():
            try:
                setattr(rec, attr, json.loads(f.read_text()))
            except json.JSONDecodeError:
                raise DataError(f"{f} is not valid JSON") from None
    return rec


def _error(acc: Any) -> float | None:
    return None if acc is None else 100.0 - float(acc)


def curve_points(rec: RunRecord) -> dict[str, tuple[list[float], list[float]]]:
    """{'train': (x, err), 'test': (x, err)}: x in epochs, error in percent.

    Training error comes from the step windows when there are any (a finer curve, as in
    the papers' figures), else from the epoch-end records.
    """
    out: dict[str, tuple[list[float], list[float]]] = {}
    ex = rec.epoch_axis()
    spe = rec.steps_per_epoch()
    train_steps = [(s["step"], _error(s.get("top1"))) for s in rec.steps if s.get("top1") is not None and "step" in s]
    if train_steps and spe:
        out["train"] = ([st / spe for st, _ in train_steps], [e for _, e in train_steps])  # type: ignore[misc]
    else:
        pts = [(x, _error(e.get("train_top1"))) for x, e in zip(ex, rec.epochs) if e.get("train_top1") is not None]
        if pts:
            out["train"] = ([x for x, _ in pts], [e for _, e in pts])  # type: ignore[misc]
    pts = [(x, _error(e.get("test_top1"))) for x, e in zip(ex, rec.epochs) if e.get("test_top1") is not None]
    if pts:
        out["test"] = ([x for x, _ in pts], [e for _, e in pts])  # type: ignore[misc]
    return out


def plot_curves(
    runs: Sequence[str | Path | RunRecord], *, title: str | None = None, log_y: bool = False
) -> "Figure":
    """Training (thin) and test (bold) error of each run against epochs, on one axis."""
    from ._common import new_figure

    records = [r if isinstance(r, RunRecord) else read_run(r) for r in runs]
    if not records:
        raise ConfigError("viz curves needs at least one run folder")
    fig = new_figure(7.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    colours = [f"C{i % 10}" for i in range(len(records))]
    drawn = 0
    for rec, colour in zip(records, colours):
        pts = curve_points(rec)
        if "train" in pts:
            x, y = pts["train"]
            ax.plot(x, y, color=colour, linewidth=0.8, alpha=0.8, label=f"{rec.label} (train)")
            drawn += 1
        if "test" in pts:
            x, y = pts["test"]
            ax.plot(x, y, color=colour, linewidth=2.4, marker="o" if len(x) < 12 else None, markersize=4,
                    label=f"{rec.label} (test)")
            drawn += 1
    if drawn == 0:
        raise DataError("none of the runs has epoch or step records with accuracies in metrics.jsonl yet")
    ax.set_xlabel("epoch")
    ax.set_ylabel("error (%)")
    if log_y:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, ncol=2 if len(records) > 3 else 1)
    ax.set_title(title or "training (thin) and test (bold) error", fontsize=10)
    return fig
