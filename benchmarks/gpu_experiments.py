"""Run the full scale of convzoo's experiments on one GPU within a time budget (default 9.5 min).

A sibling of `gpu_suite.py`: one command on a GPU machine, one table at the end.

    python benchmarks/gpu_experiments.py [--budget 570] [--only lenet degradation] [--out DIR]
                                         [--set epochs=5 ...] [--no-amp]

Each experiment runs as `convzoo experiment NAME --scale full --set device="cuda"
--set amp="bf16" --set channels_last=true` in its own process, in the order below (cheapest
and most central claims first), with the time left as its timeout: an experiment that would
overrun is stopped and listed as such, and the experiments after it are skipped when less
than `--min-left` seconds remain. Every finished experiment leaves its runs, results.json,
report.md and report.html under `--out`; the script prints one table (experiment, status,
wall seconds, verdicts) and writes it to `--out/summary.md` with the card's name.
The numbers belong in docs/results.md only once measured this way.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ORDER = ["lenet", "lrn", "degradation", "residual-units", "densenet-edge", "scales", "zoo"]


def gpu_name() -> str:
    import torch

    if not torch.cuda.is_available():
        return ""
    return torch.cuda.get_device_name(0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=570.0, help="seconds for everything (default 570)")
    p.add_argument("--min-left", type=float, default=45.0, help="do not start an experiment with less time left")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME", help="these experiments, in this order")
    p.add_argument("--out", default="gpu-experiments-out", help="output folder")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra training overrides")
    p.add_argument("--no-amp", action="store_true", help="fp32 instead of bf16 autocast")
    p.add_argument("--allow-cpu", action="store_true", help="run even without a GPU (for testing the script)")
    args = p.parse_args(argv)

    card = gpu_name()
    if not card and not args.allow_cpu:
        print("no CUDA GPU visible; this script is for a GPU machine (--allow-cpu to try it anyway)", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sets = [] if not card else ['device="cuda"', "channels_last=true"] + ([] if args.no_amp else ['amp="bf16"'])
    sets += args.set
    names = args.only or ORDER
    start = time.perf_counter()
    rows = []
    for name in names:
        left = args.budget - (time.perf_counter() - start)
        if left < args.min_left:
            rows.append({"experiment": name, "status": "skipped (budget)", "seconds": 0.0, "verdicts": []})
            continue
        cmd = [sys.executable, "-m", "convzoo", "experiment", name, "--scale", "full", "--quiet",
               "--out", str(out / name)]
        for s in sets:
            cmd += ["--set", s]
        t0 = time.perf_counter()
        print(f"== {name} ({left:.0f} s left): {' '.join(cmd[2:])}", flush=True)
        try:
            res = subprocess.run(cmd, timeout=left, capture_output=True, text=True)
            status = "done" if res.returncode == 0 else f"failed (exit {res.returncode})"
            if res.returncode != 0:
                print(res.stderr[-3000:], file=sys.stderr)
        except subprocess.TimeoutExpired:
            status = "stopped (budget)"
        seconds = time.perf_counter() - t0
        verdicts = []
        results = out / name / "results.json"
        if status == "done" and results.is_file():
            verdicts = json.loads(results.read_text()).get("verdicts", [])
        rows.append({"experiment": name, "status": status, "seconds": seconds, "verdicts": verdicts})
        print(f"   {status} in {seconds:.1f} s", flush=True)

    total = time.perf_counter() - start
    lines = [f"# convzoo experiments, full scale, on {card or 'CPU'}", "",
             f"Overrides: {', '.join(sets) or 'none'}; budget {args.budget:.0f} s; total {total:.1f} s.", "",
             "| experiment | status | wall (s) | verdicts |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['experiment']} | {r['status']} | {r['seconds']:.1f} | {' '.join(r['verdicts'])} |")
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    print()
    print(text)
    return 0 if all(r["status"] == "done" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
