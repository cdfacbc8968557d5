"""A CPU speedrun: train to a target test accuracy as fast as the machine allows, airbench style.

A target (`lenet5-91`, `resnet-94`) is a recipe of the real trainer (package data,
`convzoo/weights/recipes/speedrun/TARGET.toml`: a `[speedrun]` table with the threshold and
the time goal, a `[train]` table of `TrainConfig` fields) and a threshold on the final test
top-1. Each seed runs in a fresh Python process, as a user would run it, and its wall time
runs from just before that process is started to the end of its final test evaluation
(`train()` returning): interpreter start, `import torch`, reading the data, every epoch and
every evaluation the trainer makes are all inside it. Nothing is cached between seeds.

The report gives the mean and standard deviation of the wall time over the seeds, the
accuracy distribution, whether every seed reached the threshold, the hardware, the
versions and the machine's load average at the start and the end (a loaded machine's
figure is labelled as such). This module does not import torch; the worker does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from .errors import ConfigError, ConvzooError

#: Where the targets' recipes live (package data).
RECIPES_DIR = Path(__file__).resolve().parent / "weights" / "recipes" / "speedrun"
#: The line prefix the worker prints its result after.
_MARK = "CONVZOO-SPEEDRUN-RESULT "


class SpeedrunError(ConvzooError):
    """A seed's training failed (missing data, a bad recipe, a crash); the message says which."""


@dataclasses.dataclass
class Target:
    """A speedrun target: a trainer recipe and the test top-1 it must reach."""

    name: str
    threshold: float
    """Test top-1 (percent) every seed must reach."""
    goal_seconds: float
    """The time goal for the mean wall time (seconds, idle machine)."""
    description: str
    train: dict[str, Any]
    """TrainConfig fields of the recipe."""
    path: Path


def targets() -> list[str]:
    """The names of the shipped targets."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))


def load_target(name: str) -> Target:
    """Read a shipped target's recipe; an unknown name raises `ConfigError` listing the known ones."""
    import tomllib

    path = RECIPES_DIR / f"{name}.toml"
    if "/" in name or os.sep in name or not path.is_file():
        raise ConfigError(f"unknown speedrun target {name!r}; targets: {', '.join(targets())}")
    with path.open("rb") as fh:
        values = tomllib.load(fh)
    head, train = values.get("speedrun"), values.get("train")
    if not isinstance(head, dict) or not isinstance(train, dict):
        raise ConfigError(f"{path} needs a [speedrun] table and a [train] table")
    from .train.config import TrainConfig

    TrainConfig.from_dict(train, source=str(path)).validate()  # a bad recipe is an error before any work
    return Target(name=name, threshold=float(head["threshold"]), goal_seconds=float(head["goal_seconds"]),
                  description=str(head.get("description", "")), train=dict(train), path=path)  # fmt: skip


def target_config(target: Target, seed: int, *, out: str, threads: int | None = None,
                  data_dir: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The TrainConfig fields of one seed's run (the recipe, the seed, the run folder)."""
    values = dict(target.train)
    values.update(seed=int(seed), out=out, overwrite=True, name=None, resume=None)
    values["recipe"] = f"convzoo/weights/recipes/speedrun/{target.path.name}"
    if threads is not None:
        values["threads"] = int(threads)
    if data_dir is not None:
        values["data_dir"] = data_dir
    return values


def run_seed(target: Target, seed: int, *, out: str | Path, threads: int | None = None,
             data_dir: str | None = None, timeout: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Train one seed in a fresh process; its wall time is from spawning it to its final evaluation."""
    values = target_config(target, seed, out=str(out), threads=threads, data_dir=data_dir)
    cmd = [sys.executable, "-m", "convzoo.speedrun", "--worker", json.dumps(values)]
    env = dict(os.environ)
    start = time.time()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SpeedrunError(f"seed {seed} did not finish within {timeout:.0f} s") from None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_MARK)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["no output"])[-6:]
        raise SpeedrunError(f"seed {seed}'s training failed (exit status {proc.returncode}): " + " | ".join(tail))
    got = json.loads(lines[-1][len(_MARK):])
    s = got["summary"]
    return {
        "seed": int(seed),
        "test_top1": s["test_top1"],
        "wall_seconds": got["end"] - start,
        "startup_seconds": got["ready"] - start,
        "train_seconds": s["train_seconds"],
        "epochs": s["epochs_done"],
        "steps": s["steps"],
        "images_per_second": s["images_per_second"],
        "reached": s["test_top1"] is not None and s["test_top1"] >= target.threshold,
        "_hardware": s.get("hardware"),
        "_versions": s.get("versions"),
    }


def _spread(values: list[float]) -> dict[str, float | None]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "min": min(values), "max": max(values)}  # fmt: skip


def summarize(target: Target, runs: list[dict[str, Any]], *, load: tuple[float, float] | None = None,
              date: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The speedrun's result (the `--json` dict) from its runs."""
    hardware = next((r["_hardware"] for r in runs if r.get("_hardware")), None)
    versions = next((r["_versions"] for r in runs if r.get("_versions")), None)
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in runs]
    walls = [r["wall_seconds"] for r in clean]
    accs = [r["test_top1"] for r in clean if r["test_top1"] is not None]
    wall, acc = _spread(walls), _spread(accs) if accs else {"mean": None, "std": None, "min": None, "max": None}
    reached = sum(1 for r in clean if r["reached"])
    return {
        "target": target.name,
        "model": target.train.get("model"),
        "data": target.train.get("data"),
        "threshold": target.threshold,
        "goal_seconds": target.goal_seconds,
        "recipe": f"convzoo/weights/recipes/speedrun/{target.path.name}",
        "config": target.train,
        "runs": clean,
        "mean_wall_seconds": wall["mean"],
        "std_wall_seconds": wall["std"],
        "min_wall_seconds": wall["min"],
        "max_wall_seconds": wall["max"],
        "mean_test_top1": acc["mean"],
        "std_test_top1": acc["std"],
        "min_test_top1": acc["min"],
        "max_test_top1": acc["max"],
        "runs_reached": reached,
        "reached_all": reached == len(clean),
        "goal_met": reached == len(clean) and wall["mean"] <= target.goal_seconds,
        "hardware": hardware,
        "versions": versions,
        "load_average": {"start": load[0], "end": load[1]} if load else None,
        "cpu_count": os.cpu_count(),
        "date": date or time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """`KEY=VALUE` strings (VALUE read as TOML: 8, 0.2, true, "adamw"; bare words as text) to a dict."""
    import tomllib

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set takes KEY=VALUE (a TrainConfig field), got {item!r}")
        try:
            out[key] = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = text.strip()
    return out


def speedrun(name: str, seeds: int = 5, *, out: str | Path | None = None, threads: int | None = None,
             data_dir: str | None = None, overrides: dict[str, Any] | None = None,
             report: Callable[[str], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Run target `name` for seeds 0..seeds-1 (each in a fresh process); return the result dict.

    out: keep the run folders there (one seed: `out` itself; several: `out/seed-N`);
    by default they go to a temporary folder that is removed. overrides: TrainConfig fields
    that replace the recipe's (ablations; the result records them). report: called with a
    line before and after each seed (progress).
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds must be a positive integer, got {seeds!r}")
    target = load_target(name)
    if overrides:
        for key in ("seed", "out", "name", "resume", "overwrite"):
            if key in overrides:
                raise ConfigError(f"--set {key}=... is not a recipe field here (the speedrun sets it)")
        target = dataclasses.replace(target, train={**target.train, **overrides})
    from .train.config import TrainConfig

    # a bad --threads or --data-dir is one message before any process starts
    TrainConfig.from_dict(target_config(target, 0, out="-", threads=threads, data_dir=data_dir),
                          source=f"speedrun {name}").validate()  # fmt: skip
    say = report or (lambda _line: None)
    load0 = _load()
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    runs = []
    with tempfile.TemporaryDirectory(prefix="convzoo-speedrun-") as tmp:
        base = Path(out) if out is not None else Path(tmp)
        for seed in range(seeds):
            folder = base if seeds == 1 and out is not None else base / f"seed-{seed}"
            say(f"seed {seed} ({seed + 1}/{seeds}): training {target.train.get('model')} to "
                f"{target.threshold:.1f}% test top-1 ...")  # fmt: skip
            r = run_seed(target, seed, out=folder, threads=threads, data_dir=data_dir)
            say(f"seed {seed}: test top-1 {r['test_top1']:.2f}% in {r['wall_seconds']:.1f} s "
                f"({'reached' if r['reached'] else 'missed'} {target.threshold:.1f}%)")  # fmt: skip
            runs.append(r)
    result = summarize(target, runs, load=(load0, _load()), date=date)
    result["overrides"] = dict(overrides or {})
    return result


def _load() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover - not on Linux
        return float("nan")


def format_report(res: dict[str, Any]) -> str:
    """The human-readable report (airbench style)."""
    lines = [f"convzoo speedrun {res['target']}: {res['model']} on {res['data']} to "
             f"{res['threshold']:.1f}% test top-1 (goal: mean wall time <= {res['goal_seconds']:.0f} s, every seed)"]  # fmt: skip
    lines.append(f"{'seed':>4}  {'test top-1':>10}  {'wall s':>7}  {'startup s':>9}  {'train s':>7}  {'epochs':>6}  reached")
    for r in res["runs"]:
        lines.append(f"{r['seed']:>4}  {r['test_top1']:>9.2f}%  {r['wall_seconds']:>7.2f}  {r['startup_seconds']:>9.2f}  "
                     f"{r['train_seconds']:>7.2f}  {r['epochs']:>6}  {'yes' if r['reached'] else 'NO'}")  # fmt: skip
    n = len(res["runs"])

    def pm(mean: float, std: float | None, unit: str) -> str:
        return f"{mean:.2f}{unit}" + (f" +- {std:.2f}{unit}" if std is not None else " (one seed)")

    lines.append(f"wall time: {pm(res['mean_wall_seconds'], res['std_wall_seconds'], ' s')} over {n} seed"
                 f"{'s' if n > 1 else ''} (min {res['min_wall_seconds']:.2f}, max {res['max_wall_seconds']:.2f})")  # fmt: skip
    if res["mean_test_top1"] is not None:
        lines.append(f"test top-1: {pm(res['mean_test_top1'], res['std_test_top1'], '%')} "
                     f"(min {res['min_test_top1']:.2f}%, max {res['max_test_top1']:.2f}%); "
                     f"{res['runs_reached']}/{n} seeds reached {res['threshold']:.1f}%")  # fmt: skip
    verdict = "MET" if res["goal_met"] else "NOT MET"
    why = []
    if not res["reached_all"]:
        why.append(f"{n - res['runs_reached']} seed(s) below {res['threshold']:.1f}%")
    if res["mean_wall_seconds"] > res["goal_seconds"]:
        why.append(f"mean {res['mean_wall_seconds']:.1f} s > {res['goal_seconds']:.0f} s")
    lines.append(f"goal {verdict}" + (f" ({'; '.join(why)})" if why else ""))
    hw, ver, load = res.get("hardware") or {}, res.get("versions") or {}, res.get("load_average") or {}
    lines.append(f"hardware: {hw.get('cpu', '?')}, {res.get('cpu_count')} CPUs, {hw.get('torch_threads', '?')} torch "
                 f"thread(s); load average {load.get('start', float('nan')):.2f} at the start, "
                 f"{load.get('end', float('nan')):.2f} at the end"
                 f"{' (a loaded machine: the times are not an idle-machine figure)' if max(load.get('start', 0), load.get('end', 0)) > 0.5 * (res.get('cpu_count') or 1) else ''}")  # fmt: skip
    lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in ver.items()) + f"; {res['date']}")
    lines.append(f"recipe: {res['recipe']}" + (f", with {', '.join(f'{k}={v!r}' for k, v in res['overrides'].items())}"
                                                 if res.get("overrides") else ""))  # fmt: skip
    return "\n".join(lines)


# -- the worker: one seed, in its own process ------------------------------------------------


def _worker(values_json: str) -> int:
    import torch  # noqa: F401 - part of the start-up this figure includes

    from .train import train
    from .train.config import TrainConfig

    ready = time.time()
    try:
        config = TrainConfig.from_dict(json.loads(values_json), source="the speedrun recipe")
        run_dir = train(config, progress=False)
    except ConvzooError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    end = time.time()
    summary = json.loads((run_dir / "summary.json").read_text())
    keep = ("test_top1", "train_seconds", "epochs_done", "steps", "images_per_second", "hardware", "versions")
    print(_MARK + json.dumps({"ready": ready, "end": end, "summary": {k: summary.get(k) for k in keep}}), flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(_worker(sys.argv[2]))
    print("usage: convzoo speedrun TARGET [--seeds N] [--json]", file=sys.stderr)
    sys.exit(2)
