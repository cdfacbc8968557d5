"""Run folders on disk, read safely: the list, one run's metrics as they grow, experiments.

What the explorer's Runs view shows and what a script can call: a run folder is any folder
holding `config.json` (written by the trainer when a run starts; docs/internals.md), an
experiment output any folder holding `results.json` from `convzoo experiment`. Nothing here
imports torch.

Every path a caller gives is relative to a root (`--runs`, default `runs/`) and checked:
absolute paths, `..` and symlinks that leave the root are refused with `RunPathError`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import ConvzooError

#: How deep under the root run folders are looked for (experiments nest runs two deep).
MAX_DEPTH = 4
#: At most this many bytes of metrics.jsonl are returned per read (the rest on the next).
MAX_CHUNK = 4 << 20


class RunPathError(ConvzooError):
    """A run path outside the runs root, or one that does not exist."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def resolve_run(root: str | os.PathLike[str], rel: str) -> Path:
    """The folder `rel` under `root`, refusing anything that leaves `root`."""
    base = Path(root).resolve()
    if not rel or rel in (".", "/"):
        return base
    if "\x00" in rel or rel.startswith(("/", "\\")) or Path(rel).is_absolute() or ":" in rel.split("/")[0]:
        raise RunPathError(f"run paths are relative to the runs folder, got {rel!r}")
    parts = Path(rel).parts
    if any(p == ".." for p in parts):
        raise RunPathError(f"'..' is not allowed in a run path, got {rel!r}")
    target = (base / rel).resolve()
    if target != base and base not in target.parents:
        raise RunPathError(f"{rel!r} leads outside the runs folder (a symlink?)")
    if not target.exists():
        raise RunPathError(f"no run {rel!r} in the runs folder", missing=True)
    return target


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _lock_pid(folder: Path) -> int | None:
    try:
        raw = (folder / ".lock").read_text()
    except OSError:
        return None
    for part in raw.split():
        if part.startswith("pid="):
            try:
                return int(part[4:])
            except ValueError:
                return None
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _last_records(path: Path, tail_bytes: int = 64 << 10) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(last step record, last epoch record) from the end of metrics.jsonl."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - tail_bytes))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None, None
    step = epoch = None
    for line in reversed(lines):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if not isinstance(rec, dict):
            continue
        if rec.get("kind") == "epoch" and epoch is None:
            epoch = rec
        elif rec.get("kind") == "step" and step is None:
            step = rec
        if step is not None and epoch is not None:
            break
    return step, epoch


def run_status(folder: Path, config: dict[str, Any], summary: dict[str, Any] | None) -> str:
    """finished, running or interrupted."""
    pid = _lock_pid(folder)
    if pid is not None and _alive(pid):
        return "running"
    if summary is not None:
        epochs, done = config.get("epochs"), summary.get("epochs_done")
        max_steps = config.get("max_steps")
        if (epochs is not None and done is not None and done >= epochs) or (
            max_steps and summary.get("steps", 0) >= max_steps
        ):
            return "finished"
    return "interrupted"


def run_info(root: Path, folder: Path) -> dict[str, Any]:
    """One run folder as a row: model, data, epochs, test top-1 (final and best), images/s, status."""
    config = _read_json(folder / "config.json") or {}
    summary = _read_json(folder / "summary.json")
    step, epoch = _last_records(folder / "metrics.jsonl")
    final = summary.get("test_top1") if summary else (epoch or {}).get("test_top1")
    best = summary.get("best_test_top1") if summary else None
    ips = summary.get("images_per_second") if summary else (step or {}).get("images_per_second")
    return {
        "path": folder.relative_to(root).as_posix(),
        "kind": "run",
        "model": (summary or {}).get("model") or config.get("model"),
        "data": config.get("data"),
        "epochs": config.get("epochs"),
        "epochs_done": (summary or {}).get("epochs_done", (epoch or {}).get("epoch", 0)),
        "steps": (summary or {}).get("steps", (step or {}).get("step", 0)),
        "test_top1": final,
        "best_test_top1": best,
        "images_per_second": ips,
        "status": run_status(folder, config, summary),
        "recipe": config.get("recipe"),
        "modified": (folder / "metrics.jsonl").stat().st_mtime if (folder / "metrics.jsonl").exists() else None,
    }


def experiment_info(root: Path, folder: Path) -> dict[str, Any]:
    """An experiment output folder as a row: its name, scale, verdicts and runs."""
    results = _read_json(folder / "results.json") or {}
    runs = []
    for name, paths in (results.get("runs") or {}).items():
        for p in paths:
            runs.append({"name": name, "path": _relative_if_inside(root, folder, p)})
    return {
        "path": folder.relative_to(root).as_posix(),
        "kind": "experiment",
        "experiment": results.get("experiment"),
        "title": results.get("title"),
        "claim": results.get("claim"),
        "scale": results.get("scale"),
        "verdicts": results.get("verdicts"),
        "rows": results.get("rows"),
        "runs": runs,
        "wall_seconds": results.get("wall_seconds"),
        "has_report": (folder / "report.md").is_file(),
    }


def _relative_if_inside(root: Path, folder: Path, p: str) -> str | None:
    """A path results.json recorded (relative to where the experiment ran), as a path under root."""
    for cand in (Path(p), folder / Path(p).name, root / p):
        try:
            real = cand.resolve()
        except OSError:
            continue
        if real.is_dir() and (real == root or root in real.parents):
            return real.relative_to(root).as_posix()
    # an experiment keeps its runs under its own folder: match by the last parts
    parts = Path(p).parts
    for k in range(len(parts), 0, -1):
        cand = folder.joinpath(*parts[-k:])
        if cand.is_dir():
            return cand.resolve().relative_to(root).as_posix()
    return None


def list_runs(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Every run folder and experiment output under `root` (up to MAX_DEPTH deep), newest first.

    Symlinks are not followed. Returns {"root", "runs": [...], "experiments": [...]}.
    """
    base = Path(root).resolve()
    runs: list[dict[str, Any]] = []
    experiments: list[dict[str, Any]] = []
    if base.is_dir():
        stack = [(base, 0)]
        while stack:
            folder, depth = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            names = {e.name for e in entries}
            if "results.json" in names:
                experiments.append(experiment_info(base, folder))
            if "config.json" in names and folder != base:
                runs.append(run_info(base, folder))
                continue  # a run folder holds no other runs
            if depth < MAX_DEPTH:
                for e in entries:
                    if e.is_dir(follow_symlinks=False) and not e.name.startswith("."):
                        if e.name in ("checkpoints", "tensorboard", "figures"):
                            continue
                        stack.append((Path(e.path), depth + 1))
    runs.sort(key=lambda r: (r["modified"] or 0), reverse=True)
    experiments.sort(key=lambda r: r["path"])
    return {"root": str(base), "runs": runs, "experiments": experiments}


def read_metrics(folder: Path, offset: int = 0) -> dict[str, Any]:
    """The records of `folder/metrics.jsonl` from byte `offset` on (complete lines only).

    Returns {"records": [...], "offset": where the next read starts, "size"}. A client that
    polls with the returned offset sees each line once, however the file grows.
    """
    path = folder / "metrics.jsonl"
    if offset < 0:
        raise RunPathError(f"offset must be >= 0, got {offset}")
    try:
        size = path.stat().st_size
    except OSError:
        return {"records": [], "offset": 0, "size": 0}
    if offset > size:  # the file was replaced (--overwrite): start again
        offset = 0
    with path.open("rb") as fh:
        fh.seek(offset)
        chunk = fh.read(MAX_CHUNK)
    end = chunk.rfind(b"\n")
    if end < 0:
        return {"records": [], "offset": offset, "size": size}
    records = []
    for line in chunk[: end + 1].splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return {"records": records, "offset": offset + end + 1, "size": size}


def run_detail(root: str | os.PathLike[str], rel: str, offset: int = 0) -> dict[str, Any]:
    """One run: its row, its config, its summary (when finished) and its metrics from `offset`."""
    base = Path(root).resolve()
    folder = resolve_run(base, rel)
    if not (folder / "config.json").is_file():
        raise RunPathError(f"{rel!r} is not a run folder (no config.json)", missing=True)
    return {
        **run_info(base, folder),
        "config": _read_json(folder / "config.json"),
        "summary": _read_json(folder / "summary.json"),
        "metrics": read_metrics(folder, offset),
        "checkpoints": sorted(p.name for p in (folder / "checkpoints").glob("*.pt")) if (folder / "checkpoints").is_dir() else [],
    }
