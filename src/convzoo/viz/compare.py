"""Accuracy against parameters and against multiply-accumulates for trained runs.

Reads each run folder's `summary.json` (`params`, `macs`, `test_top1`, `model`); runs of
the same label (several seeds) are drawn as their mean with the spread as an error bar.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from .curves import RunRecord


@dataclass(frozen=True)
class Point:
    """One model on the comparison plots: accuracy (mean, std over seeds), params, MACs."""

    label: str
    params: float
    macs: float | None
    top1: float
    top1_std: float
    n: int


def points_from_runs(runs: Sequence["str | Path | RunRecord"], labels: Sequence[str] | None = None) -> list[Point]:
    """Group runs by label (default: the summary's model name) and average their test accuracy."""
    from .curves import RunRecord, read_run

    records = [r if isinstance(r, RunRecord) else read_run(r) for r in runs]
    groups: dict[str, list["RunRecord"]] = {}
    for i, rec in enumerate(records):
        if not rec.summary:
            raise DataError(f"{rec.path} has no summary.json (is the run finished?)")
        label = labels[i] if labels else str(rec.summary.get("model") or rec.label)
        groups.setdefault(label, []).append(rec)
    points = []
    for label, recs in groups.items():
        accs = [float(r.summary["test_top1"]) for r in recs if r.summary.get("test_top1") is not None]
        if not accs:
            raise DataError(f"{recs[0].path}/summary.json has no test_top1")
        params = recs[0].summary.get("params")
        if params is None:
            raise DataError(f"{recs[0].path}/summary.json has no params")
        macs = recs[0].summary.get("macs")
        points.append(
            Point(
                label=label,
                params=float(params),
                macs=float(macs) if macs is not None else None,
                top1=statistics.fmean(accs),
                top1_std=statistics.stdev(accs) if len(accs) > 1 else 0.0,
                n=len(accs),
            )
        )
    return points


def plot_compare(
    runs: Sequence["str | Path | RunRecord"] = (),
    *,
    points: Sequence[Point] | None = None,
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> "Figure":
    """Two panels: test accuracy against parameters, and against MACs (log x axes)."""
    from ._common import new_figure

    pts = list(points) if points is not None else points_from_runs(runs, labels)
    if not pts:
        raise ConfigError("viz compare needs at least one finished run folder")
    fig = new_figure(11.0, 4.3)
    panels = [("params", "parameters"), ("macs", "multiply-accumulates per image")]
    for k, (attr, xlabel) in enumerate(panels, 1):
        ax = fig.add_subplot(1, 2, k)
        for i, p in enumerate(pts):
            x = getattr(p, attr)
            if x is None:
                continue
            ax.errorbar([x], [p.top1], yerr=[p.top1_std] if p.n > 1 else None, fmt="o", color=f"C{i % 10}",
                        capsize=3, markersize=7)
            ax.annotate(p.label + (f" (n={p.n})" if p.n > 1 else ""), (x, p.top1), textcoords="offset points",
                        xytext=(5, 4), fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test top-1 accuracy (%)")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(title or "accuracy against size and cost", fontsize=11)
    return fig
