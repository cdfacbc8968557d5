"""Run an experiment that reproduces one of the lecture's claims.

NAME is a recipe shipped with convzoo (`--list` shows them; package data in
convzoo/experiments/recipes/, or the folder $CONVZOO_EXPERIMENTS names) or a path to a
.toml recipe. `--scale smoke` runs in seconds on a CPU (a pipeline check); `--scale full`
is the real experiment. The runs, a results.json, report.md and a self-contained
report.html go into --out.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", metavar="NAME", help="experiment name (see --list) or a recipe .toml file")
    p.add_argument("--scale", choices=("smoke", "full"), default="smoke", help="smoke (seconds, CPU) or full")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: experiments-out/NAME-SCALE)")
    p.add_argument("--list", action="store_true", help="list the experiments and exit")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a training option for every run, e.g. --set epochs=3 --set amp=bf16 (repeatable)")
    p.add_argument("--seeds", nargs="+", type=int, default=None, metavar="S", help="replace the scale's seeds")
    p.add_argument("--rerun", action="store_true", help="train again even where a finished identical run exists")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="with --list: print JSON")


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..experiments import describe, list_experiments, load_recipe, parse_overrides, run_experiment

    if args.list:
        rows = [describe(load_recipe(n)) for n in list_experiments()]
        if args.json:
            import json

            print(json.dumps(rows, indent=2))
            return 0
        for r in rows:
            smoke, full = r["scales"].get("smoke", {}), r["scales"].get("full", {})
            print(f"{r['name']:<16} {r['title']}")
            print(f"{'':<16} smoke: {len(smoke.get('runs', []))} runs x {len(smoke.get('seeds', []))} seeds, "
                  f"full: {len(full.get('runs', []))} runs x {len(full.get('seeds', []))} seeds, "
                  f"{full.get('epochs')} epochs")
        return 0
    if not args.name:
        raise ConfigError("name an experiment (`convzoo experiment --list` shows them)")
    overrides = parse_overrides(args.set)
    res = run_experiment(args.name, args.scale, args.out, progress=not args.quiet, reuse=not args.rerun,
                         log=lambda s: print(s, flush=True), overrides=overrides, seeds=args.seeds)
    print()
    for v in res.verdicts:
        print(f"- {v}")
    print(f"\n{res.name} ({res.scale}) finished in {res.wall_seconds:.1f} s")
    print(f"wrote {res.report_md}")
    print(f"wrote {res.report_html}")
    return 0
