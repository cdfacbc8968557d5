"""Cold-start latency and memory of the commands that should answer at once.

Every call is a fresh Python process (nothing cached in memory but what the OS keeps of
the files). Each round runs, in one order: `python -c "import torch"` (the baseline),
`convzoo models`, `convzoo models --json`, `convzoo summary MODEL` for each model,
`convzoo spec TEXT` and `convzoo paper TABLE` for each table. The rounds alternate the
order so that a change in the machine's load falls on every command alike. For each
command it prints the median wall time and CPU time (user + system: steadier on a loaded machine), each
with its excess over the baseline's median in the same run (goal: at most 0.6 s for summary, spec and paper; `models` at most 0.5 s in all, and
no torch import), the ratio to the baseline, and the peak resident memory (the child's
ru_maxrss) with its excess over the baseline's (goal: at most 100 MB).

Run: `.venv/bin/python benchmarks/cli_latency.py [--rounds 5] [--models all|vgg16,resnet50] [--json out.json]`.
`--models all` means every zoo model but resnet1202 and preact_resnet1001 (the 1000-layer
CIFAR networks, outside the goal).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

SPEC = "Input(1x32x32)->(Conv)6c5w1s0p->(MaxPool)2w2s->(Conv)16c5w1s0p->(MaxPool)2w2s->(Flat)400->120fc->84fc->10fc->(Output)"
TABLES = ("lenet", "alexnet", "vgg", "googlenet", "resnet", "densenet")
DEFAULT_MODELS = ("lenet5", "alexnet", "vgg16", "googlenet", "resnet50", "resnet56", "densenet121", "densenet_bc_100_12")
EXCLUDED = ("resnet1202", "preact_resnet1001")


def run_once(argv: list[str]) -> tuple[float, float, float]:
    """Wall seconds, peak resident MiB and CPU seconds (user + system) of one fresh process."""
    env = dict(os.environ)
    env.pop("COLUMNS", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {err[-500:]}")
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime  # ru_maxrss: KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma list, or 'all' (zoo but the 1000-layer nets)")
    ap.add_argument("--json", default=None, metavar="PATH")
    args = ap.parse_args()
    py = sys.executable
    if args.models == "all":
        from convzoo._table import rows

        models = [r["name"] for r in rows() if r["name"] not in EXCLUDED]
    else:
        models = [m for m in args.models.split(",") if m]
    commands: dict[str, list[str]] = {"python -c 'import torch'": [py, "-c", "import torch"]}
    commands["convzoo models"] = [py, "-m", "convzoo", "models"]
    commands["convzoo models --json"] = [py, "-m", "convzoo", "models", "--json"]
    for m in models:
        commands[f"convzoo summary {m}"] = [py, "-m", "convzoo", "summary", m]
    commands["convzoo spec LENET"] = [py, "-m", "convzoo", "spec", SPEC]
    for t in TABLES:
        commands[f"convzoo paper {t}"] = [py, "-m", "convzoo", "paper", t]
    results: dict[str, list[tuple[float, float, float]]] = {k: [] for k in commands}
    order = list(commands)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load0 = os.getloadavg()
    for i in range(args.rounds):
        for name in order if i % 2 == 0 else reversed(order):
            results[name].append(run_once(commands[name]))
        print(f"round {i + 1}/{args.rounds} done, load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
    base_t = statistics.median(r[0] for r in results[order[0]])
    base_m = statistics.median(r[1] for r in results[order[0]])
    base_c = statistics.median(r[2] for r in results[order[0]])
    print(f"{started}; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; python {platform.python_version()}; "
          f"load average {load0[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end; {args.rounds} rounds")
    print(f"{'command':<40} {'median s':>9} {'- torch s':>9} {'x torch':>8} {'CPU s':>6} {'- torch':>8} "
          f"{'peak MiB':>9} {'- torch MiB':>11}")
    out = []
    for name in order:
        t = statistics.median(r[0] for r in results[name])
        m = statistics.median(r[1] for r in results[name])
        c = statistics.median(r[2] for r in results[name])
        print(f"{name:<40} {t:9.2f} {t - base_t:+9.2f} {t / base_t:8.2f} {c:6.2f} {c - base_c:+8.2f} {m:9.0f} {m - base_m:+11.0f}")
        out.append({"command": name, "median_seconds": t, "excess_seconds": t - base_t, "ratio": t / base_t,
                    "cpu_seconds": c, "excess_cpu_seconds": c - base_c,
                    "peak_mib": m, "excess_mib": m - base_m, "runs": results[name]})
    summary = [r for r in out if r["command"].startswith(("convzoo summary", "convzoo spec", "convzoo paper"))]
    worst = max(summary, key=lambda r: r["excess_seconds"])
    print(f"slowest analysis command: {worst['command']} at +{worst['excess_seconds']:.2f} s wall over import torch "
          f"(goal +0.6 s); largest CPU excess +{max(r['excess_cpu_seconds'] for r in summary):.2f} s; largest memory excess {max(r['excess_mib'] for r in summary):+.0f} MiB (goal +100 MB)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"started": started, "load_start": load0, "results": out}, f, indent=1)


if __name__ == "__main__":
    main()
