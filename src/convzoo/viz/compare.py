"""Accuracy against parameters and against multiply-accumulates for trained runs.

Reads each run folder's `summary.json` (`params`, `macs`, `test_top1`, `model`) and
`config.json`. Runs are averaged only when their configurations differ by the seed alone
(and by bookkeeping that does not change what is trained: `BOOKKEEPING`); they are drawn as
their mean with the spread as an error bar. Runs of one model with different configurations
(a 10-epoch and a 1-epoch LeNet) stay separate points, labelled by the fields that differ,
and `compare_points` says which runs it averaged and which it kept apart.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

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


#: TrainConfig fields that do not change what a run trains (where it is written, how often it
#: is logged or checkpointed, where the data came from, the hardware): runs that differ only in
#: these and in `seed` are repeats of one configuration.
BOOKKEEPING = ("seed", "out", "name", "overwrite", "resume", "checkpoint_every", "keep", "log_every", "data_dir",
               "download", "verify_data", "workers", "threads", "device", "deterministic", "eval_batch_size",
               "recipe")  # fmt: skip


def run_configuration(rec: "RunRecord") -> dict[str, Any]:
    """What defines a run's training: its config (config.json, else summary.json's) without
    `BOOKKEEPING`; the summary's model, data and epochs for a run folder without one."""
    config = rec.config or rec.summary.get("config") or {}
    if not config:
        config = {k: rec.summary.get(k) for k in ("model", "data", "epochs")}
    return {k: v for k, v in config.items() if k not in BOOKKEEPING}


def _seed(rec: "RunRecord") -> Any:
    config = rec.config or rec.summary.get("config") or {}
    return config.get("seed", 0)


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _differing(configs: Sequence[dict[str, Any]]) -> list[str]:
    keys = sorted(set().union(*configs))
    return [k for k in keys if len({_show(c.get(k)) for c in configs}) > 1]


def group_runs(
    records: Sequence["RunRecord"], labels: Sequence[str] | None = None
) -> tuple[list[tuple[str, list["RunRecord"]]], list[str]]:
    """([(label, runs)], notes): runs grouped only where their configurations differ by seed.

    Without `labels` a group's label is the model name, with the differing fields added
    where one model comes in several configurations. With `labels`, runs sharing a label
    must differ by seed alone (else `ConfigError`). The notes say what was averaged and what
    was kept apart, one sentence each.
    """
    for rec in records:
        if not rec.summary:
            raise DataError(f"{rec.path} has no summary.json (is the run finished?)")
    configs = [run_configuration(r) for r in records]
    keyed: dict[tuple[str, str], list[int]] = {}
    for i, rec in enumerate(records):
        name = labels[i] if labels else str(rec.summary.get("model") or rec.label)
        key = (name, "" if labels else json.dumps(configs[i], sort_keys=True, default=str))
        keyed.setdefault(key, []).append(i)
    notes: list[str] = []
    if labels:
        for (name, _), idx in keyed.items():
            diff = _differing([configs[i] for i in idx])
            if diff:
                a, b = next((records[i], records[j]) for i in idx for j in idx if _differing([configs[i], configs[j]]))
                raise ConfigError(
                    f"--labels: runs {str(a.path)!r} and {str(b.path)!r} share the label {name!r} but their "
                    f"configurations differ in {', '.join(diff)}; only runs that differ by seed are averaged"
                )
    by_model: dict[str, list[tuple[str, str]]] = {}
    for key in keyed:
        by_model.setdefault(key[0], []).append(key)
    groups: list[tuple[str, list["RunRecord"]]] = []
    for key, idx in keyed.items():
        name = key[0]
        label = name
        siblings = by_model[name]
        if len(siblings) > 1:
            diff = _differing([configs[keyed[k][0]] for k in siblings])
            label = f"{name} ({', '.join(f'{k}={_show(configs[idx[0]].get(k))}' for k in diff)})"
        groups.append((label, [records[i] for i in idx]))
        if len(idx) > 1:
            seeds = [_seed(records[i]) for i in idx]
            same = " (some share a seed)" if len(set(map(_show, seeds))) < len(seeds) else ""
            notes.append(f"{label}: {len(idx)} runs whose configurations differ only by seed "
                         f"({', '.join(map(_show, seeds))}){same}, averaged")  # fmt: skip
    for name, siblings in by_model.items():
        if len(siblings) > 1:
            diff = _differing([configs[keyed[k][0]] for k in siblings])
            notes.append(f"{name}: {len(siblings)} configurations that differ in {', '.join(diff)}, drawn apart "
                         "(runs are averaged only when they differ by seed)")  # fmt: skip
    return groups, notes


def compare_points(
    runs: Sequence["str | Path | RunRecord"], labels: Sequence[str] | None = None
) -> tuple[list[Point], list[str]]:
    """(points, notes): one point per group of `group_runs`, test accuracy averaged over its seeds."""
    from .curves import RunRecord, read_run

    records = [r if isinstance(r, RunRecord) else read_run(r) for r in runs]
    groups, notes = group_runs(records, labels)
    points = []
    for label, recs in groups:
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
    return points, notes


def points_from_runs(runs: Sequence["str | Path | RunRecord"], labels: Sequence[str] | None = None) -> list[Point]:
    """The points of `compare_points`, without its notes."""
    return compare_points(runs, labels)[0]


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
