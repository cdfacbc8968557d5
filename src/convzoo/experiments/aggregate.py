"""Aggregation: one row per run of an experiment, from its finished run folders.

A row holds the run's parameters and MACs (from `summary.json`), the mean and standard
deviation over seeds of the final test error (`summary.json`'s `test_top1`) and training
error (the last epoch of `metrics.jsonl`), images/s and wall time, and the recipe's
`role`, `published`, `paper_error` and `depth` for the analyses. Errors are percentages.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from .recipe import RunSpec


def _last_epoch(run_dir: Path) -> dict[str, Any]:
    from ..viz.curves import read_run

    rec = read_run(run_dir)
    return rec.epochs[-1] if rec.epochs else {}


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def summarise(runs: list[RunSpec], done: dict[str, list[Path]]) -> list[dict[str, Any]]:
    """One row per run name: params, MACs, mean and spread of test/train error over seeds."""
    rows = []
    for run in runs:
        dirs = done.get(run.name, [])
        sums = [json.loads((d / "summary.json").read_text()) for d in dirs]
        lasts = [_last_epoch(d) for d in dirs]
        test_err = [100.0 - s["test_top1"] for s in sums if s.get("test_top1") is not None]
        train_err = [100.0 - e["train_top1"] for e in lasts if e.get("train_top1") is not None]
        te, te_sd = _mean_std(test_err)
        tr, tr_sd = _mean_std(train_err)
        rows.append({
            "run": run.name,
            "model": run.model or "spec",
            "role": run.role,
            "params": sums[0].get("params") if sums else None,
            "macs": sums[0].get("macs") if sums else None,
            "seeds": len(sums),
            "test_error": te, "test_error_std": te_sd,
            "train_error": tr, "train_error_std": tr_sd,
            "test_top1": None if te is None else 100.0 - te,
            "test_top5": _mean_std([s.get("test_top5") for s in sums])[0],
            "epochs": sums[0].get("epochs_done", sums[0].get("epochs")) if sums else None,
            "wall_seconds": _mean_std([s.get("wall_seconds") for s in sums])[0],
            "images_per_second": _mean_std([s.get("images_per_second") for s in sums])[0],
            "published": run.published,
            "paper_error": run.paper_error,
            "depth": run.depth,
        })  # fmt: skip
    return rows

